"""L2 normalization along an axis: CLIP compares unit-length embeddings."""

import numpy as np

from ..autograd.function import Function
from ._util import operands


class Normalize(Function):
    """y = x / max(||x||, eps) along ``axis``.

    Backward (for ||x|| > eps), with n = ||x|| and y = x / n:
        dx = (dy - y * sum(dy * y)) / n
    the component of dy along y is removed, since scaling x does not change y.
    """

    @staticmethod
    def forward(ctx, x, axis, eps):
        norm = np.sqrt(np.sum(x * x, axis=axis, keepdims=True))
        clamped = norm <= eps
        norm = np.maximum(norm, eps).astype(x.dtype, copy=False)
        y = x / norm
        ctx.save_for_backward(y, norm, clamped)
        ctx.axis = axis
        return y

    @staticmethod
    def backward(ctx, dy):
        y, norm, clamped = ctx.saved_tensors
        radial = np.where(clamped, 0, np.sum(dy * y, axis=ctx.axis, keepdims=True)).astype(dy.dtype)
        return (dy - y * radial) / norm, None, None


def normalize(x, axis=-1, eps=1e-12):
    """``x`` divided by its L2 norm along ``axis`` (norms below ``eps`` are clamped to eps)."""
    (x,) = operands(x)
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"normalize: axis {axis} is out of range for shape {x.shape}")
    return Normalize.apply(x, axis % x.ndim, float(eps))
