"""The transformer block's MLP: ``c_fc`` (C -> 4C) -> QuickGELU -> ``c_proj`` (4C -> C).

Shape legend: x (..., C); hidden (..., 4C).

Parameter names follow the original (``mlp.c_fc.weight``, ``mlp.c_proj.bias``);
the original's ``mlp.gelu`` has no parameters.
"""

import numpy as np

from .. import ops
from . import init
from .linear import Linear
from .module import Module


class QuickGELU(Module):
    """x * sigmoid(1.702 x): the activation the CLIP checkpoints were trained with (not exact GELU)."""

    def forward(self, x):
        return ops.quick_gelu(x)


class MLP(Module):
    """y = c_proj(QuickGELU(c_fc(x))).  Init: PyTorch's Linear default (the text tower overrides it)."""

    def __init__(self, width, dtype=np.float32, rng=None):
        super().__init__()
        rng = init.as_rng(rng)
        self.c_fc = Linear(width, 4 * width, dtype=dtype, rng=rng)
        self.gelu = QuickGELU()
        self.c_proj = Linear(4 * width, width, dtype=dtype, rng=rng)

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))  # (..., C) -> (..., 4C) -> (..., C)
