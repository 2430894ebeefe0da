"""Batched matrix product with NumPy's broadcasting over leading (batch) axes.

Shape legend: (..., M, K) @ (..., K, N) -> (..., M, N); the ``...`` batch axes broadcast.
"""

import numpy as np

from ..autograd.function import Function
from ..backend import K
from ._util import operands, unbroadcast


def _swap_last2(x):
    return np.swapaxes(x, -1, -2)  # (..., M, K) -> (..., K, M), a view


class MatMul(Function):
    """out = a @ b.

    Backward, from out[m, n] = sum_k a[m, k] b[k, n]:
        da = dout @ b^T   (..., M, N) @ (..., N, K) -> (..., M, K)
        db = a^T @ dout   (..., K, M) @ (..., M, N) -> (..., K, N)
    then summed over any batch axes that were broadcast.
    """

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return K.matmul(a, b)

    @staticmethod
    def backward(ctx, dout):
        a, b = ctx.saved_tensors
        da = unbroadcast(K.matmul(dout, _swap_last2(b)), a.shape) if ctx.needs_input_grad[0] else None
        db = unbroadcast(K.matmul(_swap_last2(a), dout), b.shape) if ctx.needs_input_grad[1] else None
        return da, db


def matmul(a, b):
    """a @ b for tensors with at least 2 dimensions; leading axes broadcast."""
    a, b = operands(a, b)
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError(f"matmul: expected inputs with at least 2 dimensions, got shapes {a.shape} "
                         f"and {b.shape} (reshape a vector to (1, K) or (K, 1) first)")
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul: inner sizes differ: {a.shape} @ {b.shape} "
                         f"({a.shape[-1]} != {b.shape[-2]})")
    return MatMul.apply(a, b)
