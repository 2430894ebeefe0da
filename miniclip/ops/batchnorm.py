"""Batch normalization over the channels of images (Ioffe & Szegedy 2015).

Shape legend: N images, C channels, H, W height and width; M = N*H*W values per channel.

    training:  mu, var = mean and (biased) variance of channel c over its M values
    eval:      mu, var = running_mean[c], running_var[c]
    xhat = (x - mu) / sqrt(var + eps);   y = weight[c] * xhat + bias[c]

In training the running statistics follow the batches (PyTorch's convention, momentum 0.1):
    running_mean = (1 - momentum) running_mean + momentum mu
    running_var  = (1 - momentum) running_var  + momentum var * M / (M - 1)   (the unbiased variance)
"""

import numpy as np

from ..autograd.function import Function
from ..backend import K
from ._util import operands


def affine(weight, bias, mu, var, eps):
    """BatchNorm with fixed statistics as a per-channel affine map, y = x * scale + shift:
    rstd = 1 / sqrt(var + eps), scale = weight * rstd, shift = bias - mu * scale.
    Returns (rstd, scale, shift), each (C,)."""
    rstd = 1.0 / np.sqrt(var + eps)
    scale = weight * rstd
    return rstd, scale, bias - mu * scale


class BatchNorm2d(Function):
    """y = weight * (x - mu) * rstd + bias, rstd = 1 / sqrt(var + eps), per channel.

    Backward. In eval mode mu and rstd are constants, so dx = dy * weight * rstd. In training
    they depend on x; with g = dy * weight, and sums over the M values of a channel:
        dxhat = g
        dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
    (the mean term is the path through mu, the xhat term the path through var; the tutorial
    derives it). For the parameters, in both modes:
        dweight = sum(dy * xhat),   dbias = sum(dy)
    The kernels are ``K.batch_norm_stats``, ``K.batch_norm_apply`` and ``K.batch_norm_backward``
    (NumPy in ``backend/reference.py``, a few fused passes per channel in ``csrc/batchnorm.c``).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, training, momentum, eps):
        if training:
            M = x.size // x.shape[1]
            mu, var = K.batch_norm_stats(x)                            # (C,) each; var biased: divides by M
            running_mean *= 1 - momentum
            running_mean += momentum * mu
            running_var *= 1 - momentum
            running_var += momentum * var * (M / (M - 1))
        else:
            mu, var = running_mean.copy(), running_var.copy()          # constants of this call
        rstd, scale, shift = affine(weight, bias, mu, var, eps)        # (C,) each
        ctx.save_for_backward(x, mu, weight, rstd)
        ctx.training = training
        # y = weight * (x - mu) * rstd + bias = x * scale + shift
        return K.batch_norm_apply(x, scale, shift)

    @staticmethod
    def backward(ctx, dy):
        x, mu, weight, rstd = ctx.saved_tensors
        dx, dweight, dbias = K.batch_norm_backward(x, dy, mu, rstd, weight, ctx.training)
        return dx, dweight, dbias, None, None, None, None, None


def batch_norm2d(x, weight, bias, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    """Normalize x (N, C, H, W) per channel; ``weight``, ``bias`` (C,) Tensors.

    ``running_mean``, ``running_var`` are (C,) ndarrays of x's dtype: read in eval mode, updated
    in place in training mode (``training=True``, which normalizes with the batch's statistics).
    """
    x, weight, bias = operands(x, weight, bias)
    C = x.shape[1] if x.ndim == 4 else None
    if x.ndim != 4 or weight.shape != (C,) or bias.shape != (C,):
        raise ValueError(f"batch_norm2d: expected x (N, C, H, W) and weight, bias (C,); "
                         f"got x {x.shape}, weight {weight.shape}, bias {bias.shape}")
    for name, r in (("running_mean", running_mean), ("running_var", running_var)):
        if not isinstance(r, np.ndarray) or r.shape != (C,) or r.dtype != x.dtype:
            raise ValueError(f"batch_norm2d: expected {name}, an ndarray of shape ({C},) and dtype {x.dtype}, "
                             f"got {type(r).__name__} {getattr(r, 'shape', '')} {getattr(r, 'dtype', '')}")
    if training and x.size // max(C, 1) < 2:
        raise ValueError(f"batch_norm2d: training needs more than one value per channel, got x {x.shape}")
    return BatchNorm2d.apply(x, weight, bias, running_mean, running_var, bool(training), float(momentum),
                             float(eps))
