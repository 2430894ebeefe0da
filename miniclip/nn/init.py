"""Initializers: each draws a new array from a NumPy ``Generator``, in float64, then casts.

``normal`` draws in blocks of ``BLOCK`` values, cast into the result as it goes: the same numbers
as one draw of the whole array (a ``Generator`` yields one stream whatever the block sizes), without
the float64 temporaries of a full-size matrix (the released text tower's 49,408 x 512 embedding
would need 400 MB of them for 100 MB of float32 weights).

They reproduce the *distributions* of PyTorch's initializers (the numbers differ:
a different random generator), because openai/CLIP keeps PyTorch's defaults for
many weights:

- ``nn.Linear`` / ``nn.Conv2d``: ``kaiming_uniform_(a=sqrt(5))``, whose bound
  gain * sqrt(3 / fan_in) with gain = sqrt(2 / (1 + 5)) is exactly 1 / sqrt(fan_in);
  their bias is U(-1/sqrt(fan_in), 1/sqrt(fan_in)) too.
- ``nn.MultiheadAttention``: ``xavier_uniform_`` on the packed ``in_proj_weight``,
  zeros on ``in_proj_bias`` and ``out_proj.bias``.
- ``nn.LayerNorm``: weight 1, bias 0.  ``nn.Embedding``: N(0, 1).
"""

import numpy as np


def as_rng(rng):
    """``rng`` as a ``np.random.Generator`` (an int seeds a new one; None means seed 0)."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(0 if rng is None else rng)


BLOCK = 1 << 20


def normal(rng, shape, std, dtype):
    """N(0, std^2) entries."""
    out = np.empty(shape, dtype)
    flat = out.reshape(-1)                                # a view: out is new and contiguous
    for start in range(0, flat.size, BLOCK):
        block = rng.standard_normal(min(BLOCK, flat.size - start))
        block *= std
        flat[start:start + block.size] = block            # the cast, as astype
    return out


def uniform(rng, shape, bound, dtype):
    """U(-bound, bound) entries."""
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def fan_in_uniform(rng, shape, fan_in, dtype):
    """PyTorch's default for Linear/Conv weights and biases: U(+-1/sqrt(fan_in))."""
    return uniform(rng, shape, 1.0 / np.sqrt(fan_in), dtype)


def xavier_uniform(rng, shape, dtype):
    """U(+-sqrt(6 / (fan_in + fan_out))) for a (fan_out, fan_in) matrix (Glorot & Bengio 2010)."""
    fan_out, fan_in = shape
    return uniform(rng, shape, np.sqrt(6.0 / (fan_in + fan_out)), dtype)
