"""``Conv2d``: a bias-free 2-D convolution with PyTorch's (O, C, kh, kw) weight layout.

Shape legend: x (N, C, H, W); weight (O, C, kh, kw); y (N, O, Ho, Wo).
"""

import numpy as np

from .. import ops
from . import init
from .module import Module
from .parameter import Parameter


class Conv2d(Module):
    """y = conv2d(x, weight, stride, padding); see ``ops.conv2d``.

    Only what CLIP's ResNet uses: square kernels, no bias (``bias=False`` in the original:
    a BatchNorm follows every convolution), groups 1. Init: PyTorch's default for
    convolutions, U(+-1/sqrt(fan_in)) with fan_in = C*kh*kw (see ``init``).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dtype=np.float32, rng=None):
        super().__init__()
        rng = init.as_rng(rng)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        self.weight = Parameter(init.fan_in_uniform(rng, shape, in_channels * kernel_size ** 2, dtype))

    def forward(self, x):
        return ops.conv2d(x, self.weight, self.stride, self.padding)  # (N, C, H, W) -> (N, O, Ho, Wo)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}")
