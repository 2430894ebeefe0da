"""A fully connected layer as one op: y = x W^T + b.

Shape legend: x (..., C_in); weight W (C_out, C_in), PyTorch's layout; bias b (C_out,);
y (..., C_out); R = the product of the leading axes.

One op instead of reshape -> transpose -> matmul -> add -> reshape: the same arithmetic
(a GEMM, then the bias added in place), with one graph node and no temporaries besides y.
"""

from ..autograd.function import Function
from ..backend import K
from ._util import operands


class Linear(Function):
    """y = x W^T + b over the rows of x.

    Backward, from y[r, o] = sum_i x[r, i] W[o, i] + b[o]:
        dx = dy W          (R, C_out) @ (C_out, C_in) -> (R, C_in)
        dW = dy^T x        (C_out, R) @ (R, C_in)     -> (C_out, C_in)
        db = sum_r dy[r]   (R, C_out)                 -> (C_out,)
    """

    @staticmethod
    def forward(ctx, x, weight, bias):
        x2 = x.reshape(-1, x.shape[-1])                 # (..., C_in) -> (R, C_in)
        y = K.matmul(x2, weight.T)                      # (R, C_in) @ (C_in, C_out) -> (R, C_out)
        if bias is not None:
            y += bias                                   # (R, C_out) + (C_out,), in place
        ctx.save_for_backward(x2, weight)
        ctx.x_shape = x.shape
        return y.reshape(x.shape[:-1] + (weight.shape[0],))  # (R, C_out) -> (..., C_out)

    @staticmethod
    def backward(ctx, dy):
        x2, weight = ctx.saved_tensors
        dy2 = dy.reshape(-1, weight.shape[0])           # (..., C_out) -> (R, C_out)
        needs = ctx.needs_input_grad
        dx = K.matmul(dy2, weight).reshape(ctx.x_shape) if needs[0] else None  # (R, C_in) -> (..., C_in)
        dw = K.matmul(dy2.T, x2) if needs[1] else None  # (C_out, R) @ (R, C_in) -> (C_out, C_in)
        db = dy2.sum(axis=0) if needs[2] else None
        return dx, dw, db


def linear(x, weight, bias=None):
    """x (..., C_in) @ weight (C_out, C_in)^T + bias (C_out,) -> (..., C_out)."""
    x, weight = operands(x, weight)
    if weight.ndim != 2 or x.ndim < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: expected x (..., C_in) and weight (C_out, C_in) with the same C_in; "
                         f"got x {x.shape}, weight {weight.shape}")
    if bias is None:
        return Linear.apply(x, weight, None)
    (bias,) = operands(bias)
    if bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: expected bias of shape ({weight.shape[0]},), got {bias.shape}")
    return Linear.apply(x, weight, bias)
