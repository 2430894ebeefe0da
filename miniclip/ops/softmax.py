"""softmax, log_softmax and logsumexp along one axis, in their max-shifted stable forms."""

import numpy as np

from ..autograd.function import Function
from ..backend import K
from ._util import operands


class Softmax(Function):
    """y = softmax(x) along ``axis``;  dx = y * (dy - sum(dy * y)) (no Jacobian is formed)."""

    @staticmethod
    def forward(ctx, x, axis):
        y = K.softmax(x, axis)
        ctx.save_for_backward(y)
        ctx.axis = axis
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved_tensors
        return K.softmax_backward(y, dy, ctx.axis), None


class LogSoftmax(Function):
    """y = x - logsumexp(x);  dx = dy - softmax(x) * sum(dy)."""

    @staticmethod
    def forward(ctx, x, axis):
        y = K.log_softmax(x, axis)
        ctx.save_for_backward(y)
        ctx.axis = axis
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved_tensors
        return K.log_softmax_backward(y, dy, ctx.axis), None


class LogSumExp(Function):
    """out = log sum exp(x) along ``axis``;  dx = dout * softmax(x) = dout * exp(x - out)."""

    @staticmethod
    def forward(ctx, x, axis, keepdims):
        out = K.logsumexp(x, axis, True)
        ctx.save_for_backward(x, out)
        ctx.axis = axis
        return out if keepdims else np.squeeze(out, axis=axis)

    @staticmethod
    def backward(ctx, dout):
        x, out = ctx.saved_tensors
        if dout.ndim < x.ndim:
            dout = np.expand_dims(dout, ctx.axis)
        return dout * np.exp(x - out), None, None


def _axis(axis, ndim, name):
    if not isinstance(axis, (int, np.integer)) or not -ndim <= axis < ndim:
        raise ValueError(f"{name}: expected an integer axis in [-{ndim}, {ndim}), got {axis!r}")
    return int(axis) % ndim


def softmax(x, axis=-1):
    """softmax along ``axis``: exp(x - max) / sum(exp(x - max))."""
    (x,) = operands(x)
    return Softmax.apply(x, _axis(axis, x.ndim, "softmax"))


def log_softmax(x, axis=-1):
    """log(softmax(x)) along ``axis``, computed as x - logsumexp(x)."""
    (x,) = operands(x)
    return LogSoftmax.apply(x, _axis(axis, x.ndim, "log_softmax"))


def logsumexp(x, axis=-1, keepdims=False):
    """log(sum(exp(x))) along ``axis``, shifted by the max so it never overflows."""
    (x,) = operands(x)
    return LogSumExp.apply(x, _axis(axis, x.ndim, "logsumexp"), bool(keepdims))
