"""The two ops the model layer added: ``narrow`` (split of packed q, k, v) and ``logsigmoid`` (SigLIP)."""

import numpy as np
import pytest

from miniclip import Tensor, gradcheck, ops


@pytest.mark.parametrize("shape, axis, start, length", [
    ((4, 9), 1, 3, 3), ((4, 9), -1, 0, 9), ((5, 2, 7), 0, 4, 1), ((1, 1), 0, 0, 1), ((3, 6, 2), 1, 2, 0),
])
def test_narrow_matches_slicing_and_gradchecks(shape, axis, start, length):
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal(shape), requires_grad=True)
    out = ops.narrow(x, axis, start, length)
    expected = np.take(x.data, np.arange(start, start + length), axis=axis)
    np.testing.assert_array_equal(out.data, expected)
    if length:
        assert gradcheck(lambda t: ops.narrow(t, axis, start, length), x) < 1e-8


def test_narrow_of_a_non_contiguous_input():
    rng = np.random.default_rng(1)
    base = Tensor(rng.standard_normal((6, 4)), requires_grad=True)
    assert gradcheck(lambda t: ops.narrow(t.T, 1, 1, 3), base) < 1e-8  # (4, 6) view, slice of columns


def test_narrow_rejects_out_of_range():
    x = Tensor(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="start \\+ length <= 5"):
        ops.narrow(x, 1, 3, 3)
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        ops.narrow(x, 2, 0, 1)


def test_logsigmoid_gradcheck():
    rng = np.random.default_rng(2)
    x = Tensor(rng.standard_normal((5, 7)) * 4, requires_grad=True)
    assert gradcheck(ops.logsigmoid, x) < 1e-7


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_logsigmoid_is_stable_at_extremes(dtype):
    x = np.array([-1000.0, -40.0, -1.0, 0.0, 1.0, 40.0, 1000.0], dtype=dtype)
    y = ops.logsigmoid(Tensor(x)).data
    assert y.dtype == dtype and np.all(np.isfinite(y))
    exact = -np.logaddexp(0.0, -x.astype(np.float64))
    np.testing.assert_allclose(y, exact, rtol=1e-6 if dtype == np.float32 else 1e-14)
    t = Tensor(x, requires_grad=True)
    ops.logsigmoid(t).sum().backward()
    np.testing.assert_allclose(t.grad, 1 / (1 + np.exp(np.clip(x.astype(np.float64), -700, 700))),
                               rtol=1e-6 if dtype == np.float32 else 1e-14, atol=1e-30)
