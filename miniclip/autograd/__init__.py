"""The autograd engine: ``Tensor``, ``Function``, ``no_grad`` and ``gradcheck``."""

from .function import Context, Function, is_grad_enabled, no_grad, set_grad_enabled
from .gradcheck import GradcheckError, gradcheck
from .tensor import Tensor, as_tensor

__all__ = ["Tensor", "as_tensor", "Function", "Context", "no_grad", "set_grad_enabled", "is_grad_enabled",
           "gradcheck", "GradcheckError"]
