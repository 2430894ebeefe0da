"""Multi-head self-attention straight from the packed projection [q | k | v], as one op.

Shape legend: B batch, T tokens, C channels, H heads, D = C / H head dim.

    qkv (B, T, 3C): columns [0, C) are q, [C, 2C) k, [2C, 3C) v; head h of each is columns h*D:(h+1)*D
    out_h = softmax(q_h k_h^T * scale + causal mask) v_h      (``K.attention_forward``, all heads at once)
    y (B, T, C) = concat_h(out_h)

``qkv_attention_plain`` (at the end of this file) is the same arithmetic spelled out with the
ordinary ops: split the heads, scores, mask, softmax, weighted sum, merge the heads. The fused
op does it without a single copy: q, k, v are strided views of qkv in the heads order
(B, H, T, D) (head h of q in row t is qkv[b, t, h*D:(h+1)*D], the next row 3C values further),
the kernel reads them where they are and writes each head's output straight into its columns of
y (B, T, C); the backward writes dq, dk, dv straight into the thirds of dqkv (B, T, 3C). The graph
holds one node instead of twelve. Short sequences (T <= D) also keep the probabilities for the
backward (``ops.attention.kept_probabilities``).
"""

import numpy as np

from ..autograd.function import Function
from ..backend import K
from ._util import operands
from .attention import kept_probabilities
from .matmul import matmul
from .narrow import narrow
from .softmax import softmax


class QKVAttention(Function):
    """y = concat_h softmax(scale * q_h k_h^T + mask) v_h, with q, k, v the thirds of ``qkv``."""

    @staticmethod
    def forward(ctx, qkv, num_heads, scale, causal):
        B, T, C3 = qkv.shape
        C = C3 // 3
        H, D = num_heads, C // num_heads
        q, k, v = qkv.reshape(B, T, 3, H, D).transpose(2, 0, 3, 1, 4)  # (B, T, 3C) -> 3 x (B, H, T, D), views
        y = np.empty((B, T, H, D), dtype=qkv.dtype)
        out = y.transpose(0, 2, 1, 3)                                 # (B, T, H, D) -> (B, H, T, D), a view
        p = kept_probabilities(ctx, B, H, T, D, qkv.dtype)            # (B, H, T, T) when T <= D, or None
        _, lse = K.attention_forward(q, k, v, scale, causal, out=out, p=p)  # writes the heads into y; lse (B, H, T)
        ctx.save_for_backward(qkv, y, lse, p)
        ctx.num_heads, ctx.scale, ctx.causal = H, scale, causal
        return y.reshape(B, T, C)                                     # (B, T, H, D) -> (B, T, H*D)

    @staticmethod
    def backward(ctx, dy):
        qkv, y, lse, p = ctx.saved_tensors
        B, T, C3 = qkv.shape
        H = ctx.num_heads
        D = C3 // (3 * H)
        q, k, v = qkv.reshape(B, T, 3, H, D).transpose(2, 0, 3, 1, 4)  # (B, T, 3C) -> 3 x (B, H, T, D), views
        out = y.transpose(0, 2, 1, 3)                                 # (B, T, H, D) -> (B, H, T, D), a view
        dout = dy.reshape(B, T, H, D).transpose(0, 2, 1, 3)          # (B, T, C) -> (B, H, T, D), a view
        dqkv = np.empty((B, T, 3, H, D), dtype=dy.dtype)
        grads = tuple(dqkv.transpose(2, 0, 3, 1, 4))                  # (B, T, 3, H, D) -> 3 x (B, H, T, D), views
        K.attention_backward(dout, q, k, v, out, lse, ctx.scale, ctx.causal, grads=grads, p=p)
        return dqkv.reshape(B, T, C3), None, None, None               # (B, T, 3, H, D) -> (B, T, 3C)


def _check(name, qkv, num_heads):
    if qkv.ndim != 3 or qkv.shape[-1] % 3:
        raise ValueError(f"{name}: expected qkv of shape (B, T, 3C), got {qkv.shape}")
    C = qkv.shape[-1] // 3
    if not isinstance(num_heads, int) or num_heads < 1 or C % num_heads:
        raise ValueError(f"{name}: expected num_heads, a positive divisor of C = {C}, got {num_heads!r}")


def qkv_attention(qkv, num_heads, causal=False, scale=None):
    """Self-attention of the packed projection ``qkv`` (B, T, 3C) with ``num_heads`` heads -> (B, T, C).

    ``scale`` defaults to 1 / sqrt(D), D = C / num_heads; ``causal=True`` lets position t see only
    positions <= t (the text encoder's mask).
    """
    (qkv,) = operands(qkv)
    _check("qkv_attention", qkv, num_heads)
    scale = 1.0 / np.sqrt(qkv.shape[-1] // (3 * num_heads)) if scale is None else float(scale)
    return QKVAttention.apply(qkv, num_heads, scale, bool(causal))


def qkv_attention_plain(qkv, num_heads, causal=False, scale=None):
    """``qkv_attention`` written with the ordinary ops, one step a line: the readable version.

    Same arguments and result; it keeps the (B, H, T, T) probabilities and about ten graph nodes,
    where the fused op keeps a (B, H, T) log-sum-exp and one node.
    """
    (qkv,) = operands(qkv)
    _check("qkv_attention_plain", qkv, num_heads)
    B, T, C3 = qkv.shape
    C = C3 // 3
    H, D = num_heads, C // num_heads
    scale = 1.0 / np.sqrt(D) if scale is None else float(scale)
    # split: the thirds of qkv, then each (B, T, C) into H heads of D channels
    q = narrow(qkv, 2, 0, C).reshape(B, T, H, D).permute(0, 2, 1, 3)       # (B, T, C) -> (B, H, T, D)
    k = narrow(qkv, 2, C, C).reshape(B, T, H, D).permute(0, 2, 1, 3)       # (B, T, C) -> (B, H, T, D)
    v = narrow(qkv, 2, 2 * C, C).reshape(B, T, H, D).permute(0, 2, 1, 3)   # (B, T, C) -> (B, H, T, D)
    scores = matmul(q, k.T) * scale                                          # (B, H, T, D) @ (B, H, D, T) -> (B, H, T, T)
    if causal:  # -inf strictly above the diagonal: position t sees positions <= t (exp(-inf) = 0)
        scores = scores + np.triu(np.full((T, T), -np.inf, dtype=qkv.dtype), k=1)  # (T, T) broadcast
    p = softmax(scores, axis=-1)                                             # each row sums to 1
    out = matmul(p, v)                                                       # (B, H, T, T) @ (B, H, T, D) -> (B, H, T, D)
    return out.permute(0, 2, 1, 3).reshape(B, T, C)                          # merge: (B, H, T, D) -> (B, T, H*D)
