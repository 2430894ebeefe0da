"""Loader: shuffled, reproducible batches of (images, tokens), prepared by a background thread.

Shape legend:  B batch size,  R image resolution,  L context length.

A dataset is anything with ``len(dataset)`` and ``dataset[i] -> (image, caption, label)``, where image is
a Pillow image or a uint8 array (H, W, 3) and label an int (-1 when there is none): ``ShapesDataset`` and
``CsvDataset`` both are.

Reproducibility: epoch e visits the indices in ``permutation(default_rng([seed, e]))`` order, and item i
of epoch e gets its training augmentation from ``default_rng([seed, e, i])``. So a batch depends only on
(seed, epoch, position), not on timing or threads, and resuming at epoch e replays it exactly. Iterating
the loader again starts the next epoch (a new order); ``loader.epoch(e)`` asks for one by number.

Prefetching (``prefetch.py``): while the model computes on one batch, a thread draws, decodes, preprocesses
and tokenizes the next ``prefetch`` ones (Pillow and NumPy release the GIL for much of that work). Leaving
the loop early (``break``, an exception) stops and joins the thread; ``prefetch=0`` does everything inline.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .prefetch import prefetch
from .transforms import Preprocess


class Batch(NamedTuple):
    """One batch; unpack the first two as ``images, tokens, *_ = batch``."""

    images: np.ndarray  # (B, 3, R, R) float
    tokens: np.ndarray  # (B, L) int64: [SOT] ids [EOT] 0 ...
    labels: np.ndarray  # (B,) int64 class index, -1 when the dataset has none
    captions: list      # B strings
    indices: np.ndarray  # (B,) int64 dataset indices


class Loader:
    """Batches of ``dataset`` for training (``shuffle=True``) or evaluation (``shuffle=False``, in order)."""

    def __init__(self, dataset, batch_size: int, preprocess, tokenizer, context_length: int = 77,
                 truncate: bool = False, shuffle: bool = True, seed: int = 0, drop_last: bool = False,
                 prefetch: int = 2):
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if not isinstance(prefetch, (int, np.integer)) or prefetch < 0:
            raise ValueError(f"prefetch must be an int >= 0 (0: no background thread), got {prefetch!r}")
        if len(dataset) == 0:
            raise ValueError("dataset is empty")
        if drop_last and len(dataset) < batch_size:
            raise ValueError(f"drop_last=True with batch_size {batch_size} > dataset size {len(dataset)} "
                             f"would give no batch at all")
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.preprocess, self.tokenizer = preprocess, tokenizer
        self.context_length, self.truncate = context_length, truncate
        self.shuffle, self.seed, self.drop_last, self.prefetch = shuffle, int(seed), drop_last, int(prefetch)
        self.next_epoch = 0  # the epoch the next ``iter(loader)`` runs

    def __len__(self) -> int:
        """Batches per epoch."""
        n, b = len(self.dataset), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def order(self, epoch: int) -> np.ndarray:
        """Dataset indices in the order epoch ``epoch`` visits them."""
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, int(epoch)]).permutation(n)

    def make_batch(self, indices, epoch: int) -> Batch:
        """Read, preprocess and tokenize the items at ``indices`` (what the thread runs)."""
        images, captions, labels = [], [], []
        for i in indices:
            image, caption, label = self.dataset[int(i)]
            if isinstance(self.preprocess, Preprocess):
                rng = np.random.default_rng([self.seed, int(epoch), int(i)]) if self.preprocess.train else None
                images.append(self.preprocess(image, rng))
            else:
                images.append(self.preprocess(image))
            captions.append(caption)
            labels.append(label)
        tokens = self.tokenizer(captions, context_length=self.context_length, truncate=self.truncate)
        return Batch(images=np.stack(images), tokens=tokens, labels=np.asarray(labels, dtype=np.int64),
                     captions=captions, indices=np.asarray(indices, dtype=np.int64))

    def _batches_of(self, epoch: int):
        order, b = self.order(epoch), self.batch_size
        stop = len(order) - len(order) % b if self.drop_last else len(order)
        return [order[s:s + b] for s in range(0, stop, b)]

    def epoch(self, epoch: int):
        """Iterator over the batches of epoch ``epoch`` (call ``.close()`` if you keep it and stop early)."""
        return prefetch((lambda chunk: self.make_batch(chunk, epoch)), self._batches_of(epoch), self.prefetch,
                        name=f"miniclip-loader-epoch-{epoch}")

    def __iter__(self):
        epoch, self.next_epoch = self.next_epoch, self.next_epoch + 1
        return self.epoch(epoch)

    def __repr__(self) -> str:
        return (f"Loader({self.dataset!r}, batch_size={self.batch_size}, shuffle={self.shuffle}, seed={self.seed}, "
                f"drop_last={self.drop_last}, prefetch={self.prefetch})")
