"""What the benchmarks print about the machine, and the OpenBLAS settings they undo.

Some machines set ``OPENBLAS_CORETYPE`` (and ``OPENBLAS_L2_SIZE``) in the environment, which
forces OpenBLAS onto an older CPU's kernels (e.g. Haswell's AVX2 on an AVX-512 CPU). A benchmark
compares against OpenBLAS at its best, so it removes them from its own process *before NumPy
loads OpenBLAS* (``unforce_openblas()`` first, then ``import numpy``) and from its workers'
environment; tests and CI keep whatever the machine sets. Imports nothing heavy.

``alternating_rounds`` runs a benchmark against another source tree: one worker process per tree
and round, the trees taking turns, so that a change of the machine's load falls on both alike.
"""

import json
import os
import platform
import subprocess
import sys

OPENBLAS_FORCING = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def unforce_openblas(env=None):
    """Remove the forcing variables from ``env`` (default: this process's ``os.environ``);
    return what was set, as "NAME=value, ..." or "not set"."""
    env = os.environ if env is None else env
    removed = [f"{k}={env.pop(k)}" for k in OPENBLAS_FORCING if k in env]
    return ", ".join(removed) or "not set"


def cpu_model():
    """The CPU's model name from /proc/cpuinfo (the platform's processor string elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_kernels():
    """The BLAS libraries loaded in this process and the kernel each runs, e.g.
    ["openblas 0.3.31 SkylakeX"] (threadpoolctl's report; import NumPy / torch first)."""
    from threadpoolctl import threadpool_info
    return [f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')}" for i in threadpool_info()
            if i.get("user_api") == "blas"]


def alternating_rounds(script, this_tree, against, rounds, worker_args):
    """Yield ``(name, result)`` for ``rounds`` rounds of ``python script --tree TREE --json
    *worker_args`` run once per tree in turn ("this tree", then "against"), each worker's JSON output
    parsed. The script reads ``--tree`` before importing miniclip, so each worker runs that tree."""
    trees = {"this tree": this_tree, "against": against}
    for _ in range(rounds):
        for name, tree in trees.items():
            cmd = [sys.executable, script, "--tree", tree, "--json", *worker_args]
            yield name, json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
