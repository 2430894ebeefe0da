"""2-D convolution as a matrix product (im2col), the ResNet's workhorse.

Shape legend: N images, C input channels, H, W input height and width, O output channels,
kh, kw kernel size, s stride, p zero padding, Ho = (H + 2p - kh) // s + 1 (Wo likewise),
L = Ho*Wo output positions, CK = C*kh*kw the length of one window.

    cols = im2col(x)                   (N, C, H, W) -> (N, CK, L): window l of image n is column l
    y[n] = weight (O, CK) @ cols[n]    (N, O, L) -> (N, O, Ho, Wo)

Every output pixel is the dot product of the flattened weight of its channel with the window
under it, so copying the windows into columns turns the whole convolution into one GEMM per
image. ``K.conv2d`` is that formula: the NumPy reference (``backend/reference.py``) says it in
two lines; the compiled kernel (``csrc/conv.c``) runs it one block of output positions at a
time, so that the columns stay in cache between being written and being multiplied, and reads
a 1x1 convolution's columns straight from x. No bias: every convolution of CLIP's ResNet is
followed by a BatchNorm, whose shift would absorb it (the original passes ``bias=False``).
"""

from ..autograd.function import Function
from ..backend import K
from ._util import operands


class Conv2d(Function):
    """y[n, o, ho, wo] = sum_{c, i, j} weight[o, c, i, j] x_pad[n, c, ho*s + i, wo*s + j].

    Backward, from y[n] = W cols[n] (W the weight as (O, CK)):
        dW       = sum_n dy[n] cols[n]^T      (O, L) @ (L, CK), summed over the images
        dcols[n] = W^T dy[n]                  (CK, O) @ (O, L)
        dx       = col2im(dcols)              each window entry back to the pixel it copied
    Both products run over all images at once, on the merged layout: with the images' columns
    side by side, cols_all (CK, N*L) and dy_all (O, N*L) (column n*L + l is position l of image
    n), the sum over n is part of one GEMM's inner dimension, dW = dy_all @ cols_all^T, and
    dcols_all = W^T @ dy_all is one GEMM N*L columns wide. (One product per image would be N
    GEMMs as thin as L, a single position in the ResNet's last stage.) The columns are rebuilt
    from x in the backward instead of being kept: a 3x3 window makes them 9 times the size of x.
    ``K.conv2d_backward`` is these three lines (``backend/reference.py``); the compiled version
    (``csrc/conv.c``) runs them on blocks of whole images, the blocks shared out between the
    threads: each block's columns stay in cache from im2col to its two GEMMs, each thread adds its
    blocks' sum into its own dW, and the threads' dWs are added at the end in a fixed order.
    """

    @staticmethod
    def forward(ctx, x, weight, stride, padding):
        y = K.conv2d(x, weight, stride, padding)                      # im2col, then (O, CK) @ cols[n]
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = stride, padding
        return y                                                      # (N, O, Ho, Wo)

    @staticmethod
    def backward(ctx, dy):
        x, weight = ctx.saved_tensors
        needs = ctx.needs_input_grad
        dx, dw = K.conv2d_backward(x, weight, dy, ctx.stride, ctx.padding, needs[0], needs[1])
        return dx, dw, None, None


def conv2d(x, weight, stride=1, padding=0):
    """Convolution of x (N, C, H, W) with weight (O, C, kh, kw), no bias -> (N, O, Ho, Wo).

    ``padding`` zeros are added on every side; Ho = (H + 2 padding - kh) // stride + 1, as
    ``torch.nn.functional.conv2d`` (groups 1, dilation 1).
    """
    x, weight = operands(x, weight)
    stride, padding = check_args(x.shape, weight.shape, stride, padding)
    return Conv2d.apply(x, weight, stride, padding)


def check_args(x_shape, weight_shape, stride, padding):
    """Raise a one-line ValueError unless x_shape (N, C, H, W) and weight_shape (O, C, kh, kw) can
    be convolved with this stride and padding; return (stride, padding) as ints."""
    if len(x_shape) != 4 or len(weight_shape) != 4 or x_shape[1] != weight_shape[1]:
        raise ValueError(f"conv2d: expected x (N, C, H, W) and weight (O, C, kh, kw) with the same C; "
                         f"got x {tuple(x_shape)}, weight {tuple(weight_shape)}")
    stride, padding = int(stride), int(padding)
    if stride < 1 or padding < 0:
        raise ValueError(f"conv2d: expected stride >= 1 and padding >= 0, got stride {stride}, padding {padding}")
    kh, kw = weight_shape[2:]
    if x_shape[2] + 2 * padding < kh or x_shape[3] + 2 * padding < kw:
        raise ValueError(f"conv2d: the {kh}x{kw} kernel is larger than the padded input "
                         f"{x_shape[2] + 2 * padding}x{x_shape[3] + 2 * padding}")
    return stride, padding
