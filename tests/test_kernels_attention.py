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

from simd_levels import forced, simd_levels  # noqa: E402  (needs _C: after importorskip)

SIMDS = simd_levels()

DTYPES = [np.float32, np.float64]


def _tol(dtype):
    return 1e-12 if dtype == np.float64 else 1e-5


def _rel(ours, ref):
    return np.max(np.abs(ours.astype(np.float64) - ref)) / max(np.max(np.abs(ref)), 1.0)


def _heads(rng, shape, dtype, layout):
    """A (B, H, T, D) array in one of the layouts the kernel meets.

    contiguous; transposed: a view of (T, B, H, D) memory; packed: the q third of a (B, T, 3, H, D)
    projection (row stride 3C, as ops.qkv_attention passes it); strided_d: every other value
    along D (not unit stride: the wrapper must copy it); reversed: negative strides on B and T.
    """
    B, H, T, D = shape
    if layout == "contiguous":
        return rng.standard_normal(shape).astype(dtype)
    if layout == "transposed":
        return rng.standard_normal((T, B, H, D)).astype(dtype).transpose(1, 2, 0, 3)
    if layout == "packed":
        return rng.standard_normal((B, T, 3, H, D)).astype(dtype).transpose(2, 0, 3, 1, 4)[0]
    if layout == "strided_d":
        return rng.standard_normal((B, H, T, 2 * D)).astype(dtype)[..., ::2]
    return rng.standard_normal(shape).astype(dtype)[::-1, :, ::-1]


LAYOUTS = ["contiguous", "transposed", "packed", "strided_d", "reversed"]


@given(B=st.sampled_from([1, 2]), H=st.sampled_from([1, 3]),
       T=st.sampled_from([1, 2, 5, 7, 12, 17, 24, 25, 50, 61, 64, 65, 77]),
       D=st.sampled_from([1, 3, 8, 16, 17, 32, 33, 64]),
       causal=st.booleans(), dtype=st.sampled_from(DTYPES),
       layout=st.sampled_from(LAYOUTS), scale=st.sampled_from([None, 0.3]),
       into_views=st.booleans(), keep_p=st.booleans(), seed=st.integers(0, 2**16))
def test_attention_matches_reference(B, H, T, D, causal, dtype, layout, scale, into_views, keep_p, seed):
    rng = np.random.default_rng(seed)
    q, k, v, dout = (_heads(rng, (B, H, T, D), dtype, layout) for _ in range(4))
    scale = 1.0 / np.sqrt(D) if scale is None else scale
    out_view = grads_views = None
    if into_views:  # write into (B, T, H, D) and (B, T, 3, H, D) buffers, as ops.qkv_attention does
        y = np.full((B, T, H, D), np.nan, dtype)
        dqkv = np.full((B, T, 3, H, D), np.nan, dtype)
        out_view, grads_views = y.transpose(0, 2, 1, 3), tuple(dqkv.transpose(2, 0, 3, 1, 4))
    p = np.full((B, H, T, T), np.nan, dtype) if keep_p else None  # the probabilities, kept for the backward
    out, lse = compiled.attention_forward(q, k, v, scale, causal, out=out_view, p=p)
    if into_views:
        assert out is out_view
    q64, k64, v64, dout64 = (x.astype(np.float64) for x in (q, k, v, dout))
    p_ref = np.empty((B, H, T, T))
    out_ref, lse_ref = reference.attention_forward(q64, k64, v64, scale, causal, p=p_ref)
    if keep_p:
        assert _rel(p, p_ref) <= _tol(dtype)
        if causal:  # masked entries are exact zeros
            assert not np.triu(p, k=1).any()
    assert out.dtype == dtype and lse.dtype == dtype
    assert out.shape == (B, H, T, D) and lse.shape == (B, H, T)
    assert _rel(out, out_ref) <= _tol(dtype)
    assert _rel(lse, lse_ref) <= _tol(dtype)
    grads = compiled.attention_backward(dout, q, k, v, out, lse, scale, causal, grads=grads_views, p=p)
    grads_ref = reference.attention_backward(dout64, q64, k64, v64, out_ref, lse_ref, scale, causal)
    if into_views:
        assert all(g is view for g, view in zip(grads, grads_views))
        assert not np.isnan(y).any() and not np.isnan(dqkv).any()   # every value written
    for name, g, g_ref in zip(("dq", "dk", "dv"), grads, grads_ref):
        assert g.dtype == dtype and g.shape == (B, H, T, D)
        assert _rel(g, g_ref) <= 10 * _tol(dtype), name


