"""The compiled naive GEMM (v1) against its NumPy reference on awkward shapes and layouts."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import miniclip
from miniclip.backend import compiled, reference

pytestmark = pytest.mark.skipif(compiled is None, reason="compiled extension not built")

sizes = st.sampled_from([1, 2, 3, 5, 7, 13, 17])


def operand(rng, shape, layout, dtype):
    """``shape`` in a layout: contiguous, transposed (stride swap) or strided (every other column)."""
    if layout == "transposed":
        return rng.standard_normal(shape[::-1]).astype(dtype).T
    if layout == "strided":
        return rng.standard_normal((shape[0], 2 * shape[1])).astype(dtype)[:, ::2]
    return rng.standard_normal(shape).astype(dtype)


@given(m=sizes, n=sizes, k=sizes, la=st.sampled_from(["contiguous", "transposed", "strided"]),
       lb=st.sampled_from(["contiguous", "transposed", "strided"]),
       dtype=st.sampled_from([np.float32, np.float64]), beta=st.sampled_from([0.0, 1.0, -0.5]),
       seed=st.integers(0, 1000))
def test_gemm_naive_matches_reference(m, n, k, la, lb, dtype, beta, seed):
    rng = np.random.default_rng(seed)
    A, B = operand(rng, (m, k), la, dtype), operand(rng, (k, n), lb, dtype)
    C0 = rng.standard_normal((m, n)).astype(dtype)
    ours = compiled.gemm_naive(A, B, C0.copy(), alpha=0.75, beta=beta)
    ref = reference.gemm_naive(A, B, C0.copy(), alpha=0.75, beta=beta)
    tol = 1e-12 if dtype == np.float64 else 1e-5 * max(k, 1)
    np.testing.assert_allclose(ours, ref, rtol=tol, atol=tol)


def test_gemm_naive_writes_a_non_contiguous_output():
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((3, 4)), rng.standard_normal((4, 5))
    C = np.zeros((5, 3)).T  # (3, 5), column-major
    compiled.gemm_naive(A, B, C)
    np.testing.assert_allclose(C, A @ B, rtol=1e-12)


def test_gemm_naive_beta_zero_ignores_nan_in_c():
    A, B = np.ones((2, 2)), np.ones((2, 2))
    C = np.full((2, 2), np.nan)
    compiled.gemm_naive(A, B, C, beta=0.0)
    np.testing.assert_array_equal(C, 2.0)


def test_gemm_naive_rejects_bad_input():
    with pytest.raises(ValueError, match="expected A"):
        compiled.gemm_naive(np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(TypeError, match="one dtype"):
        compiled.gemm_naive(np.ones((2, 2)), np.ones((2, 2), np.float32), np.ones((2, 2)))


def test_build_info_reports_the_extension():
    info = miniclip.build_info()
    assert info["compiled"] is True
    assert info["backend"] in ("compiled", "numpy")
    assert "-O3" in info["compile_flags"] and "fast-math" not in info["compile_flags"].replace("-fno-fast-math", "")
    assert info["threads"] >= 1 and isinstance(info["openmp"], bool)
    assert "name" in info["numpy_blas"]


def test_set_backend_switches_and_validates():
    from miniclip.backend import K
    before = miniclip.get_backend()
    try:
        miniclip.set_backend("numpy")
        assert K.gemm_naive is reference.gemm_naive
        miniclip.set_backend("compiled")
        assert K.gemm_naive is compiled.gemm_naive
        with pytest.raises(ValueError, match="expected one of"):
            miniclip.set_backend("cuda")
    finally:
        miniclip.set_backend(before)
