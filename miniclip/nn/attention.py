"""``MultiheadAttention`` with the packed parameters of ``torch.nn.MultiheadAttention``.

Shape legend: B batch, T tokens, C channels (embed dim), H heads, D = C / H head dim.

    [q | k | v] = x @ in_proj_weight^T + in_proj_bias        in_proj_weight (3C, C): rows [Wq; Wk; Wv]
    head h reads columns h*D:(h+1)*D of q, k and v
    out_h = softmax(q_h k_h^T / sqrt(D) + mask) v_h
    y = concat_h(out_h) @ out_proj.weight^T + out_proj.bias

The middle two lines run as one fused op, ``ops.qkv_attention`` (a compiled kernel over all heads,
with no copy of q, k, v), or, with ``fused = False``, as ``ops.qkv_attention_plain``: the same
arithmetic with the ordinary ops, one step a line (split heads, scores, mask, softmax, weighted
sum, merge). The switch is nanoGPT's ``flash``: both give the same result (tests hold them equal
and gradcheck both); the fused one is faster and keeps no (T, T) matrix per head.

The original runs its transformer on (T, B, C) tensors (PyTorch's default
``batch_first=False``); miniclip runs (B, T, C). That is only a permute of the
input and output: the weights and the arithmetic are identical.
"""

import numpy as np

from .. import ops
from . import init
from .linear import Linear
from .module import Module
from .parameter import Parameter


class MultiheadAttention(Module):
    """Self-attention over (B, T, C); ``causal=True`` lets position t see only positions <= t.

    ``fused`` (True by default) chooses the fused op over the plain one; set it on an instance
    (``block.attn.fused = False``) or on the class, for every layer.

    Init, as PyTorch's ``nn.MultiheadAttention`` (kept by CLIP's vision tower;
    the text tower re-initializes the weights in ``CLIP.initialize_parameters``):
    ``in_proj_weight`` xavier-uniform, ``in_proj_bias`` 0, ``out_proj.weight``
    U(+-1/sqrt(C)) (Linear's default), ``out_proj.bias`` 0.
    """

    fused = True  # ops.qkv_attention; False: ops.qkv_attention_plain (see the module docstring)

    def __init__(self, embed_dim, num_heads, dtype=np.float32, rng=None):
        super().__init__()
        if num_heads < 1 or embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible by "
                             f"num_heads ({num_heads})")
        rng = init.as_rng(rng)
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        C = embed_dim
        self.in_proj_weight = Parameter(init.xavier_uniform(rng, (3 * C, C), dtype))
        self.in_proj_bias = Parameter(np.zeros(3 * C, dtype=dtype))
        self.out_proj = Linear(C, C, dtype=dtype, rng=rng)
        self.out_proj.bias.data[...] = 0  # PyTorch's MHA zeroes out_proj.bias

    def forward(self, x, causal=False):
        qkv = ops.linear(x, self.in_proj_weight, self.in_proj_bias)     # (B, T, C) @ (C, 3C) + b -> (B, T, 3C)
        attention = ops.qkv_attention if self.fused else ops.qkv_attention_plain
        y = attention(qkv, self.num_heads, causal=causal)              # (B, T, 3C) -> (B, T, C), heads merged
        return self.out_proj(y)                                          # (B, T, C)

    def extra_repr(self):
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}"
