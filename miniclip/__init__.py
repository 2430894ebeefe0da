"""miniclip: a from-scratch CLIP in NumPy and Cython that people learn from.

The pieces, bottom to top (each imports only the ones above it):

    miniclip.backend    NumPy reference kernels and the compiled ones (set_backend)
    miniclip.autograd   Tensor, Function, no_grad, gradcheck
    miniclip.ops        differentiable ops with hand-written backwards
"""

from .autograd import Function, GradcheckError, Tensor, gradcheck, no_grad
from .backend import get_backend, get_num_threads, set_backend, set_num_threads
from .build import build_info

__version__ = "0.1.0"

__all__ = ["Tensor", "Function", "no_grad", "gradcheck", "GradcheckError",
           "set_backend", "get_backend", "set_num_threads", "get_num_threads", "build_info"]
