"""Fused row-wise and elementwise kernels (softmax family, layer norm, GELU, QuickGELU, AdamW,
the embedding gradient)
against their NumPy references, and the ops' gradients on the compiled backend.

Shape legend: R rows (leading axes), C the last axis; shapes are drawn with leading axes
of size 1 or more, C from 1 to primes past the SIMD width, inputs contiguous or not.

Tolerances: normwise relative error (max |ours - ref| / max(max |ref|, 1)) <= 1e-12 in
float64 and <= 1e-5 in float32 (every input here is O(1)).
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import miniclip
from miniclip import Tensor, gradcheck, ops
from miniclip.backend import K, compiled, reference

pytest.importorskip("miniclip._C")

from simd_levels import forced, simd_levels  # noqa: E402  (needs _C: after importorskip)

SIMDS = simd_levels()

DTYPES = [np.float32, np.float64]
SHAPES = st.sampled_from([(1,), (7,), (1, 1), (3, 1), (2, 17), (5, 31), (4, 3, 9), (2, 2, 64), (3, 257)])


def _tol(dtype):
    return 1e-12 if dtype == np.float64 else 1e-5


def _close(ours, ref, dtype):
    if ref is None:
        assert ours is None
        return
    assert ours.shape == ref.shape and ours.dtype == ref.dtype
    err = np.max(np.abs(ours.astype(np.float64) - ref), initial=0) / max(np.max(np.abs(ref), initial=0), 1.0)
    assert err <= _tol(dtype), f"relative error {err:.3g}"


def _array(rng, shape, dtype, layout, scale=1.0):
    """Contiguous, or a non-contiguous view (every other element of the last axis)."""
    if layout == "contiguous":
        return (scale * rng.standard_normal(shape)).astype(dtype)
    wide = (scale * rng.standard_normal(shape[:-1] + (2 * shape[-1],))).astype(dtype)
    return wide[..., ::2]


COMMON = dict(shape=SHAPES, dtype=st.sampled_from(DTYPES),
              layout=st.sampled_from(["contiguous", "strided"]), seed=st.integers(0, 2**16))


@given(**COMMON)
def test_softmax_family_matches_reference(shape, dtype, layout, seed):
    rng = np.random.default_rng(seed)
    x = _array(rng, shape, dtype, layout, scale=3.0)
    dy = _array(rng, shape, dtype, layout)
    for fwd, bwd in (("softmax", "softmax_backward"), ("log_softmax", "log_softmax_backward")):
        y = getattr(compiled, fwd)(x)
        y_ref = getattr(reference, fwd)(x)
        _close(y, y_ref, dtype)
        _close(getattr(compiled, bwd)(y_ref, dy), getattr(reference, bwd)(y_ref, dy), dtype)


def test_softmax_extreme_rows():
    x = np.array([[0.0, -np.inf, 1.0], [1e4, -1e4, 0.0], [-1e30, -1e30, -1e30]], dtype=np.float32)
    for dtype in DTYPES:
        _close(compiled.softmax(x.astype(dtype)), reference.softmax(x.astype(dtype)), dtype)
    # another axis goes to the reference, and stays correct
    x = np.random.default_rng(0).standard_normal((3, 4, 5))
    _close(compiled.softmax(x, axis=1), reference.softmax(x, axis=1), np.float64)


@pytest.mark.parametrize("simd", SIMDS)
def test_softmax_rows_every_tail_length(simd):
    """The row exp (csrc/vexp.c: float32 16 lanes with a masked last vector on AVX-512, 8 lanes
    (float64 4) and a scalar tail on AVX2, libm on generic) at every SIMD level, on rows of every
    length around the vector widths, with -inf, huge and underflowing entries (exp of -87.5, -746)."""
    rng = np.random.default_rng(6)
    for dtype in DTYPES:
        for C in list(range(1, 36)) + [64, 65, 77, 200]:
            x = (3.0 * rng.standard_normal((5, C))).astype(dtype)
            x[1, 1::3] = -np.inf
            x[2, 1::2] = -87.5 if dtype == np.float32 else -746.0
            x[3, -1] = 1e4
            dy = rng.standard_normal((5, C)).astype(dtype)
            with forced(simd):
                y, dx = compiled.softmax(x), compiled.softmax_backward(compiled.softmax(x), dy)
            _close(y, reference.softmax(x), dtype)
            _close(dx, reference.softmax_backward(reference.softmax(x), dy), dtype)


@given(affine=st.sampled_from(["both", "weight", "none"]), **COMMON)
def test_layer_norm_matches_reference(shape, dtype, layout, seed, affine):
    rng = np.random.default_rng(seed)
    x = _array(rng, shape, dtype, layout) + 3.0           # an offset mean, as real activations have
    dy = _array(rng, shape, dtype, layout)
    C = shape[-1]
    weight = rng.standard_normal(C).astype(dtype) if affine != "none" else None
    bias = rng.standard_normal(C).astype(dtype) if affine == "both" else None
    ours = compiled.layer_norm_forward(x, weight, bias, 1e-5)
    ref = reference.layer_norm_forward(x, weight, bias, 1e-5)
    for a, b in zip(ours, ref):
        _close(a, b, dtype)
    ours_b = compiled.layer_norm_backward(dy, x, weight, ref[1], ref[2])
    ref_b = reference.layer_norm_backward(dy, x, weight, ref[1], ref[2])
    for a, b in zip(ours_b, ref_b):
        _close(a, b, dtype)


def test_layer_norm_many_rows_sums_accurately():
    """dweight and dbias sum over every row (here 4099 rows, both threads): float32 must hold 1e-5."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4099, 33)).astype(np.float32)
    dy = rng.standard_normal((4099, 33)).astype(np.float32)
    w = rng.standard_normal(33).astype(np.float32)
    _, mean, rstd = reference.layer_norm_forward(x.astype(np.float64), w.astype(np.float64), None)
    ref = reference.layer_norm_backward(*(a.astype(np.float64) for a in (dy, x, w)), mean, rstd)
    ours = compiled.layer_norm_backward(dy, x, w, mean.astype(np.float32), rstd.astype(np.float32))
    for a, b in zip(ours, ref):
        err = np.max(np.abs(a - b)) / np.max(np.abs(b))
        assert err <= 1e-5


