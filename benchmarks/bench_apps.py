"""How fast ``miniclip index`` embeds a folder, and how exact search's latency grows with the index.

    python benchmarks/bench_apps.py --model runs/shapes-1 [--images 512] [--sizes 1000 10000 100000 1000000]

1. Indexing: exports ``--images`` shapes-world PNGs (48 px) to a temporary folder, indexes them with the
   model (images/s, reading and preprocessing included), then indexes again with nothing changed (the
   incremental check: one stat per file).
2. Search: random unit embeddings of N images and E dims (E = 64, the default toy model, and 512, ViT-B/32);
   the latency of ``search.top_k`` (one matrix-vector product and a partial sort for the top 10), median
   of repeats, and the index's memory.
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from miniclip.apps.embed import l2_normalize, load_model  # noqa: E402
from miniclip.apps.index import build_index  # noqa: E402
from miniclip.apps.search import top_k  # noqa: E402
from miniclip.data.shapes import export_samples  # noqa: E402


def bench_index(model, n):
    loaded = load_model(model)
    with tempfile.TemporaryDirectory() as tmp:
        export_samples(tmp, n=n, seed=0, resolution=48, split="all")
        out = os.path.join(tmp, "index.npz")
        t = time.perf_counter()
        build_index(os.path.join(tmp, "images"), loaded, out, progress=False)
        first = time.perf_counter() - t
        t = time.perf_counter()
        index = build_index(os.path.join(tmp, "images"), loaded, out, progress=False)
        again = time.perf_counter() - t
    assert index.report["unchanged"] == n
    print(f"index {n} images of 48 px with {model} ({loaded.resolution} px, E = {loaded.model.embed_dim}): "
          f"{first:.2f} s = {n / first:.0f} images/s; again, nothing changed: {1000 * again:.0f} ms")


def bench_search(sizes, dims=(64, 512), k=10):
    rng = np.random.default_rng(0)
    print("| N images | E | index MB | top-10 latency, ms (median) |")
    print("|---:|---:|---:|---:|")
    for E in dims:
        for n in sizes:
            embeddings = l2_normalize(rng.standard_normal((n, E), dtype=np.float32))  # (N, E)
            query = embeddings[rng.integers(n)]
            repeats = max(3, min(200, int(2e7 // (n * E))))
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                top_k(embeddings, query, k)
                times.append(time.perf_counter() - t)
            print(f"| {n:,} | {E} | {embeddings.nbytes / 2**20:,.0f} | {1000 * np.median(times):.2f} |")
            del embeddings


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model to index with (run folder or model.npz); without it, search only")
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000, 1_000_000])
    args = parser.parse_args()
    if args.model:
        bench_index(args.model, args.images)
    bench_search(args.sizes)


if __name__ == "__main__":
    main()
