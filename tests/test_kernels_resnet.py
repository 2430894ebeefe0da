"""The ResNet's kernels against their NumPy references: csrc/conv.c (conv2d with its epilogue,
im2col and col2im in both layouts, the convolution's backward on them), csrc/winograd.c (the 3x3
convolution by F(2x2, 3x3)), csrc/pool.c (avg_pool2d and its backward), csrc/batchnorm.c (BatchNorm2d's
statistics, affine map and backward), csrc/relu.c (ReLU's backward); and ``nn.conv_bn``'s fused
inference path against the plain ops.

Shape legend: N images, C input channels, H, W input size, O output channels, k the kernel,
s stride, p padding. Shapes are awkward on purpose: size 1, odd sizes, stride 2 and 3, padding
wider than the kernel's reach, 1x1 kernels with and without stride, channel counts that are not
multiples of the SIMD width, batch 1, non-contiguous inputs, and maps large enough that the
kernel cuts them into several blocks, some spanning two images (csrc/conv.c, conv_block).

Tolerances: normwise relative error <= 1e-12 in float64 and <= 1e-5 in float32; im2col and
col2im copy and add in the reference's order, so they agree to the bit.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from miniclip import Tensor, nn, no_grad, ops
from miniclip.backend import compiled, reference

pytest.importorskip("miniclip._C")

DTYPES = [np.float32, np.float64]
# (N, C, H, W, O, k, s, p)
PROBLEMS = [
    (1, 1, 1, 1, 1, 1, 1, 0),          # one pixel, one channel
    (2, 3, 7, 5, 4, 3, 2, 1),          # odd sizes, stride 2
    (1, 5, 9, 9, 7, 3, 1, 1),          # batch 1, "same" padding
    (3, 4, 6, 6, 5, 1, 1, 0),          # 1x1: x read in place
    (2, 3, 5, 7, 2, 1, 2, 0),          # 1x1 with stride: needs columns
    (1, 2, 3, 3, 3, 3, 1, 2),          # padding wider than the kernel's reach
    (2, 3, 1, 2, 4, 5, 1, 2),          # "same" padding (output = input size) with a kernel
    (1, 2, 2, 1, 3, 7, 1, 3),          # larger than the map
    (2, 3, 4, 4, 2, 5, 3, 2),          # stride 3, 5x5
    (1, 17, 1, 1, 3, 1, 1, 0),         # 1x1 map
    (3, 200, 7, 7, 13, 3, 1, 1),       # several blocks, some spanning two images
    (3, 700, 7, 7, 5, 1, 1, 0),        # 1x1 blocks spanning images
    (2, 300, 9, 9, 7, 1, 2, 0),
    (2, 3, 45, 37, 9, 3, 1, 1),        # a large map: blocks inside one image
    (2, 130, 7, 7, 9, 3, 1, 1),        # Winograd by default (C >= 128): odd map, tiles past the edge
    (1, 128, 2, 3, 3, 3, 1, 1),
    (3, 140, 14, 14, 20, 3, 1, 1),     # several blocks of Winograd tiles
]


def _methods(problem):
    """The compiled methods that apply: im2col always, Winograd for 3x3, stride 1, padding 1."""
    return ["im2col", "winograd"] if problem[5:] == (3, 1, 1) else ["im2col"]


def _err(ours, ref):
    assert ours.shape == ref.shape and ours.dtype == ref.dtype
    return np.max(np.abs(ours.astype(np.float64) - ref), initial=0) / max(np.max(np.abs(ref), initial=0), 1.0)


def _tol(dtype):
    return 1e-12 if dtype == np.float64 else 1e-5


def _inputs(rng, problem, dtype, contiguous=True):
    N, C, H, W, O, k, s, p = problem
    Ho, Wo = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    if not contiguous:  # the same values, every other element of a wider array
        wide = np.zeros((N, C, H, 2 * W), dtype)
        wide[..., ::2] = x
        x = wide[..., ::2]
    w = (rng.standard_normal((O, C, k, k)) / np.sqrt(C * k * k)).astype(dtype)
    scale, shift = rng.standard_normal(O).astype(dtype), rng.standard_normal(O).astype(dtype)
    res = rng.standard_normal((N, O, Ho, Wo)).astype(dtype)
    return x, w, s, p, scale, shift, res


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("problem", PROBLEMS)
def test_conv2d_matches_the_reference(problem, dtype):
    x, w, s, p, scale, shift, res = _inputs(np.random.default_rng(0), problem, dtype)
    for method in _methods(problem):
        for args in [(None, None, None, False), (scale, shift, None, True), (scale, shift, res, True),
                     (None, None, res, False), (scale, None, None, True), (None, shift, None, False)]:
            ours = compiled.conv2d(x, w, s, p, *args, method=method)
            ref = reference.conv2d(x, w, s, p, *args)
            assert _err(ours, ref) <= _tol(dtype), f"{problem} {method}, epilogue {[a is not None for a in args]}"


def test_winograd_only_for_3x3_stride_1_padding_1():
    x = np.zeros((1, 2, 5, 5), np.float32)
    with pytest.raises(ValueError, match="winograd needs a 3x3 kernel, stride 1, padding 1"):
        compiled.conv2d(x, np.zeros((3, 2, 3, 3), np.float32), 2, 1, method="winograd")
    for backend in (compiled, reference):
        with pytest.raises(ValueError, match="expected method 'auto', 'im2col' or 'winograd', got 'fft'"):
            backend.conv2d(x, np.zeros((3, 2, 3, 3), np.float32), 1, 1, method="fft")


@given(problem=st.sampled_from(PROBLEMS), dtype=st.sampled_from(DTYPES), threads=st.sampled_from([1, 2, 3]))
def test_conv2d_any_thread_count_and_layout(problem, dtype, threads):
    x, w, s, p, scale, shift, res = _inputs(np.random.default_rng(1), problem, dtype, contiguous=False)
    before = compiled.get_num_threads()
    compiled.set_num_threads(threads)
    try:
        ours = [compiled.conv2d(x, w, s, p, scale, shift, res, True, method=m) for m in _methods(problem)]
    finally:
        compiled.set_num_threads(before)
    for y in ours:
        assert _err(y, reference.conv2d(x, w, s, p, scale, shift, res, True)) <= _tol(dtype)


def test_conv2d_relu_keeps_nan():
    x = np.full((1, 1, 2, 2), np.nan, np.float32)
    assert np.isnan(compiled.conv2d(x, np.ones((1, 1, 1, 1), np.float32), 1, 0, relu=True)).all()
    y = compiled.conv2d(x, np.ones((1, 1, 3, 3), np.float32), 1, 1, relu=True, method="winograd")
    assert np.isnan(y).all()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("merged", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("problem", PROBLEMS)
def test_im2col_and_col2im_equal_the_reference_to_the_bit(problem, dtype, merged, threads):
    rng = np.random.default_rng(2)
    x, w, s, p, *_ = _inputs(rng, problem, dtype, contiguous=False)
    k = w.shape[2]
    before = compiled.get_num_threads()
    compiled.set_num_threads(threads)
    try:
        cols = compiled.im2col(x, k, k, s, p, merged=merged)
        np.testing.assert_array_equal(cols, reference.im2col(x, k, k, s, p, merged=merged))
        c = rng.standard_normal(cols.shape).astype(dtype)
        np.testing.assert_array_equal(compiled.col2im(c, x.shape, k, k, s, p, merged=merged),
                                      reference.col2im(c, x.shape, k, k, s, p, merged=merged))
    finally:
        compiled.set_num_threads(before)


# The backward's own: large enough (N*L*CK*O multiply-adds) that the threads share the blocks
# (csrc/conv.c, CONV_BACKWARD_MIN_PARALLEL), with a 7x7 kernel, odd batches, L = 1 and N = 1.
BACKWARD_PROBLEMS = PROBLEMS + [
    (5, 6, 11, 9, 24, 7, 2, 3),        # the original stem's 7x7, stride 2, padding 3, odd map
    (7, 10, 13, 13, 12, 3, 2, 0),      # 3x3, stride 2, no padding, odd batch
    (37, 96, 1, 1, 64, 1, 1, 0),       # L = 1 (the last stage at 32 px), odd batch
    (1, 8, 40, 33, 16, 3, 1, 1),       # one large image: one block, the GEMM's own threads
]
# Small maps (at most CONV_SMALL_L = 16 output positions: the backward's im2col_small and
# col2im_small, csrc/conv_impl.h), as the model's last stages have them, and two that are small
# but exceed the stack's bounds (padded plane, table of offsets) and so take the general copies.
SMALL_MAP_PROBLEMS = [
    (9, 128, 2, 3, 16, 3, 1, 1),       # 2 x 3: not every window covers the map; odd batch, many blocks
    (5, 64, 4, 4, 24, 3, 1, 1),        # the third stage's
    (3, 7, 5, 3, 6, 3, 2, 2),          # stride 2, padding 2 on an odd map: L = 12
    (2, 3, 40, 40, 3, 3, 16, 1),       # L = 9, but a padded plane of 42 x 42
    (2, 3, 14, 14, 4, 11, 1, 0),       # L = 16, but 11 x 11 x 16 offsets
]
# Every window covers the whole image (csrc/conv_impl.h, conv_backward_dense): a 2x2 map under a
# 3x3 kernel with padding 1 (the model's last stage, odd batch), a 1x1 map, stride 2, a 2x1 map;
# then a batch whose dx product (K = O*L = 512) is small enough that GEMM v3 would take another
# path at 1 thread than at 2 (its slices keep dx equal).
DENSE_PROBLEMS = [
    (9, 128, 2, 2, 16, 3, 1, 1),
    (5, 3, 1, 1, 4, 3, 1, 1),
    (3, 6, 3, 3, 4, 5, 2, 2),
    (2, 5, 2, 1, 7, 3, 1, 1),
    (4, 128, 2, 2, 128, 3, 1, 1),
]
BACKWARD_PROBLEMS = BACKWARD_PROBLEMS[:-4] + SMALL_MAP_PROBLEMS + DENSE_PROBLEMS + BACKWARD_PROBLEMS[-4:]


@pytest.mark.parametrize("images_per_block", [1, 2, None])       # None: CONV_BACKWARD_BLOCK_BYTES
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("problem", BACKWARD_PROBLEMS)
def test_conv2d_backward_matches_the_products_per_image(problem, dtype, threads, images_per_block, monkeypatch):
    """K.conv2d_backward (one GEMM over all images for dW, one for dcols; compiled: per block of
    images, blocks that need not divide N) against the formulas per image, in float64 NumPy:
    dW = sum_n dy[n] cols[n]^T, dx = col2im(W^T dy[n]); and through the op, Conv2d's backward."""
    rng = np.random.default_rng(3)
    x, w, s, p, *_ = _inputs(rng, problem, dtype, contiguous=False)
    N, O, k = x.shape[0], w.shape[0], w.shape[2]
    Ho, Wo = (x.shape[2] + 2 * p - k) // s + 1, (x.shape[3] + 2 * p - k) // s + 1
    if images_per_block is not None:      # the columns and dy of this many images
        block_bytes = images_per_block * (w[0].size + O) * Ho * Wo * x.itemsize
        monkeypatch.setattr(compiled, "CONV_BACKWARD_BLOCK_BYTES", block_bytes)
    dy = rng.standard_normal((N, O, Ho, Wo)).astype(dtype)
    cols = reference.im2col(x.astype(np.float64), k, k, s, p)                  # (N, CK, L)
    dy2 = dy.astype(np.float64).reshape(N, O, -1)                              # (N, O, L)
    dw = np.einsum("nol,nkl->ok", dy2, cols).reshape(w.shape)
    dx = reference.col2im(np.einsum("ok,nol->nkl", w.reshape(O, -1).astype(np.float64), dy2), x.shape, k, k, s, p)
    before = compiled.get_num_threads()
    compiled.set_num_threads(threads)
    try:
        xt, wt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
        ops.conv2d(xt, wt, s, p).backward(dy)
        results = [(xt.grad, wt.grad)] + [backend.conv2d_backward(x, w, dy, s, p) for backend in (compiled, reference)]
        only_dx, none = compiled.conv2d_backward(x, w, dy, s, p, needs_dw=False)
        none_, only_dw = compiled.conv2d_backward(x, w, dy, s, p, needs_dx=False)
        assert compiled.conv2d_backward(x, w, dy, s, p, needs_dx=False, needs_dw=False) == (None, None)
    finally:
        compiled.set_num_threads(before)
    assert none is None and none_ is None
    results.append((only_dx, only_dw))
    for ours_dx, ours_dw in results:
        assert _err(ours_dw, dw.astype(dtype)) <= _tol(dtype) and _err(ours_dx, dx.astype(dtype)) <= _tol(dtype), problem


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("problem", BACKWARD_PROBLEMS[-4:] + SMALL_MAP_PROBLEMS[:3] + DENSE_PROBLEMS)
def test_conv2d_backward_thread_counts_change_dw_by_rounding_only(problem, dtype):
    """The compiled backward's promise (csrc/conv_impl.h, conv2d_backward): the same result in
    every run for one thread count; between thread counts dx to the bit and dW up to rounding."""
    rng = np.random.default_rng(4)
    x, w, s, p, *_ = _inputs(rng, problem, dtype)
    N, O, k = x.shape[0], w.shape[0], w.shape[2]
    dy = rng.standard_normal((N, O, (x.shape[2] + 2 * p - k) // s + 1, (x.shape[3] + 2 * p - k) // s + 1))
    dy = dy.astype(dtype)
    before = compiled.get_num_threads()
    results = {}
    try:
        for threads in (1, 2, 3, 2):
            compiled.set_num_threads(threads)
            results.setdefault(threads, []).append(compiled.conv2d_backward(x, w, dy, s, p))
    finally:
        compiled.set_num_threads(before)
    for a, b in [(results[2][0], results[2][1])]:                             # two runs at 2 threads
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    dx1, dw1 = results[1][0]
    for threads in (2, 3):
        dx, dw = results[threads][0]
        np.testing.assert_array_equal(dx, dx1)
        assert _err(dw, dw1) <= _tol(dtype)


def test_conv2d_backward_of_nothing_is_zero():
    """No output channel (O = 0) or no image (N = 0): the gradients exist and are zero."""
    x, w = np.ones((2, 3, 4, 4), np.float32), np.ones((0, 3, 3, 3), np.float32)
    dx, dw = compiled.conv2d_backward(x, w, np.ones((2, 0, 2, 2), np.float32), 1, 0)
    np.testing.assert_array_equal(dx, np.zeros_like(x))
    assert dw.shape == w.shape
    x, w = np.ones((0, 3, 4, 4)), np.ones((5, 3, 3, 3))
    dx, dw = compiled.conv2d_backward(x, w, np.ones((0, 5, 2, 2)), 1, 0)
    assert dx.shape == x.shape
    np.testing.assert_array_equal(dw, np.zeros_like(w))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,k", [((1, 1, 1, 1), 1), ((2, 3, 7, 5), 2), ((1, 17, 9, 9), 3),
                                     ((2, 5, 8, 8), 2), ((3, 2, 5, 11), 4), ((1, 33, 14, 14), 7)])
