"""``Parameter``: a Tensor that a Module learns.

A Parameter is a leaf Tensor with ``requires_grad=True``. Assigning one to an
attribute of a ``Module`` registers it (``self.weight = Parameter(...)``), so it
shows up in ``parameters()``, ``named_parameters()`` and ``state_dict()``.
"""

import numpy as np

from ..autograd.tensor import Tensor


class Parameter(Tensor):
    """A learnable float32/float64 Tensor; the data is copied, so the Parameter owns it."""

    def __init__(self, data, dtype=None):
        data = data.data if isinstance(data, Tensor) else data
        arr = np.array(data, dtype=dtype, copy=True)  # own, contiguous memory (gradcheck perturbs it in place)
        if arr.dtype not in (np.float32, np.float64):
            raise TypeError(f"Parameter: expected float32 or float64 data, got {arr.dtype}")
        super().__init__(arr, requires_grad=True)

    def __repr__(self):
        return f"Parameter(shape={self.shape}, dtype={self.dtype})"
