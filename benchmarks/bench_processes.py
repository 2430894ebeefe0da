"""The default `miniclip train` on 1 process and on P ranks of this machine (``--processes``).

    python benchmarks/bench_processes.py                      # 300 steps, best of 2, alternating
    python benchmarks/bench_processes.py --steps 300 --rounds 3

Each configuration runs ``miniclip train --steps N --eval-every N --no-progress --no-plots`` in a fresh
process (the default model and batch), one after another in turn, ``--rounds`` times; the table keeps
each configuration's fastest round of ``timing.json``'s ``seconds_per_step`` (the steps alone:
evaluations and checkpoints are not step time) and says the load average around it, since a rank
that loses its core to another program stalls every other rank at the next collective.
Configurations: processes x data workers (1: each rank draws its batches in its own process;
0: in a thread of the rank).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from machine import cpu_model

CONFIGS = ((1, 1), (2, 1), (2, 0))  # (processes, data workers); (1, 1) is the one-process default


def run(processes, workers, steps, root):
    out = os.path.join(root, f"p{processes}w{workers}-{time.monotonic_ns()}")
    load = os.getloadavg()[0]
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "miniclip.cli", "train", "--steps", str(steps), "--eval-every", str(steps),
                    "--processes", str(processes), "--data-workers", str(workers), "--out", out, "--no-progress",
                    "--no-plots"], check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    with open(os.path.join(out, "timing.json"), encoding="utf-8") as f:
        timing = json.load(f)
    return {"seconds_per_step": timing["seconds_per_step"], "train_seconds": timing["train_seconds"],
            "wall_seconds": wall, "load_before": load, "load_after": os.getloadavg()[0]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    print(f"{cpu_model()}, {os.cpu_count()} cores; miniclip train --steps {args.steps}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    results = {config: [] for config in CONFIGS}
    with tempfile.TemporaryDirectory() as root:
        for round_ in range(args.rounds):
            for config in CONFIGS:
                r = run(*config, args.steps, root)
                results[config].append(r)
                print(f"round {round_ + 1}: processes {config[0]}, data workers {config[1]}: "
                      f"{r['seconds_per_step']:.4f} s/step (load {r['load_before']:.1f} -> {r['load_after']:.1f})",
                      flush=True)
    base = min(r["seconds_per_step"] for r in results[CONFIGS[0]])
    print("\n| processes | batches drawn in | s/step (best) | x 1 process | all rounds | load average |")
    print("|---|---|---|---|---|---|")
    for (processes, workers), rs in results.items():
        best = min(r["seconds_per_step"] for r in rs)
        every = " / ".join(f"{r['seconds_per_step']:.3f}" for r in rs)
        loads = ", ".join(f"{r['load_before']:.1f}-{r['load_after']:.1f}" for r in rs)
        drawn = "a process" if workers else "a thread"
        print(f"| {processes} | {drawn} per rank | {best:.3f} | {base / best:.2f} | {every} | {loads} |")


if __name__ == "__main__":
    main()
