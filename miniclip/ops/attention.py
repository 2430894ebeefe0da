"""Scaled dot-product attention over heads, as one fused op.

Shape legend: B batch, H heads, T tokens, D head dim; q, k, v, out (B, H, T, D).

    out = softmax(q k^T / sqrt(D) + mask) v

The forward keeps the per-row log-sum-exp of the scores (B, H, T). For short
sequences (T <= D: the (T, T) probabilities of a head take no more memory than its
(T, D) output) it keeps the probabilities P too, and the backward uses them; for
longer ones the backward rebuilds P = exp(S - lse) from the log-sum-exp instead of
storing a (T, T) matrix for every head (see ``reference.attention_backward`` for
the derivation).
"""

import numpy as np

from ..autograd.function import Function, is_grad_enabled
from ..backend import K
from ._util import operands


def keeps_probabilities(T, D):
    """Whether the fused ops keep a head's (T, T) probabilities for the backward: when they cost
    no more memory than its (T, D) output. The backward then skips the scores' product and their
    exps, about a fifth of its work."""
    return T <= D


def kept_probabilities(ctx, B, H, T, D, dtype):
    """A (B, H, T, T) array for the forward to write the probabilities into, or None: kept when
    ``keeps_probabilities(T, D)`` and the backward will run (an input needs a gradient). The fused
    ops of this file and ``qkv_attention.py`` share this rule."""
    if keeps_probabilities(T, D) and is_grad_enabled() and any(ctx.needs_input_grad):
        return np.empty((B, H, T, T), dtype=dtype)
    return None


class Attention(Function):
    """out = softmax(scale * q k^T + causal mask) v, per (batch, head)."""

    @staticmethod
    def forward(ctx, q, k, v, scale, causal):
        p = kept_probabilities(ctx, *q.shape, q.dtype)                 # (B, H, T, T) or None
        out, lse = K.attention_forward(q, k, v, scale, causal, p=p)
        ctx.save_for_backward(q, k, v, out, lse, p)
        ctx.scale, ctx.causal = scale, causal
        return out

    @staticmethod
    def backward(ctx, dout):
        q, k, v, out, lse, p = ctx.saved_tensors
        dq, dk, dv = K.attention_backward(dout, q, k, v, out, lse, ctx.scale, ctx.causal, p=p)
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
