"""``logsigmoid``: log(sigmoid(x)), computed without overflow, for the SigLIP loss.

    log sigmoid(x) = -log(1 + exp(-x)) = -softplus(-x) = min(x, 0) - log1p(exp(-|x|))

The last form never exponentiates a positive number, so it neither overflows for
x << 0 nor loses digits for x >> 0 (where log(sigmoid(x)) ~ -exp(-x)).
"""

import numpy as np

from ..autograd.function import Function
from ..backend.reference import sigmoid
from ._util import operands


class LogSigmoid(Function):
    """y = log sigmoid(x);  dy/dx = 1 - sigmoid(x) = sigmoid(-x)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        return dy * sigmoid(-x)                 # the stable sigmoid, never exp of a positive number


def logsigmoid(x):
    """log(sigmoid(x)), stable for any x."""
    return LogSigmoid.apply(*operands(x))
