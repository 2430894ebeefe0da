"""Under mpiexec: the last rank fails while the others wait in a collective; the job must end.

Usage: mpiexec -n P python rank_failure.py MODE, MODE one of
  raise     the error is raised inside ``world.abort_on_error()``
  uncaught  the error escapes the script (the excepthook that init_distributed installs aborts)
  die       the process vanishes without a word (os._exit), as when it is killed
Without the abort, the other ranks would block in the Allreduce forever.
"""

import os
import sys

import numpy as np

from miniclip.training.distributed import init_distributed

mode = sys.argv[1]
world = init_distributed(required=True)


def step(failing):
    if failing:
        if mode == "die":
            os._exit(3)
        raise RuntimeError(f"simulated failure on rank {world.rank} (mode {mode})")
    world.allreduce(np.ones(4))  # the others wait here for the failed rank, forever without an abort


for i in range(3):
    failing = i == 1 and world.rank == world.size - 1
    if mode == "raise":
        with world.abort_on_error():
            step(failing)
    else:
        step(failing)
print(f"rank {world.rank}: unreachable, every run of this script must fail", flush=True)
