"""Helpers shared by the scripts that tests/test_distributed.py runs under ``mpiexec`` (not a test file).

Each script is started as ``mpiexec -n P python tests/mpi_scripts/<script>.py OUT.json``; every rank
runs it, rank 0 writes a JSON of measured numbers to OUT.json, and any failed assertion aborts the
whole job (``World.abort_on_error``), so the test sees a non-zero exit instead of a hang.
"""

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: clip_tiny and friends

from miniclip.autograd import no_grad  # noqa: E402


def rel_err(a, b):
    """max |a - b| / max |b| (normwise; 0 when both are 0)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = np.max(np.abs(b)) if b.size else 0.0
    diff = np.max(np.abs(a - b)) if a.size else 0.0
    return float(diff / scale) if scale > 0 else float(diff)


def collective_gradcheck(fn, inputs, world, eps=1e-6, seed=0):
    """Central differences for a function whose ranks talk to each other.

    Rank q computes Y_q = fn(*inputs_q); the job's objective is J = sum_q <Y_q, g_q> with a random
    upstream g_q per rank. ``backward(g_q)`` on every rank (then AllGather's reduce-scatter) must give
    dJ/d(inputs_r) on rank r. Numerically: one rank at a time (the "owner") nudges one of its elements
    by +-eps while every rank recomputes fn -- the collectives need all ranks in step -- and J is summed
    over ranks with an Allreduce. Returns the largest normwise relative error over every rank's inputs.
    """
    out = fn(*inputs)
    g = np.random.default_rng([seed, 0x67, world.rank]).standard_normal(out.shape)
    for x in inputs:
        x.grad = None
    out.backward(g)
    analytic = [np.zeros(x.shape) if x.grad is None else x.grad.copy() for x in inputs]

    def objective():
        with no_grad():
            local = float(np.sum(fn(*inputs).data * g))
        return float(world.allreduce(np.array([local]))[0])

    worst = 0.0
    for owner in range(world.size):
        for x, a in zip(inputs, analytic):
            numeric = np.zeros(x.shape)
            for i in range(x.size):  # every rank's inputs have the same shape, so all loop in step
                index = np.unravel_index(i, x.shape)
                original = x.data[index]
                if world.rank == owner:
                    x.data[index] = original + eps
                plus = objective()
                if world.rank == owner:
                    x.data[index] = original - eps
                minus = objective()
                x.data[index] = original
                numeric[index] = (plus - minus) / (2 * eps)
            if world.rank == owner:
                worst = max(worst, rel_err(a, numeric))
    return max(world.allgather_object(worst))


def write_result(world, path, result):
    """Rank 0 writes ``result`` (a dict of numbers) as JSON; every rank waits for it."""
    if world.is_main:
        Path(path).write_text(json.dumps(result, indent=1))
    world.barrier()