def test_avg_pool2d_matches_the_reference(shape, k, dtype):
    x = np.random.default_rng(6).standard_normal(shape).astype(dtype)
    for layout in (x, x[:, ::-1], np.asfortranarray(x)):
        assert _err(compiled.avg_pool2d(layout, k), reference.avg_pool2d(layout, k)) <= _tol(dtype)
    Ho, Wo = shape[2] // k, shape[3] // k
    dy = np.random.default_rng(7).standard_normal((shape[0], shape[1], Ho, Wo)).astype(dtype)
    for layout in (dy, dy[:, ::-1], np.asfortranarray(dy)):     # the backward: each block's share, 0 past the edge
        ours = compiled.avg_pool2d_backward(layout, shape, k)
        np.testing.assert_array_equal(ours, reference.avg_pool2d_backward(layout, shape, k))   # the same divisions


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5, 2), (128, 16, 16, 16)])
def test_relu_backward_equals_the_reference_to_the_bit(shape, dtype, threads):
    """csrc/relu.c against np.where(y > 0, dy, 0): the same values, NaN, infinities and zeros included."""
    rng = np.random.default_rng(8)
    y = np.maximum(rng.standard_normal(shape), 0).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    flat_y, flat_dy = y.reshape(-1), dy.reshape(-1)
    flat_y[::5], flat_dy[::3] = np.nan, np.nan                       # NaN on both sides, some coinciding
    flat_dy[1::7], flat_y[2::11] = np.inf, -0.0
    before = compiled.get_num_threads()
    compiled.set_num_threads(threads)
    try:
        for a, b in ((y, dy), (y.T, dy.T), (y, dy[..., ::-1])):       # contiguous, transposed, reversed
            ours = compiled.relu_backward(a, b)
            ref = reference.relu_backward(a, b)
            assert ours.dtype == ref.dtype == dtype
            np.testing.assert_array_equal(ours, ref)
            np.testing.assert_array_equal(np.signbit(ours), np.signbit(ref))
    finally:
        compiled.set_num_threads(before)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
