"""Full-size CLIP (ViT-B/32, ViT-B/16 at the original dimensions): miniclip beside PyTorch.

Three tasks per model, float32, random weights (nothing is downloaded):

    image   encode_image of 16 images (16, 3, 224, 224), no gradients
    text    encode_text of 64 texts of 77 tokens, no gradients
    step    one training step on 8 (image, text) pairs: forward, CLIP loss, backward, AdamW

Every (library, model, task, threads) runs in its OWN process, so that each peak RSS is that
run's alone: the parent reads it from the finished child (``os.wait4``'s ``ru_maxrss``). Linux
starts a child's ``ru_maxrss`` at the parent's resident size, so the parent imports nothing
heavy (it stays around 10-15 MB; printed). The children run with the same thread count for
everything (OpenMP, OpenBLAS, ``torch.set_num_threads``) and without ``OPENBLAS_CORETYPE`` /
``OPENBLAS_L2_SIZE`` (some machines set them to force OpenBLAS onto older kernels), so every
library runs its best code for this CPU. miniclip's step calls ``reuse_freed_memory()`` as
``miniclip train`` does; the encoders run with the allocator's defaults, as ``miniclip.api``.

    python benchmarks/bench_realsize.py                  # both models, 1 and 2 threads, 2 rounds
    python benchmarks/bench_realsize.py --quick          # ViT-B/32 only, 2 threads, 1 round
    python benchmarks/bench_realsize.py --markdown t.md  # also write the table as Markdown

Timing: one untimed call (warm-up), then ``--repeats`` timed calls, the fastest kept; the rounds
run every configuration in turn (miniclip and PyTorch alternate), and the fastest round is kept.
The "CPU-time ratio" compares the processes' CPU time per call (``time.process_time``, all their
threads) instead of wall time: on a machine shared with other jobs it moves much less than the
wall time at one thread; at two threads it also counts time spent waiting at barriers.
Needs PyTorch for the comparison (``pip install torch``); without it only miniclip's rows print.

Shape legend: N images / texts, R image resolution, T context length (77).
"""

import argparse
import importlib.util
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

from machine import blas_kernels, cpu_model, unforce_openblas

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# The released models' dimensions (openai/CLIP, as build_model infers them from the checkpoints).
MODELS = {
    "ViT-B/32": dict(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768, vision_patch_size=32,
                     context_length=77, vocab_size=49408, transformer_width=512, transformer_heads=8,
                     transformer_layers=12),
    "ViT-B/16": dict(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768, vision_patch_size=16,
                     context_length=77, vocab_size=49408, transformer_width=512, transformer_heads=8,
                     transformer_layers=12),
}
TASKS = ("image", "text", "step")
BATCH = {"image": 16, "text": 64, "step": 8}
LIBS = ("miniclip", "torch")
# CLIP's training recipe (CLIP_FACTS: AdamW lr 5e-4, betas (0.9, 0.98), eps 1e-6, weight decay 0.2)
ADAMW = dict(lr=5e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.2)


# ----------------------------------------------------------------------------- worker side
def make_inputs(model_args, task):
    """The same random inputs for both libraries: images N(0, 1) (the scale of normalized pixels),
    token rows [SOT, random ids ..., EOT, 0 ...] of length T (EOT, the largest id, ends each text)."""
    import numpy as np
    rng = np.random.default_rng(0)
    R, T, V = model_args["image_resolution"], model_args["context_length"], model_args["vocab_size"]
    n = BATCH[task]
    images = rng.standard_normal((n, 3, R, R)).astype(np.float32)        # (N, 3, R, R)
    tokens = np.zeros((n, T), dtype=np.int64)                             # (N, T)
    for i in range(n):
        length = int(rng.integers(5, T + 1))                              # SOT + words + EOT
        tokens[i, 0], tokens[i, length - 1] = V - 2, V - 1
        tokens[i, 1:length - 1] = rng.integers(1, V - 2, size=length - 2)
    return images, tokens


def miniclip_task(model_args, task):
    """A function running one call of ``task`` with miniclip (the model built and warm)."""
    from miniclip.autograd import no_grad
    from miniclip.loss import clip_loss
    from miniclip.tools.memory import reuse_freed_memory
    from miniclip.model import CLIP
    from miniclip.training.optim import AdamW

    model = CLIP(**model_args, seed=0)
    images, tokens = make_inputs(model_args, task)
    if task == "image":
        def run():
            with no_grad():
                model.encode_image(images)
    elif task == "text":
        def run():
            with no_grad():
                model.encode_text(tokens)
    else:
        reuse_freed_memory()  # as miniclip train does
        optimizer = AdamW(list(model.named_parameters()), **ADAMW)

        def run():
            loss = clip_loss(*model(images, tokens))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return run


