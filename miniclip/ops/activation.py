"""Activations: GELU (tanh form), QuickGELU (the original CLIP's) and ReLU (its ResNet's)."""

import numpy as np

from ..autograd.function import Function
from ..backend import K
from ._util import operands


class GELU(Function):
    """y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)));  the backward recomputes from x."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return K.gelu_forward(x)

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        return K.gelu_backward(x, dy)


class QuickGELU(Function):
    """y = x * sigmoid(1.702 x);  dx = dy * (s + 1.702 x s (1 - s)), s = sigmoid(1.702 x).

    The original CLIP models were trained with this approximation; loading their
    weights into a model with exact GELU silently degrades it.
    """

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return K.quick_gelu_forward(x)

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        return K.quick_gelu_backward(x, dy)


class ReLU(Function):
    """y = max(x, 0);  dx = dy where x > 0, else 0 (the subgradient 0 at x = 0, as PyTorch)."""

    @staticmethod
    def forward(ctx, x):
        y = np.maximum(x, 0)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved_tensors
        return K.relu_backward(y, dy)                                   # np.where(y > 0, dy, 0)


def relu(x):
    """ReLU: max(x, 0)."""
    return ReLU.apply(*operands(x))


def gelu(x):
    """GELU, tanh approximation."""
    return GELU.apply(*operands(x))


def quick_gelu(x):
    """QuickGELU: x * sigmoid(1.702 x)."""
    return QuickGELU.apply(*operands(x))
