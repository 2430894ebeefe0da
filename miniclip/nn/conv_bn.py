"""``conv_bn``: convolution, BatchNorm, the residual and ReLU, fused when no gradient is needed.

Shape legend: x (N, C, H, W); y and residual (N, O, Ho, Wo); scale, shift (O,).

    y = relu(bn(conv(x)) + residual)          (the residual and the ReLU optional)

This is how every convolution of CLIP's ResNet is used. In eval mode BatchNorm normalizes with
its running statistics, constants, so it is a per-channel affine map y = x * scale + shift
(``ops.batchnorm.affine``); with the residual and the ReLU it becomes the epilogue of the
convolution, applied by ``K.conv2d`` to each block of output right after the GEMM wrote it
(``csrc/conv.c``), instead of three more passes over the feature map with two new arrays each.

That is the same arithmetic, so it is taken whenever nothing is being differentiated: the BN in
eval mode and no graph to record (inside ``no_grad()``, or no input needing a gradient). In
training BatchNorm uses the batch's statistics, and a backward needs each op's saved arrays, so
then ``conv_bn`` is the plain composition of the ops.
"""

import numpy as np

from .. import ops
from ..autograd import Tensor, is_grad_enabled
from ..backend import K
from ..ops.batchnorm import affine
from ..ops.conv import check_args


def conv_bn(conv, bn, x, residual=None, relu=False):
    """relu(bn(conv(x)) + residual) for a ``Conv2d`` and a ``BatchNorm2d``; see the module docstring."""
    inputs = (x, residual, conv.weight, bn.weight, bn.bias)
    recording = is_grad_enabled() and any(isinstance(a, Tensor) and a.requires_grad for a in inputs)
    data = x.data if isinstance(x, Tensor) else x                          # (N, C, H, W)
    res = residual.data if isinstance(residual, Tensor) else residual      # (N, O, Ho, Wo) or None
    w = conv.weight.data                                                    # (O, C, kh, kw)
    same_dtype = all(isinstance(a, np.ndarray) and a.dtype == w.dtype for a in (data, res) if a is not None)
    if bn.training or recording or not same_dtype:  # (a dtype mismatch: the ops raise their error)
        y = bn(conv(x))
        if residual is not None:
            y = y + residual
        return ops.relu(y) if relu else y
    stride, padding = check_args(data.shape, w.shape, conv.stride, conv.padding)
    _, scale, shift = affine(bn.weight.data, bn.bias.data, bn.running_mean, bn.running_var, bn.eps)
    return Tensor(K.conv2d(data, w, stride, padding, scale, shift, res, relu))
