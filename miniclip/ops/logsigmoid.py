"""``logsigmoid``: log(sigmoid(x)), computed without overflow, for the SigLIP loss.

    log sigmoid(x) = -log(1 + exp(-x)) = -softplus(-x) = min(x, 0) - log1p(exp(-|x|))

The last form never exponentiates a positive number, so it neither overflows for
x << 0 nor loses digits for x >> 0 (where log(sigmoid(x)) ~ -exp(-x)).
"""

import numpy as np

from ..autograd.function import Function
from ._util import operands


def _sigmoid_of_minus(x):
    """sigmoid(-x) = 1 / (1 + exp(x)), with exp only of non-positive numbers."""
    e = np.exp(-np.abs(x))                    # exp(-|x|) in (0, 1]
    return np.where(x >= 0, e / (1 + e), 1 / (1 + e)).astype(x.dtype, copy=False)


class LogSigmoid(Function):
    """y = log sigmoid(x);  dy/dx = 1 - sigmoid(x) = sigmoid(-x)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        return dy * _sigmoid_of_minus(x)


def logsigmoid(x):
    """log(sigmoid(x)), stable for any x."""
    return LogSigmoid.apply(*operands(x))
