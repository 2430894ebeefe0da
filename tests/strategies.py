"""Hypothesis strategies shared by the tests: shapes, and float64 inputs in awkward layouts.

``tensors(...)`` draws an array of a given shape in one of three layouts — contiguous,
transposed (a reversed-axes view) or strided (every other element of a larger
array) — so every op is checked on non-contiguous inputs too.
"""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from miniclip import Tensor

LAYOUTS = ("contiguous", "transposed", "strided")

small_shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)


def layout_array(rng, shape, layout, domain="real", dtype=np.float64):
    """A float array of ``shape`` in ``layout``; domain 'real' N(0,1), 'positive' U(0.5, 2),
    'distinct' values at least 0.1 apart (no ties for max)."""
    shape = tuple(shape)
    size = int(np.prod(shape)) if shape else 1

    def values(n):
        if domain == "positive":
            return rng.uniform(0.5, 2.0, n)
        if domain == "distinct":
            return rng.permutation(n) * 0.1 + rng.uniform(0, 0.01, n) - 0.05 * n
        return rng.standard_normal(n)

    if layout == "transposed" and len(shape) >= 2:
        base = values(size).reshape(shape[::-1])
        arr = base.T                                   # reversed axes: a non-contiguous view
    elif layout == "strided" and len(shape) >= 1:
        base = values(2 * size).reshape(shape[:-1] + (2 * shape[-1],))
        arr = base[..., ::2]                           # every other element of the last axis
    else:
        arr = values(size).reshape(shape)
    return arr.astype(dtype, copy=False) if dtype != np.float64 else arr


@st.composite
def tensors(draw, shape, domain="real", requires_grad=True):
    """A float64 Tensor of ``shape`` in a drawn layout (seeded from Hypothesis)."""
    seed = draw(st.integers(0, 2**32 - 1))
    layout = draw(st.sampled_from(LAYOUTS))
    arr = layout_array(np.random.default_rng(seed), shape, layout, domain)
    return Tensor(arr, requires_grad=requires_grad)
