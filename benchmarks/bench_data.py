"""How fast the shapes world's batches are made: drawing, preprocessing and tokenizing, on one core.

    python benchmarks/bench_data.py [--batches 8] [--repeats 3]

Prints images per second of *process CPU time* (not wall time), per training world: what one core
delivers whatever else the machine runs; the whole batch (drawing, preprocessing, tokenizing) and
the drawing alone (``draw_sample``). The batch worker must keep ahead of the training step
(a step of 128 pairs at 0.054 s needs about 2,400 images per second).
"""

import argparse
import time

import numpy as np

from miniclip.data import Loader, Preprocess, ShapesDataset, WORLDS
from miniclip.data.shapes import draw_sample
from miniclip.training import TrainConfig
from miniclip.training.run import train_tokenizer


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=8, help="batches of 128 per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per world (the fastest is kept)")
    args = parser.parse_args()
    config = TrainConfig()
    for world in WORLDS:
        tokenizer = train_tokenizer(TrainConfig(world=world))
        dataset = ShapesDataset(10**7, seed=0, resolution=config.image_resolution, split="train",
                                styles=WORLDS[world])
        loader = Loader(dataset, config.batch_size, Preprocess(config.image_resolution), tokenizer,
                        context_length=config.context_length, shuffle=False, prefetch=0)
        rates, drawing = [], []
        n = args.batches * config.batch_size
        for r in range(args.repeats):
            t = time.process_time()
            for k in range(args.batches):
                start = (r * args.batches + k) * config.batch_size
                loader.make_batch(np.arange(start, start + config.batch_size), 0)
            rates.append(n / (time.process_time() - t))
            t = time.process_time()
            for i in range(r * n, (r + 1) * n):
                draw_sample(0, i, config.image_resolution, "train", WORLDS[world])
            drawing.append(n / (time.process_time() - t))
        for what, x in (("batches", rates), ("drawing", drawing)):
            print(f"{world:>8} world, {what}: {max(x):6.0f} images/s of one core's time "
                  f"(runs: {', '.join(f'{v:.0f}' for v in x)})")


if __name__ == "__main__":
    main()
