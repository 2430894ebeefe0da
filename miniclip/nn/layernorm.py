"""``LayerNorm`` over the last axis, eps 1e-5 as in CLIP.

Shape legend: x (..., C); weight, bias (C,).
"""

import numpy as np

from .. import ops
from .module import Module
from .parameter import Parameter


class LayerNorm(Module):
    """y = (x - mean) / sqrt(var + eps) * weight + bias, statistics over the last axis.

    Init: PyTorch's default, weight 1 and bias 0. (The original CLIP subclass casts to
    float32 inside to survive fp16; miniclip runs float32/float64 only, so it needs no cast.)
    """

    def __init__(self, normalized_shape, eps=1e-5, dtype=np.float32):
        super().__init__()
        self.normalized_shape, self.eps = normalized_shape, eps
        self.weight = Parameter(np.ones(normalized_shape, dtype=dtype))
        self.bias = Parameter(np.zeros(normalized_shape, dtype=dtype))

    def forward(self, x):
        return ops.layer_norm(x, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}"
