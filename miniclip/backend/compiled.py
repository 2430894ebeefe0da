"""Compiled kernels: the functions of ``reference`` that ``miniclip._C`` provides.

Each function here has the same name, arguments and results as its NumPy
reference in ``reference.py``; tests hold the two equal. A kernel missing here
falls back to the reference (see ``miniclip.backend.set_backend``).
"""

import numpy as np

from .. import _C  # noqa: F401  (ImportError here means the extension is not built)

__all__ = ["gemm_naive"]


def gemm_naive(A, B, C, alpha=1.0, beta=0.0):
    """C = alpha * A @ B + beta * C with the naive triple loop in C (GEMM v1); writes C."""
    _check_gemm_args("gemm_naive", A, B, C)
    _C.gemm_naive(A, B, C, alpha, beta)
    return C


def _check_gemm_args(name, A, B, C):
    for arg, arr in (("A", A), ("B", B), ("C", C)):
        if not isinstance(arr, np.ndarray) or arr.ndim != 2:
            raise ValueError(f"{name}: expected {arg} to be a 2-D ndarray, got {type(arr).__name__} "
                             f"with shape {getattr(arr, 'shape', None)}")
    if not (A.dtype == B.dtype == C.dtype) or A.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name}: expected A, B, C of one dtype, float32 or float64; "
                        f"got {A.dtype}, {B.dtype}, {C.dtype}")
    if not C.flags.writeable:
        raise ValueError(f"{name}: C must be writeable")
