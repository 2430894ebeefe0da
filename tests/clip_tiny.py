"""Tiny CLIP configurations and inputs shared by the model tests (not a test file itself)."""

import numpy as np

from miniclip.model import CLIP

from miniclip.tools.model_gradcheck_cases import TINY  # noqa: E402  (one tiny config for tests and the CLI)


def tiny_clip(dtype=np.float64, seed=0, **overrides):
    return CLIP(**{**TINY, **overrides}, dtype=dtype, seed=seed)


def random_tokens(rng, n, context_length, vocab_size, min_len=1):
    """Captions as the tokenizer makes them: ids < EOT, then EOT (= vocab_size - 1, the largest id),
    then zero padding. Lengths vary so that EOT sits at different positions."""
    eot = vocab_size - 1
    tokens = np.zeros((n, context_length), dtype=np.int64)
    for i in range(n):
        length = rng.integers(min_len, context_length)           # EOT at position `length`
        tokens[i, :length] = rng.integers(1, eot - 1, size=length)
        tokens[i, length] = eot
    return tokens


def random_images(rng, n, resolution, dtype=np.float64):
    return rng.standard_normal((n, 3, resolution, resolution)).astype(dtype)


def rel_err(a, b):
    """max |a - b| / max |b|: a normwise relative error (0 when both are 0)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = np.max(np.abs(b)) if b.size else 0.0
    diff = np.max(np.abs(a - b)) if a.size else 0.0
    return diff / scale if scale > 0 else diff
