"""Elementwise ops: add, sub, mul, div, neg, pow, exp, log, sqrt, tanh, sigmoid.

Binary ops broadcast as NumPy does; their backward sums each gradient back to
its input's shape (``unbroadcast``). Every backward is the derivative written
out, using what the forward saved.
"""

import numbers

import numpy as np

from ..autograd.function import Function
from ..backend import reference as _ref
from ._util import operands, unbroadcast


class Add(Function):
    """out = a + b;  da = dout, db = dout (each summed back to its shape)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (a.shape, b.shape)
        return a + b

    @staticmethod
    def backward(ctx, dout):
        sa, sb = ctx.shapes
        return (unbroadcast(dout, sa) if ctx.needs_input_grad[0] else None,
                unbroadcast(dout, sb) if ctx.needs_input_grad[1] else None)


class Sub(Function):
    """out = a - b;  da = dout, db = -dout."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (a.shape, b.shape)
        return a - b

    @staticmethod
    def backward(ctx, dout):
        sa, sb = ctx.shapes
        return (unbroadcast(dout, sa) if ctx.needs_input_grad[0] else None,
                unbroadcast(-dout, sb) if ctx.needs_input_grad[1] else None)


class Mul(Function):
    """out = a * b;  da = dout * b, db = dout * a."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, dout):
        a, b = ctx.saved_tensors
        return (unbroadcast(dout * b, a.shape) if ctx.needs_input_grad[0] else None,
                unbroadcast(dout * a, b.shape) if ctx.needs_input_grad[1] else None)


class Div(Function):
    """out = a / b;  da = dout / b, db = -dout * a / b^2 = -dout * out / b."""

    @staticmethod
    def forward(ctx, a, b):
        out = a / b
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx, dout):
        a, b, out = ctx.saved_tensors
        return (unbroadcast(dout / b, a.shape) if ctx.needs_input_grad[0] else None,
                unbroadcast(-dout * out / b, b.shape) if ctx.needs_input_grad[1] else None)


class Neg(Function):
    """out = -a;  da = -dout."""

    @staticmethod
    def forward(ctx, a):
        return -a

    @staticmethod
    def backward(ctx, dout):
        return -dout


class Pow(Function):
    """out = a ** p for a Python number p;  da = dout * p * a ** (p - 1)."""

    @staticmethod
    def forward(ctx, a, p):
        ctx.save_for_backward(a)
        ctx.p = p
        return a ** p

    @staticmethod
    def backward(ctx, dout):
        (a,) = ctx.saved_tensors
        p = ctx.p
        return dout * (p * a ** (p - 1)), None


class Exp(Function):
    """out = exp(a);  da = dout * out."""

    @staticmethod
    def forward(ctx, a):
        out = np.exp(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, dout):
        (out,) = ctx.saved_tensors
        return dout * out


class Log(Function):
    """out = log(a);  da = dout / a."""

    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return np.log(a)

    @staticmethod
    def backward(ctx, dout):
        (a,) = ctx.saved_tensors
        return dout / a


class Sqrt(Function):
    """out = sqrt(a);  da = dout / (2 out)."""

    @staticmethod
    def forward(ctx, a):
        out = np.sqrt(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, dout):
        (out,) = ctx.saved_tensors
        return dout / (2 * out)


class Tanh(Function):
    """out = tanh(a);  da = dout * (1 - out^2)."""

    @staticmethod
    def forward(ctx, a):
        out = np.tanh(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, dout):
        (out,) = ctx.saved_tensors
        return dout * (1 - out * out)


class Sigmoid(Function):
    """out = 1 / (1 + exp(-a));  da = dout * out * (1 - out)."""

    @staticmethod
    def forward(ctx, a):
        out = _ref.sigmoid(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, dout):
        (out,) = ctx.saved_tensors
        return dout * out * (1 - out)


def add(a, b):
    """a + b, broadcasting."""
    return Add.apply(*operands(a, b))


def sub(a, b):
    """a - b, broadcasting."""
    return Sub.apply(*operands(a, b))


def mul(a, b):
    """a * b, broadcasting."""
    return Mul.apply(*operands(a, b))


def div(a, b):
    """a / b, broadcasting."""
    return Div.apply(*operands(a, b))


def neg(a):
    """-a."""
    return Neg.apply(*operands(a))


def pow(a, exponent):
    """a ** exponent for a Python number ``exponent`` (a tensor exponent is not supported)."""
    if not isinstance(exponent, numbers.Real):
        raise TypeError(f"pow: expected a Python number as the exponent, got {type(exponent).__name__}")
    (a,) = operands(a)
    return Pow.apply(a, exponent)


def exp(a):
    """exp(a)."""
    return Exp.apply(*operands(a))


def log(a):
    """log(a) (natural)."""
    return Log.apply(*operands(a))


def sqrt(a):
    """sqrt(a)."""
    return Sqrt.apply(*operands(a))


def tanh(a):
    """tanh(a)."""
    return Tanh.apply(*operands(a))


def sigmoid(a):
    """1 / (1 + exp(-a)), computed without overflow."""
    return Sigmoid.apply(*operands(a))
