"""Embedding lookup: one row of a table per integer id.

Shape legend: weight (V, C) the table; ids (...) integers in [0, V); out (..., C).
"""

import numpy as np

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from ..backend import K
from ._util import operands


class Embedding(Function):
    """out[...] = weight[ids[...]];  dweight[v] = sum of dout over the positions where ids == v."""

    @staticmethod
    def forward(ctx, weight, ids):
        ctx.shape, ctx.ids = weight.shape, ids
        return weight[ids]

    @staticmethod
    def backward(ctx, dout):
        V, C = ctx.shape
        # scatter-add: an id that appears twice receives both rows of dout
        return K.embedding_backward(ctx.ids.reshape(-1), dout.reshape(-1, C), V), None  # (..., C) -> (N, C)


def embedding(ids, weight):
    """Look up ``weight[ids]``; ``ids`` must be integers in [0, vocabulary size)."""
    (weight,) = operands(weight)
    ids = ids.data if isinstance(ids, Tensor) else np.asarray(ids)
    if weight.ndim != 2:
        raise ValueError(f"embedding: expected weight of shape (V, C), got {weight.shape}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"embedding: expected integer ids, got {ids.dtype}")
    V = weight.shape[0]
    if ids.size and (ids.min() < 0 or ids.max() >= V):
        raise IndexError(f"embedding: ids must lie in [0, {V}), got min {ids.min()} and max {ids.max()}")
    return Embedding.apply(weight, ids)
