"""Fused attention in C against its NumPy reference, and its gradient in float64.

Shape legend: B batch, H heads, T tokens, D head dim; q, k, v, out (B, H, T, D); lse (B, H, T).

Tolerances: normwise relative error (max |ours - ref| / max |ref|) <= 1e-12 in float64,
<= 1e-5 in float32 (T and D here stay small enough that sums of T or D products hold it).
The inputs are standard normal, so every output is O(1) in size; where the exact result
is 0 (dq with T = 1: one key, constant softmax) the denominator is floored at 1, so
rounding noise of the size of eps is compared with 1 rather than with 0.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import miniclip
from miniclip import Tensor, gradcheck, ops
from miniclip.backend import compiled, reference

_C = pytest.importorskip("miniclip._C")

DTYPES = [np.float32, np.float64]


def _tol(dtype):
    return 1e-12 if dtype == np.float64 else 1e-5


def _rel(ours, ref):
    return np.max(np.abs(ours.astype(np.float64) - ref)) / max(np.max(np.abs(ref)), 1.0)


def _heads(rng, shape, dtype, layout):
    """A (B, H, T, D) array: contiguous, or a view of (T, B, H, D) memory (as a split qkv gives)."""
    B, H, T, D = shape
    if layout == "contiguous":
        return rng.standard_normal(shape).astype(dtype)
    return rng.standard_normal((T, B, H, D)).astype(dtype).transpose(1, 2, 0, 3)


@given(B=st.sampled_from([1, 2]), H=st.sampled_from([1, 3]),
       T=st.sampled_from([1, 2, 5, 7, 17, 24, 25, 50]), D=st.sampled_from([1, 3, 8, 16, 17, 33]),
       causal=st.booleans(), dtype=st.sampled_from(DTYPES),
       layout=st.sampled_from(["contiguous", "transposed"]), scale=st.sampled_from([None, 0.3]),
       seed=st.integers(0, 2**16))
def test_attention_matches_reference(B, H, T, D, causal, dtype, layout, scale, seed):
    rng = np.random.default_rng(seed)
    q, k, v, dout = (_heads(rng, (B, H, T, D), dtype, layout) for _ in range(4))
    scale = 1.0 / np.sqrt(D) if scale is None else scale
    out, lse = compiled.attention_forward(q, k, v, scale, causal)
    q64, k64, v64, dout64 = (x.astype(np.float64) for x in (q, k, v, dout))
    out_ref, lse_ref = reference.attention_forward(q64, k64, v64, scale, causal)
    assert out.dtype == dtype and lse.dtype == dtype
    assert out.shape == (B, H, T, D) and lse.shape == (B, H, T)
    assert _rel(out, out_ref) <= _tol(dtype)
    assert _rel(lse, lse_ref) <= _tol(dtype)
    grads = compiled.attention_backward(dout, q, k, v, out, lse, scale, causal)
    grads_ref = reference.attention_backward(dout64, q64, k64, v64, out_ref, lse_ref, scale, causal)
    for name, g, g_ref in zip(("dq", "dk", "dv"), grads, grads_ref):
        assert g.dtype == dtype and g.shape == (B, H, T, D)
        assert _rel(g, g_ref) <= 10 * _tol(dtype), name


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("simd", ["auto", "generic"])
def test_attention_model_sizes(causal, simd):
    """Sizes of the model (T = 77 text, 50 image tokens, D = 64) on the SIMD and generic paths."""
    rng = np.random.default_rng(7)
    compiled.set_simd(simd)
    try:
        for T, dtype in [(77, np.float32), (50, np.float64)]:
            q, k, v, dout = (rng.standard_normal((2, 4, T, 64)).astype(dtype) for _ in range(4))
            out, lse = compiled.attention_forward(q, k, v, 0.125, causal)
            ref = reference.attention_forward(*(x.astype(np.float64) for x in (q, k, v)), 0.125, causal)
            assert _rel(out, ref[0]) <= _tol(dtype) and _rel(lse, ref[1]) <= _tol(dtype)
            grads = compiled.attention_backward(dout, q, k, v, out, lse, 0.125, causal)
            grads_ref = reference.attention_backward(*(x.astype(np.float64) for x in (dout, q, k, v)),
                                                     ref[0], ref[1], 0.125, causal)
            for g, g_ref in zip(grads, grads_ref):
                assert _rel(g, g_ref) <= 10 * _tol(dtype)
    finally:
        compiled.set_simd("auto")


@pytest.mark.parametrize("causal", [False, True])
def test_attention_gradcheck_compiled(causal):
    """Central differences through ops.scaled_dot_product_attention on the compiled backend."""
    before = miniclip.get_backend()
    miniclip.set_backend("compiled")
    try:
        rng = np.random.default_rng(1)
        q, k, v = (Tensor(rng.standard_normal((1, 2, 7, 5)), requires_grad=True) for _ in range(3))
        err = gradcheck(lambda a, b, c: ops.scaled_dot_product_attention(a, b, c, causal=causal), q, k, v)
        assert err <= 1e-6
    finally:
        miniclip.set_backend(before)


def test_attention_errors_name_the_input():
    q = np.zeros((1, 2, 3, 4))
    with pytest.raises(ValueError, match="k of shape"):
        compiled.attention_forward(q, np.zeros((1, 2, 3, 5)), q, 0.5, False)
    with pytest.raises(ValueError, match="q of shape \\(B, H, T, D\\)"):
        compiled.attention_forward(np.zeros((2, 3, 4)), q, q, 0.5, False)
    with pytest.raises(TypeError, match="float32 or float64"):
        compiled.attention_forward(q.astype(np.int64), q, q, 0.5, False)
    with pytest.raises(ValueError, match="lse of shape"):
        compiled.attention_backward(q, q, q, q, q, np.zeros((1, 2, 4)), 0.5, False)
