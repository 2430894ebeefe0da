"""Layers with the names and parameter layouts of PyTorch and openai/CLIP.

``Module`` / ``ModuleList`` / ``Parameter`` are the containers; ``Linear``,
``LayerNorm``, ``Embedding``, ``MultiheadAttention``, ``MLP`` (with ``QuickGELU``),
``ResidualAttentionBlock`` and ``Transformer`` are CLIP's layers; ``Conv2d``,
``BatchNorm2d`` and ``AttentionPool2d`` those of its ResNet image encoders (``conv_bn`` runs a
convolution and its BatchNorm as one kernel when nothing is differentiated).
"""

from . import init
from .attention import MultiheadAttention
from .attention_pool import AttentionPool2d
from .batchnorm import BatchNorm2d
from .conv import Conv2d
from .conv_bn import conv_bn
from .embedding import Embedding
from .layernorm import LayerNorm
from .linear import Linear
from .mlp import MLP, QuickGELU
from .module import IncompatibleKeys, Module, ModuleList
from .parameter import Parameter
from .transformer import ResidualAttentionBlock, Transformer

__all__ = ["Module", "ModuleList", "Parameter", "IncompatibleKeys", "Linear", "LayerNorm", "Embedding",
           "MultiheadAttention", "MLP", "QuickGELU", "ResidualAttentionBlock", "Transformer", "init",
           "Conv2d", "BatchNorm2d", "AttentionPool2d", "conv_bn"]
