"""The pre-LayerNorm transformer of CLIP: ``ResidualAttentionBlock`` and ``Transformer``.

Shape legend: x (B, T, C) throughout (the original runs (T, B, C); only a permute).

    x = x + attn(ln_1(x))
    x = x + mlp(ln_2(x))
"""

import numpy as np

from . import init
from .attention import MultiheadAttention
from .layernorm import LayerNorm
from .mlp import MLP
from .module import Module, ModuleList


class ResidualAttentionBlock(Module):
    """One pre-LN block. Attributes are defined in the original's order (attn, ln_1, mlp, ln_2),
    so that the state-dict keys come out in the same order.

    The two lines of ``forward`` are the original's. Each ``x + ...`` costs no pass of its own:
    the branch ends in a ``Linear`` (``out_proj``, ``c_proj``), whose output is a
    ``LinearOutput``, and ``x + LinearOutput`` is one op, ``ops.linear(h, W, b, residual=x)``,
    that adds x to each tile of the GEMM's result while it is still in cache (see ``ops/linear.py``).
    """

    def __init__(self, d_model, n_head, causal=False, dtype=np.float32, rng=None):
        super().__init__()
        rng = init.as_rng(rng)
        self.causal = causal
        self.attn = MultiheadAttention(d_model, n_head, dtype=dtype, rng=rng)
        self.ln_1 = LayerNorm(d_model, dtype=dtype)
        self.mlp = MLP(d_model, dtype=dtype, rng=rng)
        self.ln_2 = LayerNorm(d_model, dtype=dtype)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x), causal=self.causal)
        x = x + self.mlp(self.ln_2(x))
        return x


class Transformer(Module):
    """``layers`` residual blocks in ``resblocks.{i}``; ``causal=True`` for the text encoder
    (the original passes an additive -inf mask above the diagonal; here the attention op applies it)."""

    def __init__(self, width, layers, heads, causal=False, dtype=np.float32, rng=None):
        super().__init__()
        rng = init.as_rng(rng)
        self.width, self.layers, self.heads, self.causal = width, layers, heads, causal
        self.resblocks = ModuleList(ResidualAttentionBlock(width, heads, causal, dtype=dtype, rng=rng)
                                    for _ in range(layers))

    def forward(self, x):
        for block in self.resblocks:
            x = block(x)
        return x
