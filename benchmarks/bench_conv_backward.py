"""The default model's convolutions one by one: forward and backward (``K.conv2d``, ``K.conv2d_backward``).

The shapes are those of the default image tower (CLIP's ModifiedResNet, width 16, stages (1, 1, 1, 1),
32 px: its three stem convolutions, then each stage's 1x1 and 3x3 convolutions and downsample) at
``--batch`` images, float32, at ``--threads`` compute threads. Each line: the best of ``--repeats``
calls, in ms and in GFLOP/s (the forward's 2*N*L*CK*O, the backward's twice that: dW and dx).
The backward's natural aim is twice the forward's time.

    python benchmarks/bench_conv_backward.py                        # batch 128, 1 thread
    python benchmarks/bench_conv_backward.py --against /work/main   # side by side with another tree

``--against TREE`` runs ``--rounds`` rounds of one fresh process per tree (this one, then TREE, e.g. a
checkout of main with its extension built), alternating, and prints the best round of each, shape by
shape, with the ratio before / after.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

# --tree: import miniclip from another source tree
_TREE = sys.argv[sys.argv.index("--tree") + 1] if "--tree" in sys.argv else str(Path(__file__).resolve().parent.parent)
sys.path.insert(0, _TREE)

import numpy as np  # noqa: E402

from miniclip.backend import K  # noqa: E402
from miniclip.training.run import _threads  # noqa: E402
from machine import alternating_rounds  # noqa: E402

# (C, H, O, k, stride, padding) of x (N, C, H, H) and the weight (O, C, k, k)
SHAPES = [
    (3, 32, 8, 3, 2, 1), (8, 16, 8, 3, 1, 1), (8, 16, 16, 3, 1, 1),             # the stem
    (16, 8, 16, 3, 1, 1), (16, 8, 64, 1, 1, 0), (64, 8, 32, 1, 1, 0),            # stage 1 (and 2's 1x1)
    (32, 8, 32, 3, 1, 1), (32, 4, 128, 1, 1, 0), (64, 4, 128, 1, 1, 0),          # stage 2
    (128, 4, 64, 1, 1, 0), (64, 4, 64, 3, 1, 1), (128, 2, 128, 3, 1, 1),         # stages 3 and 4
    (256, 2, 128, 1, 1, 0), (128, 1, 512, 1, 1, 0),
]


def measure(batch, threads, repeats):
    """{shape name: (forward seconds, backward seconds, forward FLOPs)}, each the best of the repeats."""
    rng = np.random.default_rng(0)
    out = {}
    with _threads(threads):
        for C, H, O, k, s, p in SHAPES:
            x = rng.standard_normal((batch, C, H, H)).astype(np.float32)
            w = rng.standard_normal((O, C, k, k)).astype(np.float32)
            y = K.conv2d(x, w, s, p)
            dy = rng.standard_normal(y.shape).astype(np.float32)
            best = [float("inf"), float("inf")]
            for _ in range(repeats):
                t = time.perf_counter()
                K.conv2d(x, w, s, p)
                best[0] = min(best[0], time.perf_counter() - t)
                t = time.perf_counter()
                K.conv2d_backward(x, w, dy, s, p)
                best[1] = min(best[1], time.perf_counter() - t)
            out[f"{x.shape} {w.shape} s{s}"] = (*best, 2.0 * y.size * C * k * k)
    return out


def compare(args):
    """Rounds of one process per tree, alternating; the best of each tree, shape by shape."""
    best = {}
    worker = ["--batch", str(args.batch), "--threads", str(args.threads), "--repeats", str(args.repeats)]
    for name, out in alternating_rounds(__file__, _TREE, args.against, args.rounds, worker):
        for shape, (fwd, bwd, flops) in out.items():
            mine = best.setdefault((name, shape), [fwd, bwd, flops])
            mine[0], mine[1] = min(mine[0], fwd), min(mine[1], bwd)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print(f"{'x, weight, stride':44s} | fwd against | bwd against | fwd this | bwd this | bwd before/after")
    for shape in dict.fromkeys(s for _, s in best):
        (f0, b0, _), (f1, b1, _) = best[("against", shape)], best[("this tree", shape)]
        print(f"{shape:44s} | {f0 * 1e3:8.2f} ms | {b0 * 1e3:8.2f} ms | {f1 * 1e3:5.2f} ms | {b1 * 1e3:5.2f} ms | {b0 / b1:.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per shape and process; the best is kept")
    parser.add_argument("--rounds", type=int, default=3, help="with --against: processes per tree, alternating")
    parser.add_argument("--against", metavar="TREE", help="compare with this source tree, one process per round")
    parser.add_argument("--tree", help=argparse.SUPPRESS)    # read above, before the imports
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)   # a --against worker
    args = parser.parse_args()
    if args.against:
        return compare(args)
    out = measure(args.batch, args.threads, args.repeats)
    if args.json:
        print(json.dumps(out))
        return
    for shape, (fwd, bwd, flops) in out.items():
        print(f"{shape:44s} fwd {fwd * 1e3:6.2f} ms {flops / fwd / 1e9:6.1f} GFLOP/s   "
              f"bwd {bwd * 1e3:6.2f} ms {2 * flops / bwd / 1e9:6.1f} GFLOP/s = {bwd / fwd:.1f} x fwd")


if __name__ == "__main__":
    main()
