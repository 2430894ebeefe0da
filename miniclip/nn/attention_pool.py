"""``AttentionPool2d``: the ResNet's last feature map pooled into one vector by attention.

Shape legend: N images, C channels (embed_dim), g spatial grid (H = W = g), L = g*g positions,
H heads, D = C / H head dim, E output_dim.

    x (N, C, g, g) -> tokens (N, L, C)
    tokens = [mean over the L positions; tokens] + positional_embedding       (N, 1 + L, C)
    q = q_proj(token 0)   k = k_proj(tokens)   v = v_proj(tokens)             (N, 1, C), (N, 1 + L, C)
    per head h: a_h = softmax(q_h k_h^T / sqrt(D)) v_h                        (N, 1, D)
    y = c_proj(concat_h a_h)                                                  (N, E)

A global average pool would answer "what is in the image" with the plain mean; here the mean
is only the *query*: each head weighs the positions by how well they match it, and the values
carry position information (the positional embedding), so the pooled vector can depend on
where things are. This is one transformer-style attention layer with a single query, as
``F.multi_head_attention_forward(query=x[:1], key=x, value=x, ...)`` in the original.
"""

import numpy as np

from .. import ops
from . import init
from .linear import Linear
from .module import Module
from .parameter import Parameter


class AttentionPool2d(Module):
    """The original ``AttentionPool2d(spacial_dim, embed_dim, num_heads, output_dim)``.

    Init: ``positional_embedding`` ~ N(0, 1) / sqrt(C); the four projections keep Linear's
    default U(+-1/sqrt(C)) (``CLIP.initialize_parameters`` then redraws q, k, v and c_proj
    weights with std C^-0.5). Attribute order k, q, v, c_proj is the original's (and so the
    state-dict order).
    """

    def __init__(self, spacial_dim, embed_dim, num_heads, output_dim=None, dtype=np.float32, rng=None):
        super().__init__()
        if num_heads < 1 or embed_dim % num_heads:
            raise ValueError(f"AttentionPool2d: embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        rng = init.as_rng(rng)
        self.spacial_dim, self.embed_dim, self.num_heads = spacial_dim, embed_dim, num_heads
        self.positional_embedding = Parameter(
            init.normal(rng, (spacial_dim ** 2 + 1, embed_dim), embed_dim ** -0.5, dtype))
        self.k_proj = Linear(embed_dim, embed_dim, dtype=dtype, rng=rng)
        self.q_proj = Linear(embed_dim, embed_dim, dtype=dtype, rng=rng)
        self.v_proj = Linear(embed_dim, embed_dim, dtype=dtype, rng=rng)
        self.c_proj = Linear(embed_dim, output_dim or embed_dim, dtype=dtype, rng=rng)

    def forward(self, x):
        N, C, g, g2 = x.shape
        if (C, g, g2) != (self.embed_dim, self.spacial_dim, self.spacial_dim):
            raise ValueError(f"AttentionPool2d: expected input (N, {self.embed_dim}, {self.spacial_dim}, "
                             f"{self.spacial_dim}), got {x.shape}")
        H, D = self.num_heads, C // self.num_heads
        x = ops.permute(ops.reshape(x, (N, C, g * g)), (0, 2, 1))            # (N, C, g, g) -> (N, L, C)
        x = ops.concatenate([ops.mean(x, axis=1, keepdims=True), x], axis=1)  # (N, 1 + L, C): the mean first
        x = x + self.positional_embedding                                     # + (1 + L, C)
        T = x.shape[1]
        q = self.q_proj(ops.narrow(x, 1, 0, 1))                               # (N, 1, C): the mean token asks
        k = self.k_proj(x)                                                    # (N, 1 + L, C)
        v = self.v_proj(x)                                                    # (N, 1 + L, C)
        q = ops.reshape(q, (N, H, 1, D))                                      # (N, 1, C) -> (N, H, 1, D)
        k = ops.permute(ops.reshape(k, (N, T, H, D)), (0, 2, 3, 1))           # -> (N, H, D, 1 + L)
        v = ops.permute(ops.reshape(v, (N, T, H, D)), (0, 2, 1, 3))           # -> (N, H, 1 + L, D)
        weights = ops.softmax((q @ k) * D ** -0.5, axis=-1)                   # (N, H, 1, 1 + L)
        a = ops.reshape(weights @ v, (N, C))                                  # (N, H, 1, D) -> (N, C)
        return self.c_proj(a)                                                 # (N, C) -> (N, E)

    def extra_repr(self):
        return f"spacial_dim={self.spacial_dim}, embed_dim={self.embed_dim}, num_heads={self.num_heads}"
