"""``Linear``: y = x W^T + b, with PyTorch's (out_features, in_features) weight layout.

Shape legend: x (..., C_in); weight (C_out, C_in); bias (C_out,); y (..., C_out);
R = the product of the leading axes.
"""

import numpy as np

from .. import ops
from . import init
from .module import Module
from .parameter import Parameter


class Linear(Module):
    """y = x @ weight^T + bias.

    The weight is stored (out, in) as in PyTorch, so checkpoints load unchanged.
    Init: PyTorch's default, U(+-1/sqrt(in_features)) for weight and bias (see ``init``).
    """

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32, rng=None):
        super().__init__()
        rng = init.as_rng(rng)
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(init.fan_in_uniform(rng, (out_features, in_features), in_features, dtype))
        self.bias = (Parameter(init.fan_in_uniform(rng, (out_features,), in_features, dtype))
                     if bias else None)

    def forward(self, x):
        """y = x W^T + b, one op; ``r + y`` adds r inside that op (see ``ops.linear``)."""
        return ops.linear(x, self.weight, self.bias)  # (..., C_in) -> (..., C_out)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
