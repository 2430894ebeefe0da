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
from ._util import operands

AXES = (0, 2, 3)  # every axis but the channels: the M values that share a mean and a variance


def affine(weight, bias, mu, var, eps):
    """BatchNorm with fixed statistics as a per-channel affine map, y = x * scale + shift:
    rstd = 1 / sqrt(var + eps), scale = weight * rstd, shift = bias - mu * scale.
    Returns (rstd, scale, shift), each (C,)."""
    rstd = 1.0 / np.sqrt(var + eps)
    scale = weight * rstd
    return rstd, scale, bias - mu * scale


def _per_channel(v):
    """(C,) -> (1, C, 1, 1), to broadcast against (N, C, H, W)."""
    return v.reshape(1, -1, 1, 1)


class BatchNorm2d(Function):
    """y = weight * (x - mu) * rstd + bias, rstd = 1 / sqrt(var + eps), per channel.

    Backward. In eval mode mu and rstd are constants, so dx = dy * weight * rstd. In training
    they depend on x; with g = dy * weight, and sums over the M values of a channel:
        dxhat = g
        dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
    (the mean term is the path through mu, the xhat term the path through var; the tutorial
    derives it). For the parameters, in both modes:
        dweight = sum(dy * xhat),   dbias = sum(dy)
    """

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, training, momentum, eps):
        if training:
            M = x.size // x.shape[1]
            mu = x.mean(axis=AXES)                                     # (C,)
            var = x.var(axis=AXES)                                     # (C,), biased: divides by M
            running_mean *= 1 - momentum
            running_mean += momentum * mu
            running_var *= 1 - momentum
            running_var += momentum * var * (M / (M - 1))
        else:
            mu, var = running_mean.copy(), running_var.copy()          # constants of this call
        rstd, scale, shift = affine(weight, bias, mu, var, eps)        # (C,) each
        ctx.save_for_backward(x, mu, weight, rstd)
        ctx.training = training
        # y = weight * (x - mu) * rstd + bias = x * scale + shift, two passes over x
        y = x * _per_channel(scale)
        y += _per_channel(shift)
        return y

    @staticmethod
    def backward(ctx, dy):
        x, mu, weight, rstd = ctx.saved_tensors
        xhat = (x - _per_channel(mu)) * _per_channel(rstd)             # (N, C, H, W), recomputed
        dbias = dy.sum(axis=AXES)                                      # (C,)
        dweight = (dy * xhat).sum(axis=AXES)                           # (C,)
        scale = _per_channel(weight * rstd)                            # (1, C, 1, 1)
        if ctx.training:
            M = dy.size // dy.shape[1]
            # g = dy * weight: mean(g) = weight * dbias / M, mean(g * xhat) = weight * dweight / M
            dx = scale * (dy - _per_channel(dbias / M) - xhat * _per_channel(dweight / M))
        else:
            dx = dy * scale
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
