"""Forward results against plain NumPy formulas, in float32 and float64."""

import numpy as np
import pytest

from miniclip import Tensor, ops

rng = np.random.default_rng(0)


def arr(*shape, dtype=np.float64, positive=False):
    a = rng.uniform(0.5, 2.0, shape) if positive else rng.standard_normal(shape)
    return a.astype(dtype)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_forward_matches_numpy(dtype, tol):
    x, y = arr(3, 4, dtype=dtype), arr(4, dtype=dtype)
    p = arr(3, 4, dtype=dtype, positive=True)
    X, Y, P = Tensor(x), Tensor(y), Tensor(p)
    close = lambda a, b: np.testing.assert_allclose(a.data, b, rtol=tol, atol=tol)  # noqa: E731
    close(X + Y, x + y)
    close(X - Y, x - y)
    close(X * Y, x * y)
    close(X / P, x / p)
    close(-X, -x)
    close(P ** 1.5, p ** 1.5)
    close(ops.exp(X), np.exp(x))
    close(ops.log(P), np.log(p))
    close(ops.sqrt(P), np.sqrt(p))
    close(ops.tanh(X), np.tanh(x))
    close(ops.sigmoid(X), 1 / (1 + np.exp(-x)))
    close(X @ X.T, x @ x.T)
    close(ops.sum(X, axis=0), x.sum(0))
    close(ops.mean(X, axis=(0, 1)), x.mean())
    close(ops.max(X, axis=1, keepdims=True), x.max(1, keepdims=True))
    e = np.exp(x - x.max(-1, keepdims=True))
    close(ops.softmax(X), e / e.sum(-1, keepdims=True))
    close(ops.log_softmax(X), np.log(e / e.sum(-1, keepdims=True)))
    close(ops.logsumexp(X), np.log(np.exp(x).sum(-1)))
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    close(ops.layer_norm(X, Y, Y * 0), (x - mu) / np.sqrt(var + 1e-5) * y)
    close(ops.gelu(X), 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))))
    close(ops.quick_gelu(X), x / (1 + np.exp(-1.702 * x)))
    close(ops.normalize(X), x / np.linalg.norm(x, axis=-1, keepdims=True))
    close(ops.embedding(np.array([2, 0]), X), x[[2, 0]])
    close(ops.gather(X, 1, np.array([[1], [0], [3]])), x[[0, 1, 2], [1, 0, 3]][:, None])
    ls = x - np.log(np.exp(x).sum(-1, keepdims=True))
    close(ops.cross_entropy(X, np.array([1, 0, 3])), -np.mean(ls[[0, 1, 2], [1, 0, 3]]))
    close(ops.concatenate([X, X], axis=0), np.concatenate([x, x]))
    close(ops.stack([X, X], axis=2), np.stack([x, x], axis=2))


def test_stable_forms_do_not_overflow():
    big = Tensor(np.array([[1000.0, 0.0, -1000.0]]))
    np.testing.assert_allclose(ops.softmax(big).data, [[1.0, 0.0, 0.0]], atol=1e-300)
    np.testing.assert_allclose(ops.logsumexp(big).data, [1000.0])
    np.testing.assert_allclose(ops.log_softmax(big).data, [[0.0, -1000.0, -2000.0]])
    np.testing.assert_allclose(ops.sigmoid(big).data, [[1.0, 0.5, 0.0]], atol=1e-300)
    assert np.isfinite(ops.quick_gelu(big).data).all()


def test_attention_matches_explicit_formula():
    q, k, v = (arr(2, 3, 5, 4) for _ in range(3))
    s = q @ k.swapaxes(-1, -2) / 2.0
    s = s + np.triu(np.full((5, 5), -np.inf), 1)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    out = ops.scaled_dot_product_attention(Tensor(q), Tensor(k), Tensor(v), causal=True)
    np.testing.assert_allclose(out.data, p @ v, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("call,message", [
    (lambda: ops.matmul(Tensor(np.ones((2, 3))), Tensor(np.ones((4, 2)))), "inner sizes differ"),
    (lambda: ops.matmul(Tensor(np.ones(3)), Tensor(np.ones((3, 2)))), "at least 2 dimensions"),
    (lambda: ops.reshape(Tensor(np.ones(6)), (4, 2)), r"cannot reshape a tensor of shape \(6,\)"),
    (lambda: ops.embedding(np.array([0, 7]), Tensor(np.ones((5, 2)))), r"ids must lie in \[0, 5\)"),
    (lambda: ops.cross_entropy(Tensor(np.ones((2, 3))), np.array([0, 3])), r"targets must lie in \[0, 3\)"),
    (lambda: ops.layer_norm(Tensor(np.ones((2, 3))), np.ones(4), np.ones(4)), "weight and bias of shape"),
    (lambda: ops.sum(Tensor(np.ones((2, 3))), axis=2), "axis 2 is out of range"),
    (lambda: ops.permute(Tensor(np.ones((2, 3))), (0, 0)), "expected a permutation"),
])
def test_bad_input_gets_a_clear_error(call, message):
    with pytest.raises((ValueError, IndexError, TypeError), match=message):
        call()
