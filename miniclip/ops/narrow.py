"""``narrow``: a contiguous slice along one axis (PyTorch's ``Tensor.narrow``).

Shape legend: a (..., L, ...) with L along ``axis``; out (..., length, ...).

``getitem`` handles any index, so its backward needs a scatter-add
(``np.add.at``), which is slow. A slice along one axis reads every element at
most once, so its backward is a plain assignment into zeros. The vision tower
uses it to take the class token out of the sequence (``model/vit.py``).
"""

import numpy as np

from ..autograd.function import Function
from ._util import operands


class Narrow(Function):
    """out = a[..., start:start + length, ...] along ``axis``;  da = zeros, da[same slice] = dout."""

    @staticmethod
    def forward(ctx, a, axis, start, length):
        index = (slice(None),) * axis + (slice(start, start + length),)
        ctx.shape, ctx.dtype, ctx.index = a.shape, a.dtype, index
        return a[index]

    @staticmethod
    def backward(ctx, dout):
        da = np.zeros(ctx.shape, dtype=ctx.dtype)
        da[ctx.index] = dout  # each element was read once: assignment, no scatter-add needed
        return da, None, None, None


def narrow(a, axis, start, length):
    """The slice ``start:start + length`` of ``a`` along ``axis`` (a view in the forward)."""
    (a,) = operands(a)
    if a.ndim == 0 or not -a.ndim <= axis < a.ndim:
        raise ValueError(f"narrow: axis {axis} is out of range for a tensor of shape {a.shape}")
    axis %= a.ndim
    start, length = int(start), int(length)
    if start < 0 or length < 0 or start + length > a.shape[axis]:
        raise ValueError(f"narrow: expected 0 <= start and start + length <= {a.shape[axis]} along axis "
                         f"{axis} of shape {a.shape}; got start {start}, length {length}")
    return Narrow.apply(a, axis, start, length)
