"""The training step's cost for the alternatives to the default run (README, "The default run, and why").

One process, one compute thread, side by side: each variant's model (``TrainConfig()`` with a few
fields changed) takes a few warm-up steps and then ``--steps`` timed ones on a fixed batch of random
images and tokens; the best of ``--rounds`` rounds is kept and printed as seconds per step and as a
ratio to the former default's step. Only the step is timed (forward, loss, backward, AdamW), not the drawing of
the batches, which a separate process does during training.

    python benchmarks/bench_step_variants.py              # all variants, 3 rounds
    python benchmarks/bench_step_variants.py --rounds 5 --steps 20

Shape legend: B batch, R image resolution, T context length.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from miniclip.model import CLIP  # noqa: E402
from miniclip.training import TrainConfig, train_step  # noqa: E402
from miniclip.training.optim import AdamW  # noqa: E402
from miniclip.training.run import _threads  # noqa: E402

# name -> TrainConfig fields that differ from the default. The variants of the README's table change
# a few fields of the former default (until 2026-12-03), a 3-block ViT of width 64 on 8 x 8 patches;
# the default since issue 14 is CLIP's ModifiedResNet with stage depths (1, 1, 1, 1) and width 16.
VIT = {"vision_layers": 3, "vision_width": 64, "vision_heads": 2, "vision_patch_size": 8}
REFERENCE = "former default (ViT)"
RESNET = "ResNet (1,1,1,1) width 16 (default)"
VARIANTS = {
    REFERENCE: VIT,
    "batch 64": {**VIT, "batch_size": 64},
    "batch 256": {**VIT, "batch_size": 256},
    "patch 4": {**VIT, "vision_patch_size": 4},
    "40 px": {**VIT, "image_resolution": 40},
    "48 px": {**VIT, "image_resolution": 48},
    "vision width 96": {**VIT, "vision_width": 96},
    "4 vision blocks": {**VIT, "vision_layers": 4},
    "1 text block": {**VIT, "transformer_layers": 1},
    RESNET: {},
}


class Batch:
    def __init__(self, images, tokens):
        self.images, self.tokens = images, tokens  # (B, 3, R, R) float32, (B, T) int64


def step_seconds(fields, steps, vocab_size=638):
    config = TrainConfig(progress=False, plots=False, **fields)
    args = config.model_args(vocab_size)
    model = CLIP(**args, seed=0)
    optimizer = AdamW(list(model.named_parameters()), lr=config.lr, betas=(config.beta1, config.beta2),
                      eps=config.eps, weight_decay=config.weight_decay)
    rng = np.random.default_rng(0)
    B, R, T = config.batch_size, config.image_resolution, config.context_length
    tokens = rng.integers(1, vocab_size - 1, size=(B, T))
    tokens[:, -1] = vocab_size - 1  # the end token (highest id) ends every caption
    batch = Batch(rng.standard_normal((B, 3, R, R)).astype(np.float32), tokens)
    loss_fn = config.loss_fn()
    for _ in range(3):
        train_step(model, batch, loss_fn, optimizer)
    t = time.perf_counter()
    for _ in range(steps):
        train_step(model, batch, loss_fn, optimizer)
    return (time.perf_counter() - t) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    best = {}
    with _threads(1):
        for _ in range(args.rounds):
            for name, fields in VARIANTS.items():
                best[name] = min(best.get(name, float("inf")), step_seconds(fields, args.steps))
    print(f"{'variant':>36} | s/step | x the former default")
    for name, seconds in best.items():
        print(f"{name:>36} | {seconds:6.3f} | {seconds / best[REFERENCE]:5.2f}")


if __name__ == "__main__":
    main()
