"""Ops that move data without arithmetic: reshape, transpose / permute, indexing,
gather, concatenate, stack, and the dtype cast.

Each backward moves the gradient back to where the data came from: the inverse
reshape or permutation, a scatter-add for indexing (an element read twice gets
both gradients), a split for concatenate.
"""

import numpy as np

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from ._util import operands


class Reshape(Function):
    """out = a.reshape(shape);  da = dout.reshape(a.shape)."""

    @staticmethod
    def forward(ctx, a, shape):
        ctx.shape = a.shape
        return a.reshape(shape)

    @staticmethod
    def backward(ctx, dout):
        return dout.reshape(ctx.shape), None


class Permute(Function):
    """out = a.transpose(axes);  da = dout.transpose(inverse permutation)."""

    @staticmethod
    def forward(ctx, a, axes):
        ctx.inverse = tuple(np.argsort(axes))
        return np.transpose(a, axes)

    @staticmethod
    def backward(ctx, dout):
        return np.transpose(dout, ctx.inverse), None


class GetItem(Function):
    """out = a[index] (basic or integer-array indexing);  da = zeros, then da[index] += dout.

    With integer arrays in the index an element can be selected twice
    (``a[[0, 0]]``) and must receive both gradients: that needs ``np.add.at``, the
    unbuffered scatter-add (``da[index] += dout`` would keep only one). Basic
    indexing (slices, integers, None, ...) selects each element at most once, so a
    plain assignment is enough, and much faster.
    """

    @staticmethod
    def forward(ctx, a, index):
        ctx.shape, ctx.dtype, ctx.index = a.shape, a.dtype, index
        return a[index]

    @staticmethod
    def backward(ctx, dout):
        da = np.zeros(ctx.shape, dtype=ctx.dtype)
        if _is_basic_index(ctx.index):
            da[ctx.index] = dout
        else:
            np.add.at(da, ctx.index, dout)
        return da, None


class Gather(Function):
    """out = take_along_axis(a, index, axis): out[..., i, ...] = a[..., index[..., i, ...], ...].

    Backward scatters dout back to the positions it was read from (scatter-add).
    """

    @staticmethod
    def forward(ctx, a, index, axis):
        ctx.shape, ctx.dtype, ctx.index, ctx.axis = a.shape, a.dtype, index, axis
        return np.take_along_axis(a, index, axis=axis)

    @staticmethod
    def backward(ctx, dout):
        da = np.zeros(ctx.shape, dtype=ctx.dtype)
        where = list(np.indices(ctx.index.shape, sparse=True))  # open grid over the index's shape
        where[ctx.axis] = ctx.index
        np.add.at(da, tuple(where), dout)
        return da, None, None


class Concatenate(Function):
    """out = concatenate(xs, axis);  each dx is its slice of dout along ``axis``."""

    @staticmethod
    def forward(ctx, axis, *xs):
        ctx.axis = axis
        ctx.bounds = np.cumsum([x.shape[axis] for x in xs])[:-1]
        return np.concatenate(xs, axis=axis)

    @staticmethod
    def backward(ctx, dout):
        return (None,) + tuple(np.split(dout, ctx.bounds, axis=ctx.axis))


class Stack(Function):
    """out = stack(xs, axis);  each dx is dout indexed at its position along ``axis``."""

    @staticmethod
    def forward(ctx, axis, *xs):
        ctx.axis = axis
        return np.stack(xs, axis=axis)

    @staticmethod
    def backward(ctx, dout):
        n = dout.shape[ctx.axis]
        return (None,) + tuple(np.take(dout, i, axis=ctx.axis) for i in range(n))


class Cast(Function):
    """out = a.astype(dtype);  da = dout.astype(a.dtype)."""

    @staticmethod
    def forward(ctx, a, dtype):
        ctx.dtype = a.dtype
        return a.astype(dtype)

    @staticmethod
    def backward(ctx, dout):
        return dout.astype(ctx.dtype), None


