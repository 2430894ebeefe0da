"""Differentiable ops: each a ``Function`` with a hand-written backward, one file per family.

Every op here is gradient-checked in float64 by ``tests/test_ops_gradcheck.py``
and by the ``miniclip gradcheck`` command.
"""

from .activation import gelu, quick_gelu, relu
from .attention import scaled_dot_product_attention
from .batchnorm import batch_norm2d
from .conv import conv2d
from .elementwise import add, div, exp, log, mul, neg, pow, sigmoid, sqrt, sub, tanh
from .embedding import embedding
from .layernorm import layer_norm
from .linear import linear
from .logsigmoid import logsigmoid
from .loss import cross_entropy
from .matmul import matmul
from .narrow import narrow
from .normalize import normalize
from .pool import avg_pool2d
from .qkv_attention import qkv_attention, qkv_attention_plain
from .reduce import max, mean, sum
from .shape import astype, concatenate, gather, getitem, permute, reshape, stack, transpose
from .softmax import log_softmax, logsumexp, softmax

__all__ = [
    "add", "sub", "mul", "div", "neg", "pow", "exp", "log", "sqrt", "tanh", "sigmoid",
    "matmul", "sum", "mean", "max", "reshape", "transpose", "permute", "getitem", "gather",
    "concatenate", "stack", "astype", "softmax", "log_softmax", "logsumexp", "layer_norm",
    "gelu", "quick_gelu", "embedding", "cross_entropy", "normalize", "scaled_dot_product_attention",
    "logsigmoid", "narrow", "linear", "qkv_attention", "qkv_attention_plain",
    "conv2d", "batch_norm2d", "avg_pool2d", "relu",
]
