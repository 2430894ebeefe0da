"""Compiled GEMM (v1 naive, v2 tiled, v3 packed) and batched matmul against NumPy.

Shape legend: M, N, K GEMM sizes (C is M x N, the sum runs over K); nb batch.

GEMM v3 runs one of three micro-kernels (generic C, AVX2, AVX-512; each with its own tile and
cache blocks), so its tests run under each SIMD level this CPU has (``SIMDS``, forced with
``compiled.set_simd``), at 1 and 2 threads.

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

from simd_levels import forced, simd_levels  # noqa: E402  (needs _C: after importorskip)

# sizes around the micro-kernel tiles (6 x 16 and 6 x 8 generic / AVX2, 14 x 32 and 14 x 16
# AVX-512): 1, primes, non-multiples, one below and above a tile
SIZES = [1, 2, 3, 5, 6, 7, 8, 11, 13, 14, 15, 16, 17, 23, 29, 31, 32, 33, 37, 43, 48, 61]
DTYPES = [np.float32, np.float64]


SIMDS = simd_levels()


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
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**16))
@pytest.mark.parametrize("version, simd", [("v1", "auto"), ("v2", "auto")] + [("v3", s) for s in SIMDS])
def test_gemm_versions_match_numpy(version, simd, M, N, K, la, lb, lc, dtype, alpha, beta, threads, seed):
    """Every version (and v3 under every SIMD level) on small awkward shapes; beta = 1 accumulates."""
    rng = np.random.default_rng(seed)
    A, B = _operand(rng, M, K, dtype, la), _operand(rng, K, N, dtype, lb)
    C = _operand(rng, M, N, dtype, lc)
    C0 = C.copy()
    with forced(simd, threads):
        out = compiled.gemm(A, B, C, alpha, beta, version=version)
    assert out is C
    _check_gemm(C, A, B, C0, alpha, beta)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("simd", SIMDS)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("M, N, K", [
    (200, 70, 300),     # several MC row blocks (6 x 16 tile) and two KC slices
    (449, 37, 257),     # just past MC = 448 (AVX-512 float32) and KC = 256: row blocks and slices
    (227, 65, 513),     # past MC = 224 (AVX-512 float64), three KC slices
    (7, 300, 200),      # fewer rows than threads x MR: threads split the columns
    (27, 300, 200),     # 2 x 14 > 27 >= 2 x 6: AVX-512 splits the columns, AVX2 the rows
    (29, 300, 200),     # 29 >= 2 x 14: AVX-512 splits the rows, one block of 28 and one of 1
    (5, 4100, 3),       # N > NC (4080 and 4096): two column blocks
    (3, 4099, 5),       # one past NC = 4096 + 3
    (97, 101, 1),       # K = 1
    (130, 33, 129),     # everything an edge tile
    (64, 96, 1031),     # a long sum (the dW products: K = batch x tokens), prime
])
def test_gemm_v3_blocking_paths(M, N, K, threads, simd, dtype):
    rng = np.random.default_rng(M * N + K)
    with forced(simd, threads):
        assert _C.simd_name() == {"generic": "generic", "avx2": "avx2+fma", "avx512": "avx512"}[simd]
        for la, lb in [("contiguous", "contiguous"), ("transposed", "strided"), ("strided", "transposed")]:
            A, B = _operand(rng, M, K, dtype, la), _operand(rng, K, N, dtype, lb)
            C = rng.standard_normal((M, N)).astype(dtype)
            C0 = C.copy()
            compiled.gemm(A, B, C, 0.75, 0.5)
            _check_gemm(C, A, B, C0, 0.75, 0.5)
            C1 = _operand(rng, M, N, dtype, "transposed")             # a column-major C, beta = 0
            compiled.gemm(A, B, C1, 1.0, 0.0)
            _check_gemm(C1, A, B, C1, 1.0, 0.0)


def test_set_simd_levels():
    with pytest.raises(ValueError, match="set_simd: expected 'auto', 'generic', 'avx2' or 'avx512', got 'sse'"):
        compiled.set_simd("sse")
    for mode in ("avx2", "avx512"):
        if mode not in SIMDS:
            with pytest.raises(ValueError, match=f"expected a CPU with {mode}"):
                compiled.set_simd(mode)
            assert compiled.get_simd() == _C.simd_name()            # left at "auto"
    with forced("generic"):
        assert compiled.get_simd() == "generic"
    assert compiled.get_simd() == ("avx512" if "avx512" in SIMDS else "avx2+fma" if "avx2" in SIMDS
                                   else "generic")


@pytest.mark.parametrize("env, expected", [("MINICLIP_FORCE_GENERIC", "generic"), ("MINICLIP_FORCE_AVX2", "avx2")])
def test_simd_forced_from_environment(env, expected):
    code = "from miniclip.backend import compiled; print(compiled.get_simd())"
    clean = {k: v for k, v in os.environ.items() if k not in ("MINICLIP_FORCE_GENERIC", "MINICLIP_FORCE_AVX2")}
    out = subprocess.run([sys.executable, "-c", code], env={**clean, env: "1"}, capture_output=True, text=True,
                         check=True)
    want = {"generic": "generic", "avx2": "avx2+fma" if "avx2" in SIMDS else "generic"}[expected]
    assert out.stdout.strip() == want


@pytest.mark.parametrize("simd", SIMDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threads", [1, 2])
def test_measure_peak_gflops_is_a_rate(simd, dtype, threads):
    """The peak FMA loop returns a positive, finite GFLOP/s (its value is never asserted)."""
    with forced(simd):
        g = compiled.measure_peak_gflops(dtype, threads, seconds=0.002)
    assert np.isfinite(g) and g > 0
    with pytest.raises(TypeError, match="float32 or float64, got int64"):
        compiled.measure_peak_gflops(np.int64, 1)
    with pytest.raises(ValueError, match="threads >= 1, got 0"):
        compiled.measure_peak_gflops(dtype, 0)


@given(M=st.sampled_from(SIZES + [130, 300]), N=st.sampled_from(SIZES), K=st.sampled_from(SIZES + [300]),
       lx=LAYOUTS, lw=LAYOUTS, lr=LAYOUTS, bias=st.booleans(), residual=st.booleans(),
       threads=st.sampled_from([1, 2]), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16))
@pytest.mark.parametrize("simd", SIMDS)
def test_linear_epilogue_matches_reference(simd, M, N, K, lx, lw, lr, bias, residual, threads, dtype, seed):
    """K.linear: x W^T + b + r with the bias and residual added in GEMM v3's epilogue, on every
    path (tiny products, the unpacked direct path with moved-back edge tiles, packed blocks with
    two K slices (K = 300 > KC): the epilogue must come once, after the last slice), under every
    SIMD level."""
    rng = np.random.default_rng(seed)
    x, w = _operand(rng, M, K, dtype, lx), _operand(rng, N, K, dtype, lw)
    b = rng.standard_normal(2 * N).astype(dtype)[::1 + (lr == "strided")][:N] if bias else None  # strided too
    r = _operand(rng, M, N, dtype, lr) if residual else None
    with forced(simd, threads):
        y = compiled.linear(x, w, b, r)
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
@pytest.mark.parametrize("simd", SIMDS)
def test_matmul_matches_numpy(simd, shapes, dtype, transpose_b, permute_a, seed):
    rng = np.random.default_rng(seed)
    sa, sb = shapes
    a = rng.standard_normal(sa).astype(dtype)
    if permute_a and a.ndim == 4:         # a non-contiguous (B, H, T, D) view of (H, B, T, D) memory
        a = np.ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    if transpose_b:                        # b as the transposed view of a contiguous array
        b = np.swapaxes(rng.standard_normal(sb[:-2] + sb[-1:] + sb[-2:-1]).astype(dtype), -1, -2)
    else:
        b = rng.standard_normal(sb).astype(dtype)
    with forced(simd):
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
