"""``BatchNorm2d``: per-channel normalization with learned gain and shift, and running statistics.

Shape legend: x, y (N, C, H, W); weight, bias, running_mean, running_var (C,).

State entries, as PyTorch's: ``weight``, ``bias`` (learned), ``running_mean``, ``running_var``
(followed during training, used in eval) and ``num_batches_tracked`` (a count, int64).
"""

import numpy as np

from .. import ops
from .module import Module
from .parameter import Parameter


class BatchNorm2d(Module):
    """``training``: normalize with the batch's statistics and update the running ones;
    eval: normalize with the running ones (see ``ops.batch_norm2d``).

    PyTorch's defaults: eps 1e-5, momentum 0.1; weight 1, bias 0, running_mean 0,
    running_var 1, num_batches_tracked 0.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, dtype=np.float32):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = Parameter(np.ones(num_features, dtype=dtype))
        self.bias = Parameter(np.zeros(num_features, dtype=dtype))
        self.register_buffer("running_mean", np.zeros(num_features, dtype=dtype))
        self.register_buffer("running_var", np.ones(num_features, dtype=dtype))
        self.register_buffer("num_batches_tracked", np.zeros((), dtype=np.int64))

    def forward(self, x):
        if self.training:
            self.num_batches_tracked += 1  # a 0-d array: updated in place, so the state entry follows
        return ops.batch_norm2d(x, self.weight, self.bias, self.running_mean, self.running_var,
                                self.training, self.momentum, self.eps)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"
