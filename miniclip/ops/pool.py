"""Average pooling over k x k blocks, the ResNet's anti-aliased downsampling.

Shape legend: N images, C channels, H, W input size, k the block size, Ho = H // k, Wo = W // k.

    y[n, c, i, j] = mean of x[n, c, i*k:(i+1)*k, j*k:(j+1)*k]

The blocks tile the image (kernel = stride = k, PyTorch's ``AvgPool2d(k)``); rows and columns
past the last whole block are dropped, as PyTorch does (``ceil_mode=False``). The forward is
``K.avg_pool2d``: the NumPy reference takes the mean over a 6-D view of the blocks, the compiled
kernel (``csrc/pool.c``) sums each block's rows in one pass; the backward, ``K.avg_pool2d_backward``,
copies each block's share of dy back over it.
"""

from ..autograd.function import Function
from ..backend import K
from ._util import operands


class AvgPool2d(Function):
    """y = the mean of each k x k block;  dx = dy / k^2 copied over its block (0 on dropped edges)."""

    @staticmethod
    def forward(ctx, x, k):
        ctx.x_shape, ctx.k = x.shape, k
        return K.avg_pool2d(x, k)                                         # (N, C, Ho, Wo)

    @staticmethod
    def backward(ctx, dy):
        return K.avg_pool2d_backward(dy, ctx.x_shape, ctx.k), None           # (N, C, H, W)


def avg_pool2d(x, kernel_size):
    """Mean over non-overlapping ``kernel_size`` x ``kernel_size`` blocks of x (N, C, H, W)."""
    (x,) = operands(x)
    k = int(kernel_size)
    if x.ndim != 4 or k < 1 or x.shape[2] < k or x.shape[3] < k:
        raise ValueError(f"avg_pool2d: expected x (N, C, H, W) with H, W >= kernel_size >= 1; "
                         f"got x {x.shape}, kernel_size {kernel_size}")
    return AvgPool2d.apply(x, k)
