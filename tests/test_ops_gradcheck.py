"""Every op's backward against float64 central differences, on Hypothesis-drawn shapes.

Shapes include size-1 axes and broadcasting; inputs come contiguous, transposed or
strided (non-contiguous); inputs stay away from kinks (log/sqrt/pow/div positive,
max without ties). Tolerance: rtol 1e-6, atol 1e-8 per element (see gradcheck).
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from miniclip import Tensor, ops
from miniclip.autograd import gradcheck
from strategies import small_shapes, tensors

RTOL, ATOL = 1e-6, 1e-8

broadcast_pairs = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=3, max_side=4)


def check(fn, *inputs, name):
    err = gradcheck(fn, *inputs, rtol=RTOL, atol=ATOL, name=name)
    assert err < 1e-6, f"{name}: max relative error {err:.2e}"


# ----------------------------------------------------------------- elementwise binary
@pytest.mark.parametrize("name,fn,domain", [
    ("add", lambda a, b: a + b, "real"),
    ("sub", lambda a, b: a - b, "real"),
    ("mul", lambda a, b: a * b, "real"),
    ("div", lambda a, b: a / b, "positive"),
])
@given(data=st.data(), shapes=broadcast_pairs)
def test_binary_broadcasting(name, fn, domain, data, shapes):
    a = data.draw(tensors(shapes.input_shapes[0], domain))
    b = data.draw(tensors(shapes.input_shapes[1], domain))
    check(fn, a, b, name=name)


@pytest.mark.parametrize("name,fn,domain", [
    ("neg", lambda a: -a, "real"),
    ("pow", lambda a: a ** 3, "real"),
    ("pow (fractional)", lambda a: a ** -1.5, "positive"),
    ("exp", ops.exp, "real"),
    ("log", ops.log, "positive"),
    ("sqrt", ops.sqrt, "positive"),
    ("tanh", ops.tanh, "real"),
    ("sigmoid", ops.sigmoid, "real"),
    ("gelu", ops.gelu, "real"),
    ("quick_gelu", ops.quick_gelu, "real"),
    ("scalar operands", lambda a: 2.0 * a - 1.5 / (a * a + 1.0), "real"),
])
@given(data=st.data(), shape=small_shapes)
def test_unary(name, fn, domain, data, shape):
    check(fn, data.draw(tensors(shape, domain)), name=name)


# ------------------------------------------------------------------------- matmul
@given(data=st.data(), m=st.integers(1, 4), k=st.integers(1, 4), n=st.integers(1, 4),
       batch=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=3))
def test_matmul_batched_broadcast(data, m, k, n, batch):
    a = data.draw(tensors(batch.input_shapes[0] + (m, k)))
    b = data.draw(tensors(batch.input_shapes[1] + (k, n)))
    check(ops.matmul, a, b, name="matmul")


# --------------------------------------------------------------------- reductions
axes_for = lambda ndim: st.one_of(st.none(), st.integers(-ndim, ndim - 1),  # noqa: E731
                                  st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim,
                                           unique=True).map(tuple))


@pytest.mark.parametrize("name", ["sum", "mean", "max"])
@given(data=st.data(), shape=small_shapes, keepdims=st.booleans())
def test_reductions(name, data, shape, keepdims):
    axis = data.draw(axes_for(len(shape)))
    x = data.draw(tensors(shape, "distinct" if name == "max" else "real"))
    fn = getattr(ops, name)
    check(lambda t: fn(t, axis=axis, keepdims=keepdims), x, name=name)


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
@given(data=st.data(), shape=small_shapes)
def test_softmax_family(name, data, shape):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = data.draw(tensors(shape))
    fn = getattr(ops, name)
    check(lambda t: fn(t, axis=axis), x, name=name)


@given(data=st.data(), shape=small_shapes)
def test_logsumexp_keepdims(data, shape):
    x = data.draw(tensors(shape))
    check(lambda t: ops.logsumexp(t, axis=0, keepdims=True), x, name="logsumexp")


# ------------------------------------------------------------------- shape ops
@given(data=st.data(), shape=small_shapes)
def test_reshape_transpose_permute(data, shape):
    x = data.draw(tensors(shape))
    perm = tuple(data.draw(st.permutations(range(len(shape)))))
    check(lambda t: ops.reshape(t, (-1,)), x, name="reshape")
    check(lambda t: ops.permute(t, perm), x, name="permute")
    if len(shape) >= 2:
        check(lambda t: ops.transpose(t), x, name="transpose")


@given(data=st.data(), shape=hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=4))
def test_getitem(data, shape):
    x = data.draw(tensors(shape))
    rows = np.array(data.draw(st.lists(st.integers(0, shape[0] - 1), min_size=1, max_size=5)))
    check(lambda t: t[rows], x, name="getitem (integer array, repeats)")
    check(lambda t: t[:, ::-1][..., :1], x, name="getitem (slices)")
    cols = np.array(data.draw(st.lists(st.integers(0, shape[1] - 1), min_size=len(rows),
                                       max_size=len(rows))))
    check(lambda t: t[rows, cols], x, name="getitem (pairs: end-of-text pooling)")


@given(data=st.data(), shape=hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=4))
def test_gather(data, shape):
    x = data.draw(tensors(shape))
    axis = data.draw(st.integers(0, len(shape) - 1))
    index_shape = list(shape)
    index_shape[axis] = data.draw(st.integers(1, 4))
    seed = data.draw(st.integers(0, 1000))
    index = np.random.default_rng(seed).integers(0, shape[axis], size=index_shape)
    check(lambda t: ops.gather(t, axis, index), x, name="gather")


@given(data=st.data(), shape=small_shapes, n=st.integers(1, 3))
def test_concatenate_stack(data, shape, n):
    axis = data.draw(st.integers(0, len(shape) - 1))
    xs = [data.draw(tensors(shape)) for _ in range(n)]
    check(lambda *ts: ops.concatenate(ts, axis=axis), *xs, name="concatenate")
    check(lambda *ts: ops.stack(ts, axis=axis), *xs, name="stack")


# ------------------------------------------------------------- layers' building blocks
@given(data=st.data(), lead=hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=3),
       c=st.integers(2, 8))
def test_layer_norm(data, lead, c):
    x = data.draw(tensors(lead + (c,)))
    w = data.draw(tensors((c,)))
    b = data.draw(tensors((c,)))
    check(ops.layer_norm, x, w, b, name="layer_norm")


@given(data=st.data(), v=st.integers(1, 6), c=st.integers(1, 4),
       ids_shape=hnp.array_shapes(min_dims=1, max_dims=2, max_side=4))
def test_embedding(data, v, c, ids_shape):
    w = data.draw(tensors((v, c)))
    ids = np.random.default_rng(data.draw(st.integers(0, 99))).integers(0, v, size=ids_shape)
    check(lambda t: ops.embedding(ids, t), w, name="embedding")


@given(data=st.data(), r=st.integers(1, 5), c=st.integers(1, 6))
def test_cross_entropy(data, r, c):
    x = data.draw(tensors((r, c)))
    targets = np.random.default_rng(data.draw(st.integers(0, 99))).integers(0, c, size=r)
    check(lambda t: ops.cross_entropy(t, targets), x, name="cross_entropy")


@given(data=st.data(), shape=small_shapes)
def test_normalize(data, shape):
    x = data.draw(tensors(shape))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    check(lambda t: ops.normalize(t, axis=axis), x, name="normalize")


@given(data=st.data(), b=st.integers(1, 2), h=st.integers(1, 3), t=st.integers(1, 6),
       d=st.integers(1, 5), causal=st.booleans())
def test_attention(data, b, h, t, d, causal):
    q, k, v = (data.draw(tensors((b, h, t, d))) for _ in range(3))
    check(lambda q, k, v: ops.scaled_dot_product_attention(q, k, v, causal=causal), q, k, v,
          name="attention")


@given(data=st.data(), lead=hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=3),
       c_in=st.integers(1, 5), c_out=st.integers(1, 5), bias=st.booleans(), residual=st.booleans())
def test_linear(data, lead, c_in, c_out, bias, residual):
    x = data.draw(tensors(lead + (c_in,)))
    w = data.draw(tensors((c_out, c_in)))
    if bias and residual:
        check(lambda x, w, b, r: ops.linear(x, w, b, residual=r), x, w, data.draw(tensors((c_out,))),
              data.draw(tensors(lead + (c_out,))), name="linear (bias, residual)")
    elif residual:
        check(lambda x, w, r: ops.linear(x, w, residual=r), x, w, data.draw(tensors(lead + (c_out,))),
              name="linear (residual)")
    elif bias:
        check(ops.linear, x, w, data.draw(tensors((c_out,))), name="linear")
    else:
        check(lambda x, w: ops.linear(x, w), x, w, name="linear (no bias)")


def test_linear_residual_is_the_add():
    """linear(x, W, b, residual=r) equals r + linear(x, W, b), forward and every gradient."""
    rng = np.random.default_rng(5)
    x, w, b, r = (Tensor(rng.standard_normal(s), requires_grad=True) for s in ((2, 3, 4), (5, 4), (5,), (2, 3, 5)))
    g = rng.standard_normal((2, 3, 5))
    fused = ops.linear(x, w, b, residual=r)
    fused.backward(g)
    grads = [t.grad.copy() for t in (x, w, b, r)]
    for t in (x, w, b, r):
        t.grad = None
    plain = ops.add(r, ops.linear(x, w, b))  # ops.add: an Add node (r + ... would fuse, see below)
    plain.backward(g)
    np.testing.assert_allclose(fused.data, plain.data, rtol=1e-14, atol=1e-14)
    for t, g_fused in zip((x, w, b, r), grads):
        np.testing.assert_allclose(g_fused, t.grad, rtol=1e-14, atol=1e-14)
    with pytest.raises(ValueError, match="residual of the output's shape"):
        ops.linear(x, w, b, residual=Tensor(np.zeros((2, 3, 4))))


@given(data=st.data(), b=st.integers(1, 2), h=st.integers(1, 3), t=st.integers(1, 5),
       d=st.integers(1, 3), causal=st.booleans())
def test_qkv_attention(data, b, h, t, d, causal):
    qkv = data.draw(tensors((b, t, 3 * h * d)))
    check(lambda x: ops.qkv_attention(x, h, causal=causal), qkv, name="qkv_attention")


def test_plus_on_a_linear_output_is_the_fused_op():
    """r + linear(x, W, b) and linear(x, W, b) + r become linear(x, W, b, residual=r): one Linear node,
    no Add; any other first use evaluates the output alone, and it stays usable after a fusion."""
    from miniclip.autograd import no_grad
    from miniclip.ops.linear import Linear, LinearOutput
    rng = np.random.default_rng(6)
    x, w, b, r = (Tensor(rng.standard_normal(s), requires_grad=True) for s in ((2, 3, 4), (5, 4), (5,), (2, 3, 5)))
    expected = ops.add(r, ops.linear(x, w, b)).data
    for fused in (r + ops.linear(x, w, b), ops.linear(x, w, b) + r):
        assert fused._op is Linear and fused._parents[3] is r
        np.testing.assert_allclose(fused.data, expected, rtol=1e-14, atol=1e-14)
    y = ops.linear(x, w, b)
    assert isinstance(y, LinearOutput) and "data" not in vars(y)
    r + y                                       # fused; y itself is not evaluated
    assert "data" not in vars(y)
    np.testing.assert_array_equal(y.data, ops.linear(x, w, b).data)  # evaluated alone at its first use
    assert y._op is Linear and y._parents[3] is None and (r + y)._op.__name__ == "Add"  # an ordinary Tensor now
    row = Tensor(rng.standard_normal(5))        # broadcasting is not a residual: an ordinary add
    assert (row + ops.linear(x, w, b))._op.__name__ == "Add"
    with no_grad():
        made_without_grad = ops.linear(x, w, b)
    assert not made_without_grad.requires_grad  # recorded as when the layer ran, not when first used
    with pytest.raises(AttributeError, match="no_such_thing"):
        y.no_such_thing


def test_qkv_attention_plain_equals_the_fused_op():
    """The op-by-op attention and the fused kernel: the same values and gradients, float64 and float32."""
    B, T, H, D = 2, 7, 3, 4
    rng = np.random.default_rng(3)
    for dtype, tol in ((np.float64, 1e-12), (np.float32, 2e-6)):
        qkv = Tensor(rng.standard_normal((B, T, 3 * H * D)).astype(dtype), requires_grad=True)
        dy = rng.standard_normal((B, T, H * D)).astype(dtype)
        for causal in (False, True):
            results = []
            for attention in (ops.qkv_attention, ops.qkv_attention_plain):
                qkv.grad = None
                y = attention(qkv, H, causal=causal)
                y.backward(dy)
                assert y.dtype == qkv.grad.dtype == dtype
                results.append((y.data, qkv.grad))
            (y_fused, g_fused), (y_plain, g_plain) = results
            np.testing.assert_allclose(y_plain, y_fused, rtol=tol, atol=tol)
            np.testing.assert_allclose(g_plain, g_fused, rtol=tol, atol=tol)
    with pytest.raises(ValueError, match="qkv_attention_plain: expected num_heads"):
        ops.qkv_attention_plain(qkv, 5)


@given(data=st.data(), b=st.integers(1, 2), h=st.integers(1, 3), t=st.integers(1, 5),
       d=st.integers(1, 3), causal=st.booleans())
def test_qkv_attention_plain(data, b, h, t, d, causal):
    qkv = data.draw(tensors((b, t, 3 * h * d)))
    check(lambda x: ops.qkv_attention_plain(x, h, causal=causal), qkv, name="qkv_attention_plain")


def test_qkv_attention_matches_split_heads():
    """The fused op equals narrow -> reshape -> permute -> attention -> permute -> reshape."""
    from miniclip import Tensor
    B, T, H, D = 2, 5, 3, 4
    C = H * D
    rng = np.random.default_rng(0)
    qkv = Tensor(rng.standard_normal((B, T, 3 * C)), requires_grad=True)
    dy = rng.standard_normal((B, T, C))
    for causal in (False, True):
        fused = ops.qkv_attention(qkv, H, causal=causal)
        fused.backward(dy)
        g_fused, qkv.grad = qkv.grad, None
        q, k, v = (ops.permute(ops.reshape(ops.narrow(qkv, 2, i * C, C), (B, T, H, D)), (0, 2, 1, 3))
                   for i in range(3))                                  # (B, T, C) -> (B, H, T, D)
        out = ops.scaled_dot_product_attention(q, k, v, causal=causal)
        split = ops.reshape(ops.permute(out, (0, 2, 1, 3)), (B, T, C))  # (B, H, T, D) -> (B, T, C)
        split.backward(dy)
        np.testing.assert_allclose(fused.data, split.data, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(g_fused, qkv.grad, rtol=1e-12, atol=1e-12)
        qkv.grad = None


def test_astype_roundtrip():
    from miniclip import Tensor
    x = Tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True)
    # The float32 stage rounds the input to ~1e-7 relative, so a 1e-6 step would be lost in
    # rounding: the function is linear, so a large step (1e-2) is exact up to that rounding.
    gradcheck(lambda t: ops.astype(ops.astype(t, np.float32) * 2.0, np.float64), x,
              eps=1e-2, rtol=1e-5, atol=1e-6)


def test_every_op_has_a_gradcheck_case():
    """The command-line table covers every public op (so `miniclip gradcheck` proves them all)."""
    from miniclip.tools.gradcheck_suite import OP_CASES
    names = {c.name.split(" ")[0] for c in OP_CASES}
    missing = set(ops.__all__) - names - {"astype", "scaled_dot_product_attention"}
    assert not missing, f"ops without a gradcheck case: {sorted(missing)}"
