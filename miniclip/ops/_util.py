"""Small helpers shared by the ops: broadcasting's reverse, operand conversion, axes."""

import numbers

import numpy as np

from ..autograd.function import is_float
from ..autograd.tensor import Tensor


def unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape``: the backward of NumPy broadcasting.

    Broadcasting copies an input along new leading axes and along axes of size 1;
    each copy received part of the gradient, so the input's gradient is their sum.
    """
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))          # new leading axes
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)     # size-1 axes that were stretched
    return grad.reshape(shape)


def operands(*args):
    """Turn the arguments of an elementwise op into Tensors of one float dtype.

    Python numbers adopt the dtype of the Tensor beside them (``x * 2`` keeps x's
    dtype); arrays are wrapped as constants; two different float dtypes are an
    error (raised by Function.apply), never a silent upcast.
    """
    dtype = next((a.dtype for a in args if isinstance(a, (Tensor, np.ndarray)) and is_float(a.dtype)),
                 np.dtype(np.float64))
    out = []
    for a in args:
        if isinstance(a, Tensor):
            out.append(a)
        elif isinstance(a, numbers.Number):
            out.append(Tensor(np.asarray(a, dtype=dtype)))
        elif isinstance(a, np.ndarray):
            out.append(Tensor(a if is_float(a.dtype) else a.astype(dtype)))
        else:
            raise TypeError(f"expected a Tensor, ndarray or number, got {type(a).__name__}")
    return out


def normalize_axes(axis, ndim):
    """``axis`` (None, int or tuple, negatives allowed) as a sorted tuple of non-negative ints."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, numbers.Integral):
        axis = (axis,)
    out = []
    for a in axis:
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dimensions")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in {axis}")
    return tuple(sorted(out))
