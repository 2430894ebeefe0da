"""Training: the step, the loop around it, and what a run keeps.

    config.py      TrainConfig: everything a run depends on (saved as config.json)
    step.py        train_step: forward, loss, backward, AdamW, clamp the temperature
    fit.py         fit(): the loop around the step (checkpoints, evaluation, Ctrl-C, progress, timing)
    run.py         train(): a run from its config (run folder, tokenizer, model, batches, then fit)
    batches.py     batch k of a run as a pure function of (seed, k), prepared ahead of the step
    optim.py       AdamW, the warmup-cosine schedule, the temperature clamp, gradient clipping
    checkpoint.py  atomic .npz checkpoints and the manager that keeps the newest N
    run_folder.py  one writer per run folder (the lock and the marker)
    distributed.py data parallelism over MPI ranks
    local_world.py data parallelism over the processes of one machine, without MPI
"""

import importlib

# where each public name lives; imported on first use, so that reading a checkpoint (miniclip.load ->
# training/checkpoint.py) does not pull in the training machinery and the data layer
_HOMES = {"TrainConfig": "config", "TrainResult": "run", "train": "run", "fit": "fit", "train_step": "step",
          "NonFiniteError": "step"}
__all__ = list(_HOMES)


def __getattr__(name):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