# T around the tile path's limits (csrc/attention.c): the 6-row tile (AVX2, generic) up to 24, the
# AVX-512 14-row tile at 14 and from 19 to 42 (15 .. 18 take the 6-row tile); below, at and above
# each, and T = 17, the image tower's.
# D: multiples of both tiles' widths (32, 64), of the narrow one only (16, 48; float64 8, 24),
# and neither (20: the general path at every T).
TILE_T = [1, 5, 6, 7, 13, 14, 15, 17, 18, 19, 24, 25, 28, 41, 42, 43]
TILE_D = {np.float32: [16, 20, 32, 48, 64], np.float64: [8, 20, 24, 32, 64]}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("simd", SIMDS)
def test_attention_tile_limits(simd, dtype, threads):
    """Every SIMD level's tile path and the general one, on either side of each limit, causal
    or not, the probabilities kept or rebuilt. On 2 threads there are enough heads for the
    kernel to start its team (more than ATTENTION_PARALLEL_WORK multiply-adds)."""
    rng = np.random.default_rng(11)
    with forced(simd, threads):
        for T, D, causal in ((T, D, c) for T in TILE_T for D in TILE_D[dtype] for c in (False, True)):
            heads = 6 if threads == 1 else min(2048, -(-1_100_000 // (T * T * D)))
            q, k, v, dout = (_heads(rng, (heads, 1, T, D), dtype, "packed") for _ in range(4))
            keep_p = (T + D) % 2 == 0
            p = np.full((heads, 1, T, T), np.nan, dtype) if keep_p else None
            out, lse = compiled.attention_forward(q, k, v, 0.3, causal, p=p)
            q64, k64, v64, dout64 = (x.astype(np.float64) for x in (q, k, v, dout))
            out_ref, lse_ref = reference.attention_forward(q64, k64, v64, 0.3, causal)
            case = f"{simd} {dtype.__name__} T={T} D={D} causal={causal} threads={threads}"
            assert _rel(out, out_ref) <= _tol(dtype), case
            assert _rel(lse, lse_ref) <= _tol(dtype), case
            grads = compiled.attention_backward(dout, q, k, v, out, lse, 0.3, causal, p=p)
            grads_ref = reference.attention_backward(dout64, q64, k64, v64, out_ref, lse_ref, 0.3, causal)
            for name, g, g_ref in zip(("dq", "dk", "dv"), grads, grads_ref):
                assert _rel(g, g_ref) <= 10 * _tol(dtype), f"{name} {case}"


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("simd", SIMDS)
def test_attention_model_sizes(causal, simd):
    """Sizes of the model (T = 77 text, 50 image tokens, D = 64) on every SIMD path."""
    rng = np.random.default_rng(7)
    with forced(simd):
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


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("T, D", [(7, 5), (4, 6)])  # T > D rebuilds the probabilities, T <= D keeps them
def test_attention_gradcheck_compiled(causal, T, D):
    """Central differences through ops.scaled_dot_product_attention on the compiled backend."""
    before = miniclip.get_backend()
    miniclip.set_backend("compiled")
    try:
        rng = np.random.default_rng(1)
        q, k, v = (Tensor(rng.standard_normal((1, 2, T, D)), requires_grad=True) for _ in range(3))
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
    # outputs are written in place, so a view the kernel cannot write is refused, never copied
    with pytest.raises(ValueError, match="out a writeable"):
        compiled.attention_forward(q, q, q, 0.5, False, out=np.zeros((1, 2, 3, 8))[..., ::2])
    with pytest.raises(ValueError, match="dk a writeable"):
        compiled.attention_backward(q, q, q, q, q, np.zeros((1, 2, 3)), 0.5, False,
                                    grads=(np.zeros_like(q), np.zeros((1, 2, 3, 5)), np.zeros_like(q)))
    with pytest.raises(ValueError, match="expected p a C-contiguous \\(1, 2, 3, 3\\)"):
        compiled.attention_forward(q, q, q, 0.5, False, p=np.zeros((1, 2, 3, 4)))
    with pytest.raises(ValueError, match="expected p a C-contiguous"):
        compiled.attention_backward(q, q, q, q, q, np.zeros((1, 2, 3)), 0.5, False, p=np.zeros((1, 2, 3, 6))[..., ::2])
    with pytest.raises(ValueError, match="contiguous last axis"):   # the C wrapper checks it too
        _C.attention_forward(q, q, q, np.zeros((1, 2, 3, 8))[..., ::2], np.zeros((1, 2, 3)), 0.5, False)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("backend", ["numpy", "compiled"])
def test_attention_into_views_both_backends(causal, backend):
    """K.attention_forward(out=) and attention_backward(grads=) mean the same on both backends."""
    rng = np.random.default_rng(3)
    B, H, T, D = 2, 2, 5, 4
    qkv = rng.standard_normal((B, T, 3, H, D))
    q, k, v = qkv.transpose(2, 0, 3, 1, 4)
    kern = compiled if backend == "compiled" else reference
    y = np.empty((B, T, H, D))
    out, lse = kern.attention_forward(q, k, v, 0.5, causal, out=y.transpose(0, 2, 1, 3))
    ref_out, ref_lse = reference.attention_forward(q, k, v, 0.5, causal)
    np.testing.assert_allclose(y.transpose(0, 2, 1, 3), ref_out, rtol=1e-12, atol=1e-12)
    dqkv = np.empty((B, T, 3, H, D))
    dout = rng.standard_normal((B, H, T, D))
    kern.attention_backward(dout, q, k, v, out, lse, 0.5, causal, grads=tuple(dqkv.transpose(2, 0, 3, 1, 4)))
    for g, g_ref in zip(dqkv.transpose(2, 0, 3, 1, 4), reference.attention_backward(dout, q, k, v, ref_out,
                                                                                 ref_lse, 0.5, causal)):
        np.testing.assert_allclose(g, g_ref, rtol=1e-12, atol=1e-12)
