"""The engine itself: graph walking, accumulation, no_grad, repeated backward, dtypes."""

import numpy as np
import pytest

from miniclip import Function, GradcheckError, Tensor, gradcheck, no_grad, ops


def t(values, requires_grad=True, dtype=np.float64):
    return Tensor(np.asarray(values, dtype=dtype), requires_grad=requires_grad)


def test_diamond_graph_sums_both_paths():
    # y = x*x + x*3 uses x on two paths: dy/dx = 2x + 3
    x = t([1.0, -2.0, 0.5])
    y = (x * x + x * 3.0).sum()
    y.backward()
    np.testing.assert_allclose(x.grad, 2 * x.data + 3)


def test_tensor_used_twice_in_one_op():
    x = t([2.0, 3.0])
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, [4.0, 6.0])


def test_leaf_without_requires_grad_gets_no_grad():
    x = t([1.0, 2.0])
    c = t([5.0, 7.0], requires_grad=False)
    (x * c).sum().backward()
    assert c.grad is None
    np.testing.assert_allclose(x.grad, [5.0, 7.0])


def test_grad_accumulates_across_graphs_and_zero_grad_resets():
    x = t([1.0, 2.0])
    (x * 2.0).sum().backward()
    (x * 3.0).sum().backward()  # a second graph: gradients add up, as in PyTorch
    np.testing.assert_allclose(x.grad, [5.0, 5.0])
    x.zero_grad()
    assert x.grad is None
    (x * 4.0).sum().backward()
    np.testing.assert_allclose(x.grad, [4.0, 4.0])


def test_second_backward_through_same_graph_raises_unless_retained():
    x = t([1.0, 2.0])
    y = (x.exp()).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()

    x.zero_grad()
    y = (x.exp()).sum()
    y.backward(retain_graph=True)
    y.backward()  # allowed: accumulates a second copy
    np.testing.assert_allclose(x.grad, 2 * np.exp(x.data))


def test_no_grad_records_nothing():
    x = t([1.0, 2.0])
    with no_grad():
        y = x * 2.0
    assert not y.requires_grad and y.is_leaf
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()


def test_backward_needs_grad_for_non_scalar():
    x = t([1.0, 2.0])
    with pytest.raises(RuntimeError, match="one element"):
        (x * 2.0).backward()
    with pytest.raises(ValueError, match=r"expected grad of shape \(2,\)"):
        (x * 2.0).backward(np.ones(3))


def test_deep_graph_does_not_recurse():
    x = t([1.0])
    y = x
    for _ in range(5000):
        y = y + 1.0
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [1.0])


def test_intermediate_tensors_get_no_grad():
    x = t([1.0, 2.0])
    h = x * 2.0
    (h * h).sum().backward()
    assert h.grad is None and x.grad is not None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved_through_forward_and_backward(dtype):
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((3, 4)).astype(dtype), requires_grad=True)
    w = Tensor(rng.standard_normal((4, 5)).astype(dtype), requires_grad=True)
    g = Tensor(np.ones(5, dtype=dtype), requires_grad=True)
    y = ops.layer_norm(ops.gelu(x @ w) * 0.5 + 1, g, g * 0.0)
    y = ops.log_softmax(ops.normalize(y) ** 2, axis=-1).mean() + ops.cross_entropy(y, [0, 1, 2])
    assert y.dtype == dtype
    y.backward()
    assert x.grad.dtype == dtype and w.grad.dtype == dtype and g.grad.dtype == dtype


def test_mixing_dtypes_is_an_error():
    a = Tensor(np.ones(2, dtype=np.float32), requires_grad=True)
    b = Tensor(np.ones(2, dtype=np.float64))
    with pytest.raises(TypeError, match="float32, float64"):
        a + b
    with pytest.raises(TypeError, match="different dtypes"):
        ops.matmul(a.reshape(1, 2), np.ones((2, 1)))


def test_python_scalars_keep_the_tensor_dtype():
    a = Tensor(np.ones(2, dtype=np.float32), requires_grad=True)
    assert (a * 2.5 + 1).dtype == np.float32
    assert (1.0 / a).dtype == np.float32


def test_numpy_array_on_the_left_defers_to_tensor():
    a = Tensor(np.ones(2), requires_grad=True)
    out = np.array([2.0, 3.0]) * a
    assert isinstance(out, Tensor)
    out.sum().backward()
    np.testing.assert_allclose(a.grad, [2.0, 3.0])


