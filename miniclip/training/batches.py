"""Batch ``k`` of a run as a pure function of (seed, k), prepared ahead of the training step.

Shape legend: B batch, R image resolution, T context length.
"""

import numpy as np

from ..data.prefetch import prefetch, prefetch_in_process
from .distributed import World, rank_slice


class StepBatches:
    """Batch ``k`` of the run as a pure function of (seed, k), prepared ahead of the training step.

    The shapes world: a one-epoch stream of ``steps * batch_size`` fresh samples in order (sample
    ``i`` is drawn from ``default_rng([seed, split, i])``), so no image is ever seen twice. A CSV:
    epoch ``k // len(loader)`` in the loader's shuffled order, batch ``k % len(loader)``, the last
    partial batch dropped (a contrastive batch of 3 is a different problem from one of 128).
    ``iterate`` prepares them in a thread (``workers=0``) or in one separate process (``workers=1``).
    """

    def __init__(self, loader, steps, shuffled_epochs, world=None):
        self.loader, self.steps, self.shuffled_epochs = loader, steps, shuffled_epochs
        # distributed: rank r makes only rows [r n, (r + 1) n) of each global batch (``shard``); kept as
        # a slice, not the world, since ``make`` goes to the drawing process and a world's pipes do not
        self.rows = rank_slice(loader.batch_size, World() if world is None else world)

    def indices(self, k):
        b = self.loader.batch_size
        if not self.shuffled_epochs:
            return k, np.arange(k * b, (k + 1) * b)
        per_epoch = len(self.loader.dataset) // b
        epoch, position = divmod(k, per_epoch)
        return epoch, self.loader.order(epoch)[position * b:(position + 1) * b]

    def make(self, k):
        epoch, idx = self.indices(k)
        idx = idx[self.rows]  # distributed: this rank's shard of the global batch (one process: all of it)
        return self.loader.make_batch(idx, epoch)

    def iterate(self, start, workers=0, ahead=3):
        """Yield (k, batch k) for k = start .. steps-1, up to ``ahead`` batches made ahead by a thread
        (``workers=0``) or by one separate process (``workers=1``); the batches are the same either way."""
        steps = range(start, self.steps)
        if workers == 0:
            made = prefetch(self.make, steps, ahead, name="miniclip-train-batches")
        else:
            made = prefetch_in_process(self.make, steps, ahead)
        try:
            yield from zip(steps, made)
        finally:
            made.close()  # stops and joins the thread, or ends the process
