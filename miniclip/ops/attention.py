"""Scaled dot-product attention over heads, as one fused op.

Shape legend: B batch, H heads, T tokens, D head dim; q, k, v, out (B, H, T, D).

    out = softmax(q k^T / sqrt(D) + mask) v

The forward keeps only the per-row log-sum-exp of the scores (B, H, T); the
backward rebuilds the probabilities from it instead of storing the (T, T)
matrix for every head (see ``reference.attention_backward`` for the derivation).
"""

import numpy as np

from ..autograd.function import Function
from ..backend import K
from ._util import operands


class Attention(Function):
    """out = softmax(scale * q k^T + causal mask) v, per (batch, head)."""

    @staticmethod
    def forward(ctx, q, k, v, scale, causal):
        out, lse = K.attention_forward(q, k, v, scale, causal)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.scale, ctx.causal = scale, causal
        return out

    @staticmethod
    def backward(ctx, dout):
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = K.attention_backward(dout, q, k, v, out, lse, ctx.scale, ctx.causal)
        return dq, dk, dv, None, None


def scaled_dot_product_attention(q, k, v, causal=False, scale=None):
    """Attention of q, k, v (B, H, T, D); ``scale`` defaults to 1 / sqrt(D).

    With ``causal=True`` position t attends only to positions <= t (the text
    encoder's mask: -inf strictly above the diagonal).
    """
    q, k, v = operands(q, k, v)
    if q.ndim != 4 or q.shape != k.shape or q.shape != v.shape:
        raise ValueError(f"scaled_dot_product_attention: expected q, k, v of one shape (B, H, T, D); "
                         f"got {q.shape}, {k.shape}, {v.shape}")
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else float(scale)
    return Attention.apply(q, k, v, scale, bool(causal))
