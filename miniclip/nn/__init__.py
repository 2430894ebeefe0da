"""Layers with the names and parameter layouts of PyTorch and openai/CLIP.

``Module`` / ``ModuleList`` / ``Parameter`` are the containers; ``Linear``,
``LayerNorm``, ``Embedding``, ``MultiheadAttention``, ``MLP`` (with ``QuickGELU``),
``ResidualAttentionBlock`` and ``Transformer`` are CLIP's layers.
"""

from . import init
from .attention import MultiheadAttention
from .embedding import Embedding
from .layernorm import LayerNorm
from .linear import Linear
from .mlp import MLP, QuickGELU
from .module import IncompatibleKeys, Module, ModuleList
from .parameter import Parameter
from .transformer import ResidualAttentionBlock, Transformer

__all__ = ["Module", "ModuleList", "Parameter", "IncompatibleKeys", "Linear", "LayerNorm", "Embedding",
           "MultiheadAttention", "MLP", "QuickGELU", "ResidualAttentionBlock", "Transformer", "init"]
