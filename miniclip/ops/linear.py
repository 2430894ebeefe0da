"""A fully connected layer as one op: y = x W^T + b, optionally joining a residual stream.

Shape legend: x (..., C_in); weight W (C_out, C_in), PyTorch's layout; bias b (C_out,);
residual r (..., C_out); y (..., C_out); R = the product of the leading axes.

One op instead of reshape -> transpose -> matmul -> add -> reshape (-> add): the same
arithmetic, with one graph node and no temporaries besides y. On the compiled backend the
bias and the residual are added inside the GEMM (``K.linear``: each tile of y gets them while
it is still in cache), so y is written once instead of once per term.

How a transformer block's ``x = x + self.mlp(self.ln_2(x))`` gets that fusion: ``linear``
returns a ``LinearOutput``, a Tensor whose values are computed at its first use. When that use
is ``r + y`` (or ``y + r``) with r of y's shape and dtype, the add is that same first use:
it becomes ``linear(x, W, b, residual=r)``, one GEMM whose epilogue adds r. Any other use
(``.data``, ``.shape``, another op) computes y alone, and y is an ordinary Tensor from then on.
"""

from ..autograd.function import Function, is_grad_enabled, set_grad_enabled
from ..autograd.tensor import Tensor
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


class LinearOutput(Tensor):
    """y = linear(x, W, b), computed at its first use, so that ``r + y`` can be one GEMM.

    Until then only the inputs are kept (and whether gradients were being recorded when the
    layer ran); any attribute a Tensor has (``data``, ``shape``, ``requires_grad``, ...) runs the
    op and the object becomes the ordinary Tensor it would have been. The one exception is
    ``r + y``: with r a Tensor of y's shape and dtype, the result is ``Linear(x, W, b, r)``,
    the add done in the GEMM's epilogue; y itself stays unevaluated (used later, it is computed
    then, with the same result). In the model the first use is the next line, so the inputs
    cannot change in between; code that keeps a ``LinearOutput`` must not change x, W or b in
    place before it reads it.
    """

    def __init__(self, x, weight, bias):
        self._pending = (x, weight, bias, is_grad_enabled())  # Tensor.__init__ runs at the first use

    def __getattr__(self, name):  # called only for attributes not set yet: evaluate y, then read
        if "_pending" not in self.__dict__:
            raise AttributeError(f"'{type(self).__name__}' object has no attribute {name!r}")
        y = self._apply(None)
        self.__dict__.update(y.__dict__)  # self becomes y: data, requires_grad, the graph node
        del self._pending
        return getattr(self, name)

    def _apply(self, residual):
        x, weight, bias, record = self._pending
        with set_grad_enabled(record):
            return Linear.apply(x, weight, bias, residual)

    def _fuses_with(self, r):
        x, weight = self._pending[:2]
        return (r is not self and isinstance(r, Tensor) and r.shape == x.shape[:-1] + (weight.shape[0],)
                and r.dtype == x.dtype)

    def __add__(self, other):
        if "_pending" in self.__dict__ and self._fuses_with(other):
            return self._apply(other)   # y + r: (x W^T + b) + r in one op
        return super().__add__(other)

    def __radd__(self, other):
        if "_pending" in self.__dict__ and self._fuses_with(other):
            return self._apply(other)   # r + y: the same sum, in one op
        return super().__radd__(other)


def linear(x, weight, bias=None, residual=None):
    """x (..., C_in) @ weight (C_out, C_in)^T + bias (C_out,) [+ residual (..., C_out)] -> (..., C_out).

    ``residual`` is the stream a transformer block adds its output to: ``linear(h, W, b, residual=x)``
    is ``x + linear(h, W, b)`` as one op (the add happens inside the GEMM on the compiled backend).
    Without ``residual`` the result is a ``LinearOutput``: ``x + linear(h, W, b)`` fuses the same way.
    """
    x, weight = operands(x, weight)
    if weight.ndim != 2 or x.ndim < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: expected x (..., C_in) and weight (C_out, C_in) with the same C_in; "
                         f"got x {x.shape}, weight {weight.shape}")
    if bias is not None:
        (bias,) = operands(bias)
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"linear: expected bias of shape ({weight.shape[0]},), got {bias.shape}")
    if residual is None:
        return LinearOutput(x, weight, bias)
    (residual,) = operands(residual)
    out_shape = x.shape[:-1] + (weight.shape[0],)
    if residual.shape != out_shape:
        raise ValueError(f"linear: expected residual of the output's shape {out_shape}, got {residual.shape}")
    return Linear.apply(x, weight, bias, residual)