def torch_task(model_args, task):
    """The same with PyTorch: ``tests/torch_clip.py``'s ``TorchCLIP`` (the original layout) and its
    AdamW with miniclip's parameter groups; the encoders under ``torch.inference_mode``."""
    import torch
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from torch_clip import TorchCLIP, torch_adamw, torch_clip_loss

    torch.manual_seed(0)
    model = TorchCLIP(**model_args, vision_heads=model_args["vision_width"] // 64).float()
    images, tokens = (torch.from_numpy(a) for a in make_inputs(model_args, task))
    if task == "image":
        def run():
            with torch.inference_mode():
                model.encode_image(images)
    elif task == "text":
        def run():
            with torch.inference_mode():
                model.encode_text(tokens)
    else:
        optimizer = torch_adamw(model, **ADAMW)

        def run():
            loss = torch_clip_loss(*model(images, tokens))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return run


def worker(lib, model_name, task, threads, repeats):
    """Build, warm up, time ``repeats`` calls; return the fastest and what ran (one JSON line)."""
    from threadpoolctl import threadpool_limits
    threadpool_limits(limits=threads)
    if lib == "torch":
        import torch
        torch.set_num_threads(threads)
        run = torch_task(MODELS[model_name], task)
    else:
        from miniclip.backend import set_num_threads
        set_num_threads(threads)
        run = miniclip_task(MODELS[model_name], task)
    run()                                                   # warm-up: allocations, page faults, threads
    times, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        run()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return {"seconds": min(times), "cpu_seconds": min(cpu), "blas": blas_kernels()}


# ----------------------------------------------------------------------------- parent side
def run_worker(lib, model_name, task, threads, repeats):
    """One child process: its result with ``rss_mb``, its peak RSS from wait4; None if it failed."""
    env = dict(os.environ)
    unforce_openblas(env)
    env.update(OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               MINICLIP_BACKEND="compiled")
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", lib, "--model", model_name, "--task", task,
           "--threads", str(threads), "--repeats", str(repeats)]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, text=True)
        try:
            _, status, usage = os.wait4(proc.pid, 0)       # reap it ourselves: wait4 gives its rusage
        except BaseException:                              # Ctrl-C or a signal: no child left behind
            proc.kill()
            proc.wait()
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        print(f"[{lib} {model_name} {task} threads={threads}] failed (exit {proc.returncode}):\n"
              f"{stderr[-2000:]}", file=sys.stderr)
        return None
    result = json.loads(stdout.strip().splitlines()[-1])
    result["rss_mb"] = usage.ru_maxrss / 1024                # KB on Linux
    return result


def format_table(results, libs, models, tasks, threads_list, markdown):
    """Rows per (model, task, threads): miniclip s, PyTorch s, speed-up, both peak RSS."""
    head = ["model", "task", "threads", "miniclip s", "PyTorch s", "speed-up", "CPU-time ratio",
            "miniclip RSS MB", "PyTorch RSS MB"]
    rows = []
    for m in models:
        for task in tasks:
            for t in threads_list:
                ours, theirs = results.get(("miniclip", m, task, t)), results.get(("torch", m, task, t))
                label = {"image": f"encode_image ({BATCH['image']})", "text": f"encode_text ({BATCH['text']})",
                         "step": f"train step ({BATCH['step']} pairs)"}[task]
                cell = lambda r, key, fmt: fmt.format(r[key]) if r else "-"  # noqa: E731
                ratio = f"{theirs['seconds'] / ours['seconds']:.2f}x" if ours and theirs else "-"
                cpu_ratio = f"{theirs['cpu_seconds'] / ours['cpu_seconds']:.2f}x" if ours and theirs else "-"
                rows.append([m, label, str(t), cell(ours, "seconds", "{:.3f}"), cell(theirs, "seconds", "{:.3f}"),
                             ratio, cpu_ratio, cell(ours, "rss_mb", "{:.0f}"), cell(theirs, "rss_mb", "{:.0f}")])
    if markdown:
        return "\n".join(["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
                         + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    fmt = "  ".join("{:>%d}" % w for w in widths)
    return "\n".join([fmt.format(*head)] + [fmt.format(*r) for r in rows])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rounds", type=int, default=2, help="rounds over every configuration; the fastest kept")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per process (after one warm-up)")
    p.add_argument("--quick", action="store_true", help="ViT-B/32 only, 2 threads, 1 round, 2 timed calls")
    p.add_argument("--markdown", help="also write the table as Markdown to this file")
    p.add_argument("--worker", choices=LIBS, help=argparse.SUPPRESS)
    p.add_argument("--model", choices=list(MODELS), help=argparse.SUPPRESS)
    p.add_argument("--task", choices=TASKS, help=argparse.SUPPRESS)
    a = p.parse_args()

    if a.worker:
        print(json.dumps(worker(a.worker, a.model, a.task, a.threads[0], a.repeats)))
        return
    if a.quick:
        a.models, a.threads, a.rounds, a.repeats = ["ViT-B/32"], [2], 1, 2
    libs = list(LIBS)
    if importlib.util.find_spec("torch") is None:
        libs.remove("torch")
        print("PyTorch is not installed: only miniclip's times are measured (pip install torch to compare)")
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; Python {platform.python_version()}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average {os.getloadavg()[0]:.2f}; "
          f"OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset in the workers (here: {unforce_openblas(dict(os.environ))})",
          flush=True)
    results, blas = {}, set()
    for rnd in range(a.rounds):
        for m in a.models:
            for task in a.tasks:
                for t in a.threads:
                    for lib in libs:
                        r = run_worker(lib, m, task, t, a.repeats)
                        if r is None:
                            continue
                        blas.update(f"{lib}: {b}" for b in r["blas"])
                        print(f"  round {rnd + 1}: {lib:>8} {m} {task:>5} threads={t}: {r['seconds']:.3f} s, "
                              f"peak RSS {r['rss_mb']:.0f} MB", flush=True)
                        best = results.get((lib, m, task, t))
                        if best is None or r["seconds"] < best["seconds"]:
                            results[(lib, m, task, t)] = r
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nBLAS in the workers: {'; '.join(sorted(blas)) or 'none reported'}")
    print(f"load average at the end {os.getloadavg()[0]:.2f}; this parent's own peak RSS {own:.0f} MB "
          f"(the floor of every child's ru_maxrss)\n")
    print(format_table(results, libs, a.models, a.tasks, a.threads, markdown=False))
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(format_table(results, libs, a.models, a.tasks, a.threads, markdown=True) + "\n")


if __name__ == "__main__":
    main()