def reshape(a, shape):
    """``a`` with a new shape of the same size (one entry may be -1)."""
    (a,) = operands(a)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    try:
        np.empty(a.shape, dtype=np.bool_).reshape(shape)  # validate cheaply, with NumPy's rules
    except ValueError:
        raise ValueError(f"reshape: cannot reshape a tensor of shape {a.shape} "
                         f"({a.size} elements) into {shape}") from None
    return Reshape.apply(a, shape)


def permute(a, axes):
    """Reorder the axes of ``a``: out.shape[i] = a.shape[axes[i]]."""
    (a,) = operands(a)
    axes = tuple(int(x) % a.ndim if a.ndim else int(x) for x in axes)
    if sorted(axes) != list(range(a.ndim)):
        raise ValueError(f"permute: expected a permutation of range({a.ndim}), got {axes}")
    return Permute.apply(a, axes)


def transpose(a, axes=None):
    """With ``axes=None``, swap the last two axes (a matrix transpose, batched);
    otherwise the same as ``permute(a, axes)``."""
    (a,) = operands(a)
    if axes is None:
        if a.ndim < 2:
            raise ValueError(f"transpose: expected at least 2 dimensions, got shape {a.shape}")
        axes = tuple(range(a.ndim - 2)) + (a.ndim - 1, a.ndim - 2)
    return permute(a, axes)


def _is_basic_index(index):
    """True when ``index`` holds only slices, integers, None and Ellipsis (no arrays)."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (slice, int, np.integer)) for p in parts)


def _plain_index(index):
    """Tensors inside an index become their integer arrays."""
    if isinstance(index, tuple):
        return tuple(_plain_index(i) for i in index)
    if isinstance(index, Tensor):
        index = index.data
    if isinstance(index, np.ndarray) and not (np.issubdtype(index.dtype, np.integer) or index.dtype == bool):
        raise TypeError(f"index arrays must be integers or booleans, got {index.dtype}")
    return index


def getitem(a, index):
    """``a[index]``: slices, integers, ``None``, ``...`` and integer arrays, as NumPy."""
    (a,) = operands(a)
    return GetItem.apply(a, _plain_index(index))


def gather(a, axis, index):
    """Pick one element per position along ``axis``: ``take_along_axis(a, index, axis)``.

    ``index`` is an integer array with ``a``'s number of dimensions.
    """
    (a,) = operands(a)
    index = np.asarray(_plain_index(index))
    if not np.issubdtype(index.dtype, np.integer):
        raise TypeError(f"gather: expected an integer index, got {index.dtype}")
    if index.ndim != a.ndim:
        raise ValueError(f"gather: expected an index with {a.ndim} dimensions (like the input {a.shape}), "
                         f"got shape {index.shape}")
    axis = axis % a.ndim
    if index.size and (index.min() < -a.shape[axis] or index.max() >= a.shape[axis]):
        raise IndexError(f"gather: index values must lie in [0, {a.shape[axis]}) along axis {axis}, "
                         f"got min {index.min()} and max {index.max()}")
    return Gather.apply(a, index, axis)


def concatenate(tensors, axis=0):
    """Join tensors along an existing axis."""
    tensors = operands(*tensors)
    if not tensors:
        raise ValueError("concatenate: expected at least one tensor")
    return Concatenate.apply(axis, *tensors)


def stack(tensors, axis=0):
    """Join tensors of one shape along a new axis."""
    tensors = operands(*tensors)
    if not tensors:
        raise ValueError("stack: expected at least one tensor")
    shapes = {t.shape for t in tensors}
    if len(shapes) > 1:
        raise ValueError(f"stack: expected tensors of one shape, got {sorted(shapes)}")
    return Stack.apply(axis, *tensors)


def astype(a, dtype):
    """A differentiable dtype cast (e.g. float64 -> float32)."""
    (a,) = operands(a)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"astype: expected float32 or float64, got {dtype}")
    return Cast.apply(a, dtype)
