"""Cross-entropy with integer targets, the building block of CLIP's InfoNCE loss.

Shape legend: logits (R, C) one row of C class scores per example; targets (R,).
"""

import numpy as np

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from ..backend import K
from ._util import operands


class CrossEntropy(Function):
    """loss = -(1/R) sum_i log_softmax(logits)[i, targets[i]].

    dlogits = (softmax(logits) - one_hot(targets)) / R, times the upstream dloss:
    the famous "prediction minus truth" gradient.
    """

    @staticmethod
    def forward(ctx, logits, targets):
        loss, log_probs = K.cross_entropy_forward(logits, targets)
        ctx.save_for_backward(log_probs, targets)
        return loss

    @staticmethod
    def backward(ctx, dloss):
        log_probs, targets = ctx.saved_tensors
        return K.cross_entropy_backward(log_probs, targets, dloss), None


def cross_entropy(logits, targets):
    """Mean cross-entropy of ``logits`` (R, C) against integer class ``targets`` (R,)."""
    (logits,) = operands(logits)
    targets = targets.data if isinstance(targets, Tensor) else np.asarray(targets)
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy: expected logits of shape (R, C), got {logits.shape}")
    if not np.issubdtype(targets.dtype, np.integer) or targets.shape != (logits.shape[0],):
        raise ValueError(f"cross_entropy: expected integer targets of shape ({logits.shape[0]},), "
                         f"got {targets.dtype} {targets.shape}")
    C = logits.shape[1]
    if targets.size and (targets.min() < 0 or targets.max() >= C):
        raise IndexError(f"cross_entropy: targets must lie in [0, {C}), got min {targets.min()} "
                         f"and max {targets.max()}")
    return CrossEntropy.apply(logits, targets)
