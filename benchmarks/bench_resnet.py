"""RN50 ``encode_image``: miniclip (compiled backend) beside PyTorch on the CPU, float32, eval mode.

The image encoder of the released RN50 (``ModifiedResNet((3, 4, 6, 3), width 64)``, attention pooling
to 1024) with random weights, on 8 random images at 224 px. Each side runs in its own process with
the same thread count; one warm-up call, then the median of ``--repeats`` timed calls (one run of
each by default). The PyTorch model is ``tests/torch_clip.py``'s ``TorchModifiedResNet`` (the
original layout: ``nn.Conv2d``, ``nn.BatchNorm2d``, ``F.multi_head_attention_forward``).

    python benchmarks/bench_resnet.py                 # threads: 2
    python benchmarks/bench_resnet.py --threads 1 --repeats 3

Shape legend: N images, R resolution.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RN50 = dict(layers=(3, 4, 6, 3), output_dim=1024, heads=32, input_resolution=224, width=64)


def worker(mode, n, repeats):
    """Time ``repeats`` calls of the RN50 image encoder on n images; print one JSON line."""
    images = np.random.default_rng(0).standard_normal((n, 3, 224, 224)).astype(np.float32)  # (N, 3, R, R)
    if mode == "torch":
        import torch
        sys.path.insert(0, os.path.join(ROOT, "tests"))
        from torch_clip import TorchModifiedResNet
        torch.manual_seed(0)
        model = TorchModifiedResNet(**RN50).eval()
        x = torch.from_numpy(images)

        def run():
            with torch.no_grad():
                return model(x)
        threads = torch.get_num_threads()
    else:
        sys.path.insert(0, ROOT)
        from miniclip import backend, no_grad
        from miniclip.model import ModifiedResNet
        backend.set_backend("compiled")
        model = ModifiedResNet(**RN50, rng=0).eval()

        def run():
            with no_grad():
                return model(images)
        threads = backend.get_num_threads()
    run()                                                                  # warm-up (first-touch, packing buffers)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    print(json.dumps({"mode": mode, "threads": threads, "seconds": statistics.median(times)}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--worker", choices=("miniclip", "torch"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.images, args.repeats)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MINICLIP_NUM_THREADS": str(args.threads),
           "OPENBLAS_NUM_THREADS": "1"}
    load = os.getloadavg()[0]
    results = {}
    for mode in ("miniclip", "torch"):
        out = subprocess.run([sys.executable, __file__, "--worker", mode, "--images", str(args.images),
                              "--repeats", str(args.repeats)], env=env, capture_output=True, text=True, check=True)
        results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    ours, ref = results["miniclip"]["seconds"], results["torch"]["seconds"]
    print(f"RN50 encode_image, {args.images} images at 224 px, float32, {args.threads} threads "
          f"({platform.processor() or platform.machine()}, load average {load:.1f} at the start)")
    print(f"| miniclip {ours:.2f} s | PyTorch {ref:.2f} s | ratio (PyTorch time / miniclip time) {ref / ours:.2f}x |")


if __name__ == "__main__":
    main()