@given(**COMMON)
@pytest.mark.parametrize("name", ["gelu", "quick_gelu"])
def test_activations_match_reference(name, shape, dtype, layout, seed):
    rng = np.random.default_rng(seed)
    x = _array(rng, shape, dtype, layout, scale=4.0)
    dy = _array(rng, shape, dtype, layout)
    _close(getattr(compiled, f"{name}_forward")(x), getattr(reference, f"{name}_forward")(x), dtype)
    _close(getattr(compiled, f"{name}_backward")(x, dy), getattr(reference, f"{name}_backward")(x, dy), dtype)


@pytest.mark.parametrize("simd", ["auto", "generic"])
@pytest.mark.parametrize("name", ["gelu", "quick_gelu"])
def test_activations_extreme_values(name, simd):
    x = np.array([-1e4, -100.0, -88.0, -20.0, -1e-7, 0.0, 1e-7, 3.0, 20.0, 100.0, 1e4] * 7, dtype=np.float32)
    compiled.set_simd(simd)
    try:
        for dtype in DTYPES:
            xd = x.astype(dtype)
            _close(getattr(compiled, f"{name}_forward")(xd), getattr(reference, f"{name}_forward")(xd), dtype)
            dy = np.ones_like(xd)
            _close(getattr(compiled, f"{name}_backward")(xd, dy),
                   getattr(reference, f"{name}_backward")(xd, dy), dtype)
        s = compiled.softmax(x.reshape(7, 11))
        _close(s, reference.softmax(x.reshape(7, 11)), np.float32)
    finally:
        compiled.set_simd("auto")


@pytest.mark.parametrize("dtype", DTYPES)
def test_adamw_step_matches_reference(dtype):
    rng = np.random.default_rng(2)
    shape = (37, 5)
    p_ours = rng.standard_normal(shape).astype(dtype)
    p_ref = p_ours.copy()
    m_ours, v_ours = np.zeros(shape, dtype), np.zeros(shape, dtype)
    m_ref, v_ref = m_ours.copy(), v_ours.copy()
    for step in range(1, 6):
        g = rng.standard_normal((5, 37)).astype(dtype).T         # a non-contiguous gradient
        assert compiled.adamw_step(p_ours, g, m_ours, v_ours, 1e-2, 0.9, 0.98, 1e-6, 0.2, step) is None
        reference.adamw_step(p_ref, g, m_ref, v_ref, 1e-2, 0.9, 0.98, 1e-6, 0.2, step)
        for a, b in ((p_ours, p_ref), (m_ours, m_ref), (v_ours, v_ref)):
            _close(a, b, dtype)
    with pytest.raises(ValueError, match="step >= 1"):
        compiled.adamw_step(p_ours, g, m_ours, v_ours, 1e-2, 0.9, 0.98, 1e-6, 0.2, 0)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 4099, 200003])