def test_only_float_tensors_require_grad():
    with pytest.raises(TypeError, match="only floating"):
        Tensor(np.arange(3), requires_grad=True)
    with pytest.raises(TypeError, match="float32 or float64"):
        Tensor(np.ones(2, dtype=np.float16))


def test_custom_function_and_needs_input_grad():
    seen = {}

    class Scale(Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            seen["needs"] = ctx.needs_input_grad
            return a * b

        @staticmethod
        def backward(ctx, dout):
            a, b = ctx.saved_tensors
            return dout * b, dout * a

    x, c = t([1.0, 2.0]), t([3.0, 4.0], requires_grad=False)
    Scale.apply(x, c).sum().backward()
    assert seen["needs"] == (True, False)
    np.testing.assert_allclose(x.grad, [3.0, 4.0])


def test_a_wrong_backward_shape_is_reported_with_the_op_name():
    class Bad(Function):
        @staticmethod
        def forward(ctx, a):
            return a * 2

        @staticmethod
        def backward(ctx, dout):
            return dout.sum()

    x = t([1.0, 2.0])
    with pytest.raises(RuntimeError, match="Bad.backward returned a gradient of shape"):
        Bad.apply(x).sum().backward()


def test_gradcheck_catches_a_broken_backward_and_names_it():
    class BrokenExp(Function):
        @staticmethod
        def forward(ctx, a):
            ctx.save_for_backward(a)
            return np.exp(a)

        @staticmethod
        def backward(ctx, dout):
            (a,) = ctx.saved_tensors
            return dout * np.exp(a) * 1.001  # off by 0.1%

    x = t([0.3, -0.2, 1.1])
    with pytest.raises(GradcheckError, match=r"gradcheck\(broken_exp\) failed for argument 0 .* index \(\d,\)"):
        gradcheck(BrokenExp.apply, x, name="broken_exp")


def test_gradcheck_refuses_float32():
    x = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    with pytest.raises(TypeError, match="float64 only"):
        gradcheck(ops.exp, x)


def test_gradcheck_upstream_is_random_not_ones():
    # A backward that returns the gradient summed over a transposed layout passes with
    # .sum() (all-ones upstream) but not with a random upstream.
    class WrongTranspose(Function):
        @staticmethod
        def forward(ctx, a):
            return a.copy()

        @staticmethod
        def backward(ctx, dout):
            return dout.T.reshape(dout.shape)  # wrong unless dout is symmetric

    x = Tensor(np.random.default_rng(1).standard_normal((3, 3)), requires_grad=True)
    with pytest.raises(GradcheckError):
        gradcheck(WrongTranspose.apply, x)
    gradcheck(lambda a: WrongTranspose.apply(a).sum(), x)  # the .sum() check is fooled


def test_profiler_times_forward_and_backward_per_op():
    from miniclip.autograd.profiler import profile
    x = t(np.random.default_rng(0).standard_normal((4, 3)))
    with profile() as prof:
        ops.softmax(x @ x.T, axis=-1).sum().backward()
    assert prof.calls[("MatMul", "forward")] == 1 and prof.calls[("MatMul", "backward")] == 1
    assert prof.calls[("Softmax", "backward")] == 1
    assert "MatMul" in prof.table() and prof.wall >= prof.total() > 0
    from miniclip.autograd import profiler
    assert profiler.active is None  # switched off after the block


def test_profiler_installs_itself_only_while_active():
    """The engine has no profiler branch: profile() wraps every op's forward/backward and unwraps them."""
    from miniclip.autograd.profiler import profile
    from miniclip.ops.matmul import MatMul
    forward, backward = MatMul.__dict__["forward"], MatMul.__dict__["backward"]
    x = t(np.random.default_rng(0).standard_normal((3, 3)))
    with profile() as outer:
        with profile() as inner:
            (x @ x).sum().backward()
        (x @ x).sum().backward()
        (x @ x).sum().backward()
    assert inner.calls[("MatMul", "forward")] == 1 and outer.calls[("MatMul", "forward")] == 2
    assert outer.calls[("MatMul", "backward")] == 2
    assert MatMul.__dict__["forward"] is forward and MatMul.__dict__["backward"] is backward
