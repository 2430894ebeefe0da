"""Layer normalization over the last axis (C features), with weight and bias.

Shape legend: x (..., C); weight, bias (C,); mean, rstd (..., 1).
"""

from ..autograd.function import Function
from ..backend import K
from ._util import operands


class LayerNorm(Function):
    """y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias, statistics over the last axis.

    The backward is the closed form (see ``reference.layer_norm_backward``):
    dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * weight.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        y, mean, rstd = K.layer_norm_forward(x, weight, bias, eps)
        ctx.save_for_backward(x, weight, mean, rstd)
        return y

    @staticmethod
    def backward(ctx, dy):
        x, weight, mean, rstd = ctx.saved_tensors
        dx, dweight, dbias = K.layer_norm_backward(dy, x, weight, mean, rstd)
        needs = ctx.needs_input_grad
        return (dx if needs[0] else None, dweight if needs[1] else None,
                dbias if needs[2] else None, None)


def layer_norm(x, weight, bias, eps=1e-5):
    """LayerNorm over the last axis; ``weight`` and ``bias`` have shape (C,). eps 1e-5 as in CLIP."""
    x, weight, bias = operands(x, weight, bias)
    C = x.shape[-1] if x.ndim else None
    if x.ndim == 0 or weight.shape != (C,) or bias.shape != (C,):
        raise ValueError(f"layer_norm: expected x (..., C) with weight and bias of shape (C,); got x "
                         f"{x.shape}, weight {weight.shape}, bias {bias.shape}")
    return LayerNorm.apply(x, weight, bias, float(eps))