def test_adamw_simd_and_threads_give_the_same_bits(n):
    """The AVX2 loop does the C loop's operations in the same order, and the threads split the
    array on multiples of 8 values (n = 200003 is above the threading threshold): the same bits."""
    rng = np.random.default_rng(n)
    p0, g = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    m0 = rng.standard_normal(n).astype(np.float32)
    v0 = np.abs(rng.standard_normal(n)).astype(np.float32)
    results = []
    before = compiled.get_num_threads()
    try:
        for simd, threads in [("generic", 1), ("auto", 1), ("auto", 2)]:
            compiled.set_simd(simd)
            compiled.set_num_threads(threads)
            p, m, v = p0.copy(), m0.copy(), v0.copy()
            compiled.adamw_step(p, g, m, v, 1e-2, 0.9, 0.98, 1e-6, 0.2, 3)
            results.append((p, m, v))
    finally:
        compiled.set_simd("auto")
        compiled.set_num_threads(before)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_adamw_reference_is_the_documented_formula():
    p, g = np.array([1.0, -2.0]), np.array([0.5, 0.25])
    m, v = np.array([0.1, 0.0]), np.array([0.2, 0.0])
    lr, b1, b2, eps, wd, t = 0.1, 0.9, 0.99, 1e-8, 0.01, 3
    m_new = b1 * m + (1 - b1) * g
    v_new = b2 * v + (1 - b2) * g * g
    mhat, vhat = m_new / (1 - b1 ** t), v_new / (1 - b2 ** t)
    expected = p * (1 - lr * wd) - lr * mhat / (np.sqrt(vhat) + eps)
    reference.adamw_step(p, g, m, v, lr, b1, b2, eps, wd, t)
    np.testing.assert_allclose(p, expected, rtol=1e-14)
    np.testing.assert_allclose(m, m_new, rtol=1e-15)


@given(N=st.sampled_from([0, 1, 2, 7, 40]), C=st.sampled_from([1, 3, 8, 17, 64]), V=st.sampled_from([1, 2, 5, 300]),
       dtype=st.sampled_from(DTYPES), contiguous=st.booleans(), seed=st.integers(0, 2**16))
