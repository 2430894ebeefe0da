"""A fully connected layer as one op: y = x W^T + b, optionally joining a residual stream.

Shape legend: x (..., C_in); weight W (C_out, C_in), PyTorch's layout; bias b (C_out,);
residual r (..., C_out); y (..., C_out); R = the product of the leading axes.

One op instead of reshape -> transpose -> matmul -> add -> reshape (-> add): the same
arithmetic, with one graph node and no temporaries besides y. On the compiled backend the
bias and the residual are added inside the GEMM (``K.linear``: each tile of y gets them while
it is still in cache), so y is written once instead of once per term.
"""

from ..autograd.function import Function
from ..backend import K
from ._util import operands


class Linear(Function):
    """y = x W^T + b (+ r) over the rows of x.

    Backward, from y[n, o] = sum_i x[n, i] W[o, i] + b[o] + r[n, o]:
        dx = dy W          (R, C_out) @ (C_out, C_in) -> (R, C_in)
        dW = dy^T x        (C_out, R) @ (R, C_in)     -> (C_out, C_in)
        db = sum_n dy[n]   (R, C_out)                 -> (C_out,)
        dr = dy            (the residual passes straight through, as in an add)
    """

    @staticmethod
    def forward(ctx, x, weight, bias, residual):
        x2 = x.reshape(-1, x.shape[-1])                 # (..., C_in) -> (R, C_in)
        r2 = None if residual is None else residual.reshape(-1, weight.shape[0])  # (..., C_out) -> (R, C_out)
        y = K.linear(x2, weight, bias, r2)              # (R, C_in) @ (C_in, C_out) + b + r -> (R, C_out)
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
        dr = dy if needs[3] else None                   # never written to: the engine sums into new arrays
        return dx, dw, db, dr


def linear(x, weight, bias=None, residual=None):
    """x (..., C_in) @ weight (C_out, C_in)^T + bias (C_out,) [+ residual (..., C_out)] -> (..., C_out).

    ``residual`` is the stream a transformer block adds its output to: ``linear(h, W, b, residual=x)``
    is ``x + linear(h, W, b)`` as one op (the add happens inside the GEMM on the compiled backend).
    """
    x, weight = operands(x, weight)
    if weight.ndim != 2 or x.ndim < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: expected x (..., C_in) and weight (C_out, C_in) with the same C_in; "
                         f"got x {x.shape}, weight {weight.shape}")
    if bias is not None:
        (bias,) = operands(bias)
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"linear: expected bias of shape ({weight.shape[0]},), got {bias.shape}")
    if residual is not None:
        (residual,) = operands(residual)
        out_shape = x.shape[:-1] + (weight.shape[0],)
        if residual.shape != out_shape:
            raise ValueError(f"linear: expected residual of the output's shape {out_shape}, got {residual.shape}")
    return Linear.apply(x, weight, bias, residual)
