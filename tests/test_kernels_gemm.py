"""Compiled GEMM (v1 naive, v2 tiled, v3 packed) and batched matmul against NumPy.

Shape legend: M, N, K GEMM sizes (C is M x N, the sum runs over K); nb batch.

Tolerances: the error of a sum of K products is bounded by about K * eps * (|A| |B|)
elementwise, so each test compares |ours - exact| against the scale |alpha| |A| |B| +
|beta| |C|: float64 to 1e-12, float32 to 1e-5 (times K / 128 beyond K = 128). The exact
product is computed in float64 by NumPy.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import miniclip
from miniclip.backend import compiled, reference

_C = pytest.importorskip("miniclip._C")

# sizes around the micro-kernel tile (6 x 16 float32, 6 x 8 float64): 1, primes, non-multiples
SIZES = [1, 2, 3, 5, 6, 7, 8, 11, 13, 16, 17, 23, 31, 37, 48, 61]
DTYPES = [np.float32, np.float64]


def _tol(dtype, K):
    return 1e-12 if dtype == np.float64 else 1e-5 * max(1.0, K / 128)


def _operand(rng, rows, cols, dtype, layout):
    """A (rows, cols) array that is contiguous, a transposed view, or a strided slice."""
    if layout == "contiguous":
        return rng.standard_normal((rows, cols)).astype(dtype)
    if layout == "transposed":
        return rng.standard_normal((cols, rows)).astype(dtype).T       # (rows, cols) view, column-major
    return rng.standard_normal((2 * rows, 3 * cols)).astype(dtype)[::2, 1::3]  # both strides > 1


def _check_gemm(C, A, B, C0, alpha, beta):
    A64, B64, C64 = (x.astype(np.float64) for x in (A, B, C0))
    exact = alpha * (A64 @ B64) + (beta * C64 if beta != 0 else 0)
    scale = abs(alpha) * (np.abs(A64) @ np.abs(B64)) + abs(beta) * np.abs(C64) + 1e-300
    err = np.max(np.abs(C.astype(np.float64) - exact) / scale)
    assert err <= _tol(C.dtype, A.shape[1]), f"relative error {err:.3g}"


LAYOUTS = st.sampled_from(["contiguous", "transposed", "strided"])


@given(M=st.sampled_from(SIZES), N=st.sampled_from(SIZES), K=st.sampled_from(SIZES),
       la=LAYOUTS, lb=LAYOUTS, lc=LAYOUTS, dtype=st.sampled_from(DTYPES),
       alpha=st.sampled_from([1.0, -0.5]), beta=st.sampled_from([0.0, 1.0, 0.25]),
       seed=st.integers(0, 2**16))
@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
def test_gemm_versions_match_numpy(version, M, N, K, la, lb, lc, dtype, alpha, beta, seed):
    rng = np.random.default_rng(seed)
    A, B = _operand(rng, M, K, dtype, la), _operand(rng, K, N, dtype, lb)
    C = _operand(rng, M, N, dtype, lc)
    C0 = C.copy()
    out = compiled.gemm(A, B, C, alpha, beta, version=version)
    assert out is C
    _check_gemm(C, A, B, C0, alpha, beta)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("simd", ["auto", "generic"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("M, N, K", [
    (200, 70, 300),     # several MC row blocks and two KC slices
    (7, 300, 200),      # fewer rows than threads x MR: threads split the columns
    (5, 4100, 3),       # N > NC: two column blocks
    (97, 101, 1),       # K = 1
    (130, 33, 129),     # everything an edge tile
])
def test_gemm_v3_blocking_paths(M, N, K, threads, simd, dtype):
    rng = np.random.default_rng(M * N + K)
    before = compiled.get_num_threads()
    compiled.set_num_threads(threads)
    compiled.set_simd(simd)
    try:
        assert _C.simd_name() in (("generic",) if simd == "generic" else ("avx512", "avx2+fma", "generic"))
        for la, lb in [("contiguous", "contiguous"), ("transposed", "strided")]:
            A, B = _operand(rng, M, K, dtype, la), _operand(rng, K, N, dtype, lb)
            C = rng.standard_normal((M, N)).astype(dtype)
            C0 = C.copy()
            compiled.gemm(A, B, C, 0.75, 0.5)
            _check_gemm(C, A, B, C0, 0.75, 0.5)
    finally:
        compiled.set_simd("auto")
        compiled.set_num_threads(before)


@given(M=st.sampled_from(SIZES + [130, 300]), N=st.sampled_from(SIZES), K=st.sampled_from(SIZES + [300]),
       lx=LAYOUTS, lw=LAYOUTS, lr=LAYOUTS, bias=st.booleans(), residual=st.booleans(),
       threads=st.sampled_from([1, 2]), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16))
def test_linear_epilogue_matches_reference(M, N, K, lx, lw, lr, bias, residual, threads, dtype, seed):
    """K.linear: x W^T + b + r with the bias and residual added in GEMM v3's epilogue, on every
    path (tiny products, the unpacked direct path with moved-back edge tiles, packed blocks with
    two K slices (K = 300 > KC): the epilogue must come once, after the last slice)."""
    rng = np.random.default_rng(seed)
    x, w = _operand(rng, M, K, dtype, lx), _operand(rng, N, K, dtype, lw)
    b = rng.standard_normal(2 * N).astype(dtype)[::1 + (lr == "strided")][:N] if bias else None  # strided too
    r = _operand(rng, M, N, dtype, lr) if residual else None
    before = compiled.get_num_threads()
    compiled.set_num_threads(threads)
    try:
        y = compiled.linear(x, w, b, r)
    finally:
        compiled.set_num_threads(before)
    ref = reference.linear(*(None if a is None else a.astype(np.float64) for a in (x, w, b, r)))
    assert y.shape == (M, N) and y.dtype == dtype
    scale = np.abs(x.astype(np.float64)) @ np.abs(w.T.astype(np.float64)) + np.abs(ref) + 1e-300  # as _check_gemm
    assert np.max(np.abs(y - ref) / scale) <= _tol(dtype, K)


def test_linear_falls_back_and_checks():
    x, w = np.ones((3, 4)), np.ones((5, 4))
    np.testing.assert_array_equal(compiled.linear(x.astype(int), w.astype(int)), np.full((3, 5), 4))
    with pytest.raises(ValueError, match="bias"):
        _C.gemm_bias(x, w.T, np.empty((3, 5)), np.ones(4), None)
    with pytest.raises(ValueError, match="R \\(3, 5\\) like C"):
        _C.gemm_bias(x, w.T, np.empty((3, 5)), None, np.ones((5, 3)))


@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
def test_gemm_beta_zero_never_reads_C(version):
    A = np.ones((7, 5))
    B = np.ones((5, 9))
    C = np.full((7, 9), np.nan)
    compiled.gemm(A, B, C, 1.0, 0.0, version=version)
    np.testing.assert_array_equal(C, 5.0)


def test_gemm_errors_name_the_input():
    A, B = np.ones((3, 4)), np.ones((5, 2))
    with pytest.raises(ValueError, match="A \\(M, K\\), B \\(K, N\\)"):
        compiled.gemm(A, B, np.empty((3, 2)))
    with pytest.raises(TypeError, match="one dtype"):
        compiled.gemm(np.ones((3, 4), np.float32), np.ones((4, 2)), np.empty((3, 2)))
    with pytest.raises(ValueError, match="version"):
        compiled.gemm(np.ones((3, 4)), np.ones((4, 2)), np.empty((3, 2)), version="v9")
    with pytest.raises(ValueError, match="overlap"):
        X = np.ones((4, 4))
        compiled.gemm(X, X, X)


def test_reference_gemm_matches_definition():
    rng = np.random.default_rng(0)
    A, B, C = rng.standard_normal((4, 3)), rng.standard_normal((3, 5)), rng.standard_normal((4, 5))
    C0 = C.copy()
    reference.gemm(A, B, C, 2.0, -1.0)
    np.testing.assert_allclose(C, 2.0 * A @ B - C0, rtol=1e-14, atol=1e-14)


# ----------------------------------------------------------------- batched matmul
BATCH_SHAPES = [
    ((5, 7), (7, 3)),                     # plain 2-D
    ((2, 3, 7, 5), (2, 3, 5, 6)),         # (B, H, T, D)-style batches
    ((4, 17, 8), (8, 9)),                 # x (B, T, C) @ W: one tall product
    ((9, 4), (3, 4, 6)),                  # a broadcast over b's batch
    ((2, 1, 5, 4), (1, 3, 4, 6)),         # both broadcast
    ((1, 6, 1), (2, 1, 6)),               # K = 1
]


@given(shapes=st.sampled_from(BATCH_SHAPES), dtype=st.sampled_from(DTYPES),
       transpose_b=st.booleans(), permute_a=st.booleans(), seed=st.integers(0, 2**16))
def test_matmul_matches_numpy(shapes, dtype, transpose_b, permute_a, seed):
    rng = np.random.default_rng(seed)
    sa, sb = shapes
    a = rng.standard_normal(sa).astype(dtype)
    if permute_a and a.ndim == 4:         # a non-contiguous (B, H, T, D) view of (H, B, T, D) memory
        a = np.ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    if transpose_b:                        # b as the transposed view of a contiguous array
        b = np.swapaxes(rng.standard_normal(sb[:-2] + sb[-1:] + sb[-2:-1]).astype(dtype), -1, -2)
    else:
        b = rng.standard_normal(sb).astype(dtype)
    out = compiled.matmul(a, b)
    exact = np.matmul(a.astype(np.float64), b.astype(np.float64))
    assert out.shape == exact.shape and out.dtype == dtype
    scale = np.matmul(np.abs(a.astype(np.float64)), np.abs(b.astype(np.float64))) + 1e-300
    assert np.max(np.abs(out - exact) / scale) <= _tol(dtype, a.shape[-1])


def test_matmul_falls_back_for_other_inputs():
    a = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(compiled.matmul(a, a.T), a @ a.T)       # ints: NumPy
    with pytest.raises(ValueError, match="inner sizes"):
        compiled.matmul(np.ones((2, 3)), np.ones((4, 2)))
    assert compiled.matmul(np.ones((0, 3)), np.ones((3, 2))).shape == (0, 2)
    np.testing.assert_array_equal(compiled.matmul(np.ones((2, 0)), np.ones((0, 3))), np.zeros((2, 3)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_batched_batch_strides(dtype):
    rng = np.random.default_rng(3)
    A = rng.standard_normal((6, 3, 11, 13)).astype(dtype)[:, 1]        # (6, 11, 13), batch stride 3*11*13
    B = np.broadcast_to(rng.standard_normal((13, 9)).astype(dtype), (6, 13, 9))  # batch stride 0
    C = np.empty((9, 6, 11), dtype).transpose(1, 2, 0)                # (6, 11, 9), column-major rows
    _C.gemm_batched(A, B, C, 1.0, 0.0)
    exact = np.matmul(A.astype(np.float64), B.astype(np.float64))
    assert np.max(np.abs(C - exact)) <= _tol(dtype, 13) * np.max(np.abs(exact)) * 13
    with pytest.raises(ValueError, match="broadcast"):
        C_shared = np.lib.stride_tricks.as_strided(np.empty((11, 9), dtype), (6, 11, 9),
                                                   (0, 9 * A.itemsize, A.itemsize))
        _C.gemm_batched(A, B, C_shared, 1.0, 0.0)


# ----------------------------------------------------------------- threads
def test_blas_limited_to_one_thread_while_compiled_is_active():
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas_threads():
        return [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]

    before = miniclip.get_backend()
    try:
        miniclip.set_backend("compiled")
        assert all(n == 1 for n in blas_threads())
        miniclip.set_backend("numpy")                       # numpy's BLAS gets its threads back
        miniclip.set_backend("compiled")
        assert all(n == 1 for n in blas_threads())
    finally:
        miniclip.set_backend(before)


def test_num_threads_from_environment():
    code = "import miniclip; i = miniclip.build_info(); print(i['threads'], miniclip.get_num_threads())"
    for env_var in ("MINICLIP_NUM_THREADS", "OMP_NUM_THREADS"):
        env = {k: v for k, v in os.environ.items() if k not in ("MINICLIP_NUM_THREADS", "OMP_NUM_THREADS")}
        env[env_var] = "1"
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.split() == ["1", "1"]


def test_set_num_threads_round_trip():
    before = miniclip.get_num_threads()
    try:
        miniclip.set_num_threads(1)
        assert miniclip.get_num_threads() == 1 and miniclip.build_info()["threads"] == 1
    finally:
        miniclip.set_num_threads(before)
    with pytest.raises(ValueError, match="n >= 1"):
        compiled.set_num_threads(0)