def test_avg_pool2d_backward_on_threads(dtype, threads):
    """A map large enough for the kernel to split its planes between threads, with dropped edges."""
    shape, k = (16, 9, 33, 35), 3
    dy = np.random.default_rng(9).standard_normal((16, 9, 11, 11)).astype(dtype)
    before = compiled.get_num_threads()
    compiled.set_num_threads(threads)
    try:
        ours = compiled.avg_pool2d_backward(dy, shape, k)
    finally:
        compiled.set_num_threads(before)
    np.testing.assert_array_equal(ours, reference.avg_pool2d_backward(dy, shape, k))


# ---------------------------------------------------------------------------- batch norm
BN_SHAPES = [(1, 1, 1, 2), (2, 3, 1, 1), (1, 5, 3, 7), (3, 4, 5, 5), (128, 3, 1, 1), (2, 17, 9, 11),
             (4, 70, 8, 8)]  # (N, C, H, W): one pixel per image, odd sizes, batch 1, rows shorter than 8


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", BN_SHAPES)
def test_batch_norm_kernels_match_the_reference(shape, dtype, threads):
    rng = np.random.default_rng(7)
    C = shape[1]
    x = (rng.standard_normal(shape) * 3 + 5).astype(dtype)        # an offset mean: the two-pass variance
    x = np.asfortranarray(x)                                       # non-contiguous: the kernels copy
    dy = rng.standard_normal(shape).astype(dtype)[:, :, ::-1]      # (reversed rows: another layout)
    weight, scale, shift = (rng.standard_normal(C).astype(dtype) for _ in range(3))
    before = compiled.get_num_threads()
    compiled.set_num_threads(threads)
    try:
        stats = compiled.batch_norm_stats(x)
        y = compiled.batch_norm_apply(x, scale, shift)
        mu, var = reference.batch_norm_stats(x)
        rstd = (1 / np.sqrt(var + 1e-5)).astype(dtype)
        grads = {t: compiled.batch_norm_backward(x, dy, mu, rstd, weight, t) for t in (True, False)}
    finally:
        compiled.set_num_threads(before)
    for ours, ref in zip(stats, (mu, var)):
        assert _err(ours, ref) <= _tol(dtype)
    assert _err(y, reference.batch_norm_apply(x, scale, shift)) <= _tol(dtype)
    for training, ours in grads.items():
        for a, b in zip(ours, reference.batch_norm_backward(x, dy, mu, rstd, weight, training)):
            assert _err(a, b) <= _tol(dtype), (training, a, b)


