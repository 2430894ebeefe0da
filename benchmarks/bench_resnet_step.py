"""The ResNet training step against the default ViT step, and where the ResNet's time goes.

One process, one compute thread: the default run's model (a ViT) and CLIP's ModifiedResNet with
stage depths (1, 1, 1, 1) and width 16 (issue 14's candidate) each take warm-up steps and then
``--steps`` timed training steps (forward, CLIP loss, backward, AdamW; float32) on a fixed random
batch, alternating, best of ``--rounds``; then one op profile (``miniclip.autograd.profiler``) of
the ResNet step. Same models and batches as ``bench_step_variants.py``.

    python benchmarks/bench_resnet_step.py                 # 5 rounds of 10 steps, then the profile
    python benchmarks/bench_resnet_step.py --rounds 3 --no-profile
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_step_variants import VARIANTS, step_seconds  # noqa: E402

from miniclip.autograd.profiler import profile  # noqa: E402
from miniclip.training.run import _threads  # noqa: E402

RESNET = "ResNet (1,1,1,1) width 16"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args()
    best = {}
    with _threads(1):
        for _ in range(args.rounds):
            for name in ("default", RESNET):
                best[name] = min(best.get(name, float("inf")), step_seconds(VARIANTS[name], args.steps))
        print(f"ViT (default) {best['default'] * 1e3:7.1f} ms/step")
        print(f"{RESNET} {best[RESNET] * 1e3:7.1f} ms/step = {best[RESNET] / best['default']:.2f} x the ViT")
        if not args.no_profile:
            with profile() as prof:
                step_seconds(VARIANTS[RESNET], args.steps)
            print(prof.table(top=25))


if __name__ == "__main__":
    main()
