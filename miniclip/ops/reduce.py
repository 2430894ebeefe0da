"""Reductions over axes: sum, mean, max (each with ``keepdims``)."""

import numpy as np

from ..autograd.function import Function
from ._util import normalize_axes, operands


def _expand(dout, in_shape, axes, keepdims):
    """Put back the reduced axes as size 1 so ``dout`` broadcasts against the input."""
    if not keepdims:
        dout = np.expand_dims(dout, axes)
    return dout


class Sum(Function):
    """out = sum of a over axes;  da = dout broadcast back over the summed axes."""

    @staticmethod
    def forward(ctx, a, axes, keepdims):
        ctx.shape, ctx.axes, ctx.keepdims = a.shape, axes, keepdims
        return np.sum(a, axis=axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, dout):
        d = _expand(dout, ctx.shape, ctx.axes, ctx.keepdims)
        return np.ascontiguousarray(np.broadcast_to(d, ctx.shape)), None, None


class Mean(Function):
    """out = mean of a over axes (n elements each);  da = dout / n, broadcast back."""

    @staticmethod
    def forward(ctx, a, axes, keepdims):
        ctx.shape, ctx.axes, ctx.keepdims = a.shape, axes, keepdims
        ctx.n = int(np.prod([a.shape[i] for i in axes]))
        return np.mean(a, axis=axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, dout):
        d = _expand(dout, ctx.shape, ctx.axes, ctx.keepdims) / ctx.n
        return np.ascontiguousarray(np.broadcast_to(d, ctx.shape)), None, None


class Max(Function):
    """out = max of a over axes;  da = dout at the maximum, 0 elsewhere.

    Ties share the gradient equally (the subgradient PyTorch's amax uses), so
    the gradient's total is still dout.
    """

    @staticmethod
    def forward(ctx, a, axes, keepdims):
        out = np.max(a, axis=axes, keepdims=True)
        ctx.save_for_backward(a, out)
        ctx.axes, ctx.keepdims = axes, keepdims
        return out if keepdims else np.squeeze(out, axis=axes)

    @staticmethod
    def backward(ctx, dout):
        a, out = ctx.saved_tensors
        is_max = (a == out).astype(a.dtype)
        count = np.sum(is_max, axis=ctx.axes, keepdims=True)
        d = _expand(dout, a.shape, ctx.axes, ctx.keepdims)
        return d * is_max / count, None, None


def sum(a, axis=None, keepdims=False):
    """Sum over ``axis`` (None: all axes; int or tuple)."""
    (a,) = operands(a)
    return Sum.apply(a, normalize_axes(axis, a.ndim), bool(keepdims))


def mean(a, axis=None, keepdims=False):
    """Mean over ``axis`` (None: all axes; int or tuple)."""
    (a,) = operands(a)
    return Mean.apply(a, normalize_axes(axis, a.ndim), bool(keepdims))


def max(a, axis=None, keepdims=False):
    """Maximum over ``axis`` (None: all axes; int or tuple)."""
    (a,) = operands(a)
    if a.size == 0:
        raise ValueError(f"max: the input is empty (shape {a.shape})")
    return Max.apply(a, normalize_axes(axis, a.ndim), bool(keepdims))
