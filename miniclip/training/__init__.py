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
"""

from .config import TrainConfig
from .fit import fit
from .run import TrainResult, train
from .step import NonFiniteError, train_step

__all__ = ["TrainConfig", "TrainResult", "train", "fit", "train_step", "NonFiniteError"]