def test_embedding_backward_matches_reference(N, C, V, dtype, contiguous, seed):
    """The scatter-add, repeated ids included (with V = 1 or 2 every id repeats): equal to np.add.at
    to the last bit, since both add the rows in the order of n."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, V, N)
    dout = rng.standard_normal((N, 2 * C)).astype(dtype)
    dout = dout[:, :C].copy() if contiguous else dout[:, ::2]
    ours = compiled.embedding_backward(ids, dout, V)
    ref = reference.embedding_backward(ids, dout, V)
    assert ours.shape == (V, C) and ours.dtype == dtype
    np.testing.assert_array_equal(ours, ref)


def test_embedding_backward_checks_ids():
    with pytest.raises(IndexError, match="ids must lie in \\[0, 3\\), got 3 at position 1"):
        miniclip._C.embedding_backward(np.array([0, 3]), np.zeros((2, 4)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="expected dout"):
        miniclip._C.embedding_backward(np.array([0, 1]), np.zeros((3, 4)), np.zeros((3, 4)))


def test_compiled_backend_routes_the_fused_kernels():
    before = miniclip.get_backend()
    miniclip.set_backend("compiled")
    try:
        for name in ("softmax", "layer_norm_forward", "quick_gelu_backward", "adamw_step", "matmul",
                     "attention_forward", "linear", "embedding_backward"):
            assert getattr(K, name) is getattr(compiled, name)
        assert K.cross_entropy_forward is reference.cross_entropy_forward    # NumPy was faster
    finally:
        miniclip.set_backend(before)


@pytest.mark.parametrize("op", ["softmax", "log_softmax", "layer_norm", "gelu", "quick_gelu", "matmul"])
def test_ops_gradcheck_on_compiled_backend(op):
    """float64 central differences through the ops, their kernels from the compiled backend."""
    before = miniclip.get_backend()
    miniclip.set_backend("compiled")
    try:
        rng = np.random.default_rng(3)
        x = Tensor(rng.standard_normal((3, 4, 7)), requires_grad=True)
        if op == "layer_norm":
            w = Tensor(rng.standard_normal(7), requires_grad=True)
            b = Tensor(rng.standard_normal(7), requires_grad=True)
            err = gradcheck(lambda a, c, d: ops.layer_norm(a, c, d, 1e-5), x, w, b)
        elif op == "matmul":
            w = Tensor(rng.standard_normal((7, 5)), requires_grad=True)
            err = gradcheck(ops.matmul, x, w)
        else:
            err = gradcheck(getattr(ops, op), x)
        assert err <= 1e-6
    finally:
        miniclip.set_backend(before)


@pytest.mark.parametrize("dtype", DTYPES)
def test_training_path_equal_on_both_backends(dtype):
    """A small transformer-like step (Linear, LayerNorm, attention, QuickGELU, softmax,
    cross-entropy) gives the same loss and gradients on the compiled and numpy backends."""
    rng = np.random.default_rng(5)
    B, H, T, D = 2, 2, 9, 8
    C = H * D
    data = {
        "x": rng.standard_normal((B * T, C)), "w_qkv": rng.standard_normal((3 * C, C)) / np.sqrt(C),
        "ln_w": 1 + 0.1 * rng.standard_normal(C), "ln_b": 0.1 * rng.standard_normal(C),
        "w_out": rng.standard_normal((5, C)) / np.sqrt(C),
    }
    targets = rng.integers(0, 5, B * T)

    def step(backend):
        miniclip.set_backend(backend)
        p = {k: Tensor(v.astype(dtype), requires_grad=True) for k, v in data.items()}
        h = ops.layer_norm(p["x"], p["ln_w"], p["ln_b"], 1e-5)                  # (B*T, C)
        qkv = ops.matmul(h, ops.transpose(p["w_qkv"]))                          # (B*T, 3C)
        qkv = ops.permute(ops.reshape(qkv, (B, T, 3, H, D)), (2, 0, 3, 1, 4))    # (3, B, H, T, D)
        q, k, v = (qkv[i] for i in range(3))
        a = ops.scaled_dot_product_attention(q, k, v, causal=True)             # (B, H, T, D)
        a = ops.reshape(ops.permute(a, (0, 2, 1, 3)), (B * T, C))               # (B*T, C)
        logits = ops.matmul(ops.quick_gelu(a), ops.transpose(p["w_out"]))       # (B*T, 5)
        loss = ops.cross_entropy(ops.log_softmax(logits) * 1.5, targets)
        loss.backward()
        return loss.data, {k: t.grad for k, t in p.items()}

    before = miniclip.get_backend()
    try:
        loss_c, grads_c = step("compiled")
        loss_n, grads_n = step("numpy")
    finally:
        miniclip.set_backend(before)
    _close(np.asarray(loss_c), np.asarray(loss_n), dtype)
    for name in grads_n:
        _close(grads_c[name], grads_n[name], dtype)


# ------------------------------------------- float32 SIMD kernels against the generic C path
# The float32 activations and layer norm have an AVX2+FMA version chosen at run time and
# a generic C one (other CPUs, MINICLIP_FORCE_GENERIC=1). Each runs here on sizes around
# the 8-lane width (the masked last vector), on its own and against the other.

ACT_SIZES = [1, 3, 7, 8, 9, 15, 16, 17, 4099, 40003]        # 40003: past the OpenMP threshold


@pytest.mark.parametrize("simd", ["auto", "generic"])
@pytest.mark.parametrize("name", ["gelu", "quick_gelu"])
def test_activations_f32_every_tail_length(name, simd):
    rng = np.random.default_rng(3)
    compiled.set_simd(simd)
    try:
        for n in ACT_SIZES:
            x = (4.0 * rng.standard_normal(n)).astype(np.float32)
            dy = rng.standard_normal(n).astype(np.float32)
            _close(getattr(compiled, f"{name}_forward")(x), getattr(reference, f"{name}_forward")(x), np.float32)
            _close(getattr(compiled, f"{name}_backward")(x, dy),
                   getattr(reference, f"{name}_backward")(x, dy), np.float32)
            # one value gives the same result wherever it sits (full vector or masked tail)
            y = getattr(compiled, f"{name}_forward")(x)
            assert np.array_equal(y[-1:], getattr(compiled, f"{name}_forward")(x[-1:]))
    finally:
        compiled.set_simd("auto")


@pytest.mark.parametrize("simd", ["auto", "generic"])
@pytest.mark.parametrize("name", ["gelu", "quick_gelu"])
def test_activations_f32_nan_inf_and_large(name, simd):
    """NaN in gives NaN out (in any lane, also the tail); +-inf and huge |x| as the reference."""
    vals = [np.nan, -np.inf, np.inf, -3e38, 3e38, -1e4, -87.5, -52.0, -51.0, 51.0, 1e4, 0.0, -0.0, 0.5]
    compiled.set_simd(simd)
    try:
        for n in (len(vals), 8, 5, 19):
            x = np.resize(np.array(vals, dtype=np.float32), n)
            dy = np.ones_like(x)
            with np.errstate(all="ignore"):
                refs = (getattr(reference, f"{name}_forward")(x), getattr(reference, f"{name}_backward")(x, dy))
            ours = (getattr(compiled, f"{name}_forward")(x), getattr(compiled, f"{name}_backward")(x, dy))
            for a, b in zip(ours, refs):
                assert np.array_equal(np.isnan(a), np.isnan(b)), (x, a, b)
                ok = ~np.isnan(b)
                assert np.allclose(a[ok], b[ok], rtol=1e-5, atol=1e-30), (x[ok], a[ok], b[ok])
    finally:
        compiled.set_simd("auto")


@pytest.mark.parametrize("simd", ["auto", "generic"])
@pytest.mark.parametrize("affine", ["both", "weight", "bias", "none"])
def test_layer_norm_f32_every_row_length(simd, affine):
    """C around the 8-lane width and the model's 32/64/128/768; R odd and even, and past the
    OpenMP threshold (rows split over the threads, groups of rows, the last odd row)."""
    rng = np.random.default_rng(4)
    compiled.set_simd(simd)
    try:
        for R, C in [(1, 1), (3, 7), (5, 8), (2, 9), (7, 17), (4, 32), (9, 63), (5, 64), (3, 65),
                     (6, 128), (3, 768), (1025, 64), (77, 257)]:
            x = (rng.standard_normal((R, C)) + 3.0).astype(np.float32)
            dy = rng.standard_normal((R, C)).astype(np.float32)
            w = rng.standard_normal(C).astype(np.float32) if affine in ("both", "weight") else None
            b = rng.standard_normal(C).astype(np.float32) if affine in ("both", "bias") else None
            ours = compiled.layer_norm_forward(x, w, b, 1e-5)
            ref = reference.layer_norm_forward(x, w, b, 1e-5)
            for a, r in zip(ours, ref):
                _close(a, r, np.float32)
            for a, r in zip(compiled.layer_norm_backward(dy, x, w, ref[1], ref[2]),
                            reference.layer_norm_backward(dy, x, w, ref[1], ref[2])):
                _close(a, r, np.float32)
    finally:
        compiled.set_simd("auto")


@pytest.mark.parametrize("simd", ["auto", "generic"])
def test_layer_norm_f32_sums_accurate_for_long_rows_and_many_rows(simd):
    """Row statistics for C = 4096 with a large offset mean, and dweight/dbias over 20001 rows,
    against float64: both paths keep float32 accuracy (sums in double / float blocks)."""
    rng = np.random.default_rng(5)
    compiled.set_simd(simd)
    try:
        x = (rng.standard_normal((3, 4096)) + 100.0).astype(np.float32)
        _, mean, rstd = compiled.layer_norm_forward(x, None, None, 1e-5)
        _, mean64, rstd64 = reference.layer_norm_forward(x.astype(np.float64), None, None, 1e-5)
        assert np.max(np.abs(mean - mean64) / np.abs(mean64)) <= 2e-7
        assert np.max(np.abs(rstd - rstd64) / np.abs(rstd64)) <= 1e-5
        x = rng.standard_normal((20001, 24)).astype(np.float32)
        dy = (rng.standard_normal((20001, 24)) + 0.5).astype(np.float32)
        w = rng.standard_normal(24).astype(np.float32)
        _, mean, rstd = reference.layer_norm_forward(x.astype(np.float64), w.astype(np.float64), None)
        ref = reference.layer_norm_backward(*(a.astype(np.float64) for a in (dy, x, w)), mean, rstd)
        ours = compiled.layer_norm_backward(dy, x, w, mean.astype(np.float32), rstd.astype(np.float32))
        for a, b in zip(ours, ref):
            assert np.max(np.abs(a - b)) / np.max(np.abs(b)) <= 1e-6
    finally:
        compiled.set_simd("auto")