# ------------------------------------------------------------------------------ conv_bn
def _layers(C, O, k, stride, padding, dtype, rng):
    conv = nn.Conv2d(C, O, k, stride=stride, padding=padding, dtype=dtype, rng=rng)
    bn = nn.BatchNorm2d(O, dtype=dtype)
    bn.weight.data[:] = rng.standard_normal(O)
    bn.bias.data[:] = rng.standard_normal(O)
    bn.running_mean[:] = rng.standard_normal(O)
    bn.running_var[:] = rng.uniform(0.5, 2.0, O)
    return conv, bn


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("residual,relu", [(False, False), (False, True), (True, True)])
def test_conv_bn_fused_equals_the_ops(dtype, residual, relu):
    rng = np.random.default_rng(3)
    conv, bn = _layers(6, 5, 3, 1, 1, dtype, rng)
    bn.eval()
    x = rng.standard_normal((2, 6, 9, 7)).astype(dtype)
    res = Tensor(rng.standard_normal((2, 5, 9, 7)).astype(dtype)) if residual else None
    plain = bn(conv(x))
    if residual:
        plain = plain + res
    if relu:
        plain = ops.relu(plain)
    with no_grad():
        fused = nn.conv_bn(conv, bn, x, residual=res, relu=relu)
    assert not fused.requires_grad
    assert _err(fused.data, plain.data) <= _tol(dtype)


