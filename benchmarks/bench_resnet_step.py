"""The ResNet training step against the default ViT step, and where the ResNet's time goes.

One process: the former default's model (a ViT) and CLIP's ModifiedResNet with stage depths
(1, 1, 1, 1) and width 16 (the default since issue 14) each take warm-up steps and then ``--steps``
timed training steps (forward, CLIP loss, backward, AdamW; float32) on a fixed random batch,
alternating, best of ``--rounds``, at each of ``--threads`` compute thread counts; the ResNet's
lines also give the time its convolutions' backward (``K.conv2d_backward``) took per step inside
those steps. Then one op profile (``miniclip.autograd.profiler``) of the ResNet step at the first
thread count. Same models and batches as ``bench_step_variants.py``.

    python benchmarks/bench_resnet_step.py                 # 5 rounds of 10 steps, 1 thread, the profile
    python benchmarks/bench_resnet_step.py --rounds 3 --threads 1 2 --no-profile

``--against TREE`` compares two source trees side by side (before / after a change): each round
runs one fresh process per tree (this one, then TREE, e.g. a checkout of main with its extension
built), ResNet only, and the best round of each is printed:

    python benchmarks/bench_resnet_step.py --against /work/main --threads 1 2 --rounds 5
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

# --tree: import miniclip from another source tree; once imported, the package stays that tree's
# even though bench_step_variants puts this tree first on the path
_TREE = sys.argv[sys.argv.index("--tree") + 1] if "--tree" in sys.argv else str(Path(__file__).resolve().parent.parent)
sys.path.insert(0, _TREE)
import miniclip  # noqa: E402, F401

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_step_variants import REFERENCE, RESNET, VARIANTS, step_seconds  # noqa: E402
from machine import alternating_rounds  # noqa: E402

from miniclip.autograd.profiler import profile  # noqa: E402
from miniclip.backend import K  # noqa: E402
from miniclip.training.run import _threads  # noqa: E402



def resnet_step(steps):
    """(seconds per ResNet step, seconds per step inside K.conv2d_backward), over the timed steps."""
    conv_backward, calls = K.conv2d_backward, []

    def timed(*args, **kwargs):
        t = time.perf_counter()
        out = conv_backward(*args, **kwargs)
        calls.append(time.perf_counter() - t)
        return out

    K.conv2d_backward = timed
    try:
        seconds = step_seconds(VARIANTS[RESNET], steps)
    finally:
        K.conv2d_backward = conv_backward
    per_step = len(calls) // (steps + 3)                  # step_seconds runs 3 warm-up steps first
    return seconds, sum(calls[-steps * per_step:]) / steps


def measure(threads, rounds, steps, vit=True):
    """{threads: {"vit": s, "resnet": s, "conv_backward": s}}, each the best of the rounds."""
    best = {}
    for n in threads:
        row = best.setdefault(n, {})
        with _threads(n):
            for _ in range(rounds):
                if vit:
                    row["vit"] = min(row.get("vit", float("inf")), step_seconds(VARIANTS[REFERENCE], steps))
                seconds, conv = resnet_step(steps)
                if seconds < row.get("resnet", float("inf")):
                    row["resnet"], row["conv_backward"] = seconds, conv
    return best


def compare(args):
    """Rounds of one process per tree, alternating; the best round of each tree and thread count."""
    best = {}
    worker = ["--rounds", "1", "--steps", str(args.steps), "--threads", *map(str, args.threads)]
    for name, out in alternating_rounds(__file__, _TREE, args.against, args.rounds, worker):
        for n, row in out.items():
            mine = best.setdefault((name, int(n)), row)
            if row["resnet"] < mine["resnet"]:
                best[(name, int(n))] = row
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print(f"{'tree':>10} | threads | ResNet step | conv backward")
    for (name, n), row in sorted(best.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        print(f"{name:>10} | {n:7d} | {row['resnet'] * 1e3:8.1f} ms | {row['conv_backward'] * 1e3:8.1f} ms")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, nargs="+", default=[1], help="compute thread counts to time")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--against", metavar="TREE", help="compare with this source tree, one process per round")
    parser.add_argument("--tree", help=argparse.SUPPRESS)    # read above, before the imports
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)   # a --against worker
    args = parser.parse_args()
    if args.against:
        return compare(args)
    best = measure(args.threads, args.rounds, args.steps, vit=not args.json)
    if args.json:
        print(json.dumps(best))
        return
    for n, row in best.items():
        print(f"{n} thread(s): ViT (former default) {row['vit'] * 1e3:7.1f} ms/step")
        print(f"{n} thread(s): {RESNET} {row['resnet'] * 1e3:7.1f} ms/step = {row['resnet'] / row['vit']:.2f} x "
              f"the ViT; its conv backward {row['conv_backward'] * 1e3:.1f} ms/step")
    if not args.no_profile:
        with _threads(args.threads[0]), profile() as prof:
            step_seconds(VARIANTS[RESNET], args.steps)
        print(prof.table(top=25))


if __name__ == "__main__":
    main()
