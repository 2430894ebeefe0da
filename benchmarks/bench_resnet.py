"""RN50 ``encode_image``: miniclip (compiled backend) beside PyTorch on the CPU, float32, eval mode.

The image encoder of the released RN50 (``ModifiedResNet((3, 4, 6, 3), width 64)``, attention pooling
to 1024) with random weights, on 8 random images at 224 px, inside ``no_grad()`` (the fused
convolution + BatchNorm + ReLU path, ``nn/conv_bn.py``). The PyTorch model is ``tests/torch_clip.py``'s
``TorchModifiedResNet`` (the original layout: ``nn.Conv2d``, ``nn.BatchNorm2d``,
``F.multi_head_attention_forward``) under ``torch.no_grad()``.

Each measurement is a fresh process for each side, both with the same thread count, interleaved
(miniclip, PyTorch, miniclip, PyTorch, ... for ``--rounds`` rounds), each timing ``--repeats``
calls after one warm-up call; the best call of all rounds is kept. Both the wall time and the
process's CPU time are reported: on a machine shared with other jobs the CPU time is the steadier
of the two (with one thread it is the time the work took; with two it also counts spinning).
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are removed from the workers' environment, so that neither
side runs on a CPU model other than the one it detects.

    python benchmarks/bench_resnet.py                          # 1 and 2 threads, 3 rounds
    python benchmarks/bench_resnet.py --threads 1 --rounds 5

Shape legend: N images, R resolution.
"""

import argparse
import json
import os
import platform
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
    run()                                                                  # warm-up (first-touch, buffers)
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        run()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    print(json.dumps({"mode": mode, "threads": threads, "wall": min(wall), "cpu": min(cpu)}))


def measure(mode, threads, images, repeats):
    """One worker process: {"wall": seconds, "cpu": seconds, ...}."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MINICLIP_NUM_THREADS": str(threads),
           "OPENBLAS_NUM_THREADS": "1"}
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        env.pop(var, None)
    out = subprocess.run([sys.executable, __file__, "--worker", mode, "--images", str(images),
                          "--repeats", str(repeats)], env=env, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["threads"] != threads:
        raise RuntimeError(f"{mode} ran on {result['threads']} threads instead of {threads}")
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved miniclip/PyTorch rounds; the best is kept")
    parser.add_argument("--repeats", type=int, default=2, help="timed calls per process")
    parser.add_argument("--worker", choices=("miniclip", "torch"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.images, args.repeats)
    print(f"RN50 encode_image, {args.images} images at 224 px, float32, no_grad "
          f"({platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})")
    print("| threads | load at start | miniclip wall | PyTorch wall | ratio (wall) "
          "| miniclip CPU | PyTorch CPU | ratio (CPU) |")
    print("|---|---|---|---|---|---|---|---|")
    for threads in args.threads:
        load = os.getloadavg()[0]
        best = {}
        for _ in range(args.rounds):
            for mode in ("miniclip", "torch"):
                r = measure(mode, threads, args.images, args.repeats)
                for key in ("wall", "cpu"):
                    best[mode, key] = min(best.get((mode, key), float("inf")), r[key])
        ours_w, ref_w, ours_c, ref_c = (best["miniclip", "wall"], best["torch", "wall"],
                                        best["miniclip", "cpu"], best["torch", "cpu"])
        print(f"| {threads} | {load:.1f} | {ours_w:.2f} s | {ref_w:.2f} s | {ref_w / ours_w:.2f}x "
              f"| {ours_c:.2f} s | {ref_c:.2f} s | {ref_c / ours_c:.2f}x |", flush=True)
    print("ratio = PyTorch time / miniclip time (above 1: miniclip is faster)")


if __name__ == "__main__":
    main()