def test_conv_bn_keeps_the_graph_when_training_or_differentiating():
    rng = np.random.default_rng(4)
    conv, bn = _layers(3, 4, 1, 1, 0, np.float64, rng)
    x = Tensor(rng.standard_normal((2, 3, 4, 4)), requires_grad=True)
    y = nn.conv_bn(conv, bn, x, relu=True)                 # training mode: batch statistics
    assert y.requires_grad and bn.num_batches_tracked == 1
    bn.eval()
    y = nn.conv_bn(conv, bn, x, relu=True)                 # eval, but x wants a gradient
    assert y.requires_grad
    y.sum().backward()
    assert x.grad is not None and conv.weight.grad is not None


def test_conv_bn_rejects_bad_input_in_one_line():
    rng = np.random.default_rng(5)
    conv, bn = _layers(3, 4, 3, 1, 1, np.float32, rng)
    bn.eval()
    with no_grad():
        with pytest.raises(ValueError, match=r"same C; got x \(1, 2, 5, 5\), weight \(4, 3, 3, 3\)"):
            nn.conv_bn(conv, bn, np.zeros((1, 2, 5, 5), np.float32))
        with pytest.raises(TypeError, match="different dtypes"):
            nn.conv_bn(conv, bn, Tensor(np.zeros((1, 3, 5, 5))))
