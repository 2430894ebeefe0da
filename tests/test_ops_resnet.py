"""The ResNet ops (conv2d, batch_norm2d, avg_pool2d, relu) and layers (Conv2d, BatchNorm2d,
AttentionPool2d, Bottleneck, ModifiedResNet): forward against the definitions written as loops,
backward against float64 central differences on Hypothesis-drawn shapes, strides, paddings and
layouts (odd sizes, size 1, non-contiguous inputs), and the BatchNorm bookkeeping.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from miniclip import Tensor, nn, ops
from miniclip.autograd import gradcheck, no_grad
from miniclip.backend import reference
from miniclip.model.resnet import Bottleneck, ModifiedResNet
from strategies import tensors

RTOL, ATOL = 1e-6, 1e-8


def check(fn, *inputs, name, max_checks=None):
    err = gradcheck(fn, *inputs, rtol=RTOL, atol=ATOL, name=name, max_checks=max_checks)
    assert err < 1e-6, f"{name}: max relative error {err:.2e}"


def conv2d_loops(x, w, stride, padding):
    """The definition: y[n, o, i, j] = sum_{c, a, b} w[o, c, a, b] x_pad[n, c, i*s + a, j*s + b]."""
    N, C, H, W = x.shape
    O, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    Ho, Wo = (H + 2 * padding - kh) // stride + 1, (W + 2 * padding - kw) // stride + 1
    y = np.zeros((N, O, Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            window = xp[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]  # (N, C, kh, kw)
            y[:, :, i, j] = np.einsum("ncab,ocab->no", window, w)
    return y


conv_problems = st.fixed_dictionaries(dict(
    N=st.integers(1, 2), C=st.integers(1, 3), O=st.integers(1, 3), H=st.integers(1, 7), W=st.integers(1, 7),
    k=st.integers(1, 3), stride=st.integers(1, 3), padding=st.integers(0, 2)),
).filter(lambda p: p["H"] + 2 * p["padding"] >= p["k"] and p["W"] + 2 * p["padding"] >= p["k"])


# --------------------------------------------------------------------------------- conv2d
@given(data=st.data(), p=conv_problems)
def test_conv2d_matches_the_loops_and_its_gradient_checks(data, p):
    x = data.draw(tensors((p["N"], p["C"], p["H"], p["W"])))
    w = data.draw(tensors((p["O"], p["C"], p["k"], p["k"])))
    y = ops.conv2d(x, w, p["stride"], p["padding"])
    np.testing.assert_allclose(y.data, conv2d_loops(x.data, w.data, p["stride"], p["padding"]), rtol=1e-12, atol=1e-12)
    check(lambda a, b: ops.conv2d(a, b, p["stride"], p["padding"]), x, w, name="conv2d")


@given(data=st.data(), p=conv_problems)
def test_col2im_is_the_adjoint_of_im2col(data, p):
    """<im2col(x), c> = <x, col2im(c)> for every x and c: col2im is exactly im2col's transpose."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    shape = (p["N"], p["C"], p["H"], p["W"])
    x = rng.standard_normal(shape)
    cols = reference.im2col(x, p["k"], p["k"], p["stride"], p["padding"])
    c = rng.standard_normal(cols.shape)
    back = reference.col2im(c, shape, p["k"], p["k"], p["stride"], p["padding"])
    assert back.shape == shape
    np.testing.assert_allclose(np.vdot(cols, c), np.vdot(x, back), rtol=1e-12)
    # the merged layout (CK, N*L) holds the same columns, images side by side, and its col2im the same adjoint
    merged = reference.im2col(x, p["k"], p["k"], p["stride"], p["padding"], merged=True)
    np.testing.assert_array_equal(merged, np.concatenate(list(cols), axis=1))
    c_merged = np.concatenate(list(c), axis=1)
    np.testing.assert_array_equal(reference.col2im(c_merged, shape, p["k"], p["k"], p["stride"], p["padding"],
                                                   merged=True), back)


def test_conv2d_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"same C; got x \(1, 3, 4, 4\), weight \(2, 2, 3, 3\)"):
        ops.conv2d(np.zeros((1, 3, 4, 4)), np.zeros((2, 2, 3, 3)))
    with pytest.raises(ValueError, match="kernel is larger than the padded input 2x2"):
        ops.conv2d(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 3, 3)))
    with pytest.raises(ValueError, match="stride >= 1"):
        ops.conv2d(np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 1, 1)), stride=0)


# ----------------------------------------------------------------------------- batch norm
bn_shapes = st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(1, 4)).filter(
    lambda s: s[0] * s[2] * s[3] >= 2)  # training needs two values per channel


@pytest.mark.parametrize("training", [True, False])
@given(data=st.data(), shape=bn_shapes)
def test_batch_norm2d_gradient(training, data, shape):
    C = shape[1]
    x = data.draw(tensors(shape))
    weight, bias = data.draw(tensors((C,))), data.draw(tensors((C,)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    running_mean, running_var = rng.standard_normal(C), rng.uniform(0.5, 2.0, C)
    # fresh copies per call: gradcheck calls the function many times, and training moves the statistics
    check(lambda a, g, b: ops.batch_norm2d(a, g, b, running_mean.copy(), running_var.copy(), training),
          x, weight, bias, name=f"batch_norm2d (training={training})")


@given(data=st.data(), shape=bn_shapes)
def test_batch_norm2d_statistics(data, shape):
    x = data.draw(tensors(shape, requires_grad=False)).data
    C = shape[1]
    M = x.size // C
    rm, rv = np.full(C, 0.5), np.full(C, 2.0)
    y = ops.batch_norm2d(x, np.ones(C), np.zeros(C), rm, rv, training=True, momentum=0.25).data
    per_channel = x.transpose(1, 0, 2, 3).reshape(C, M)                   # (C, M)
    mu, var = per_channel.mean(1), per_channel.var(1)
    expected = (x - mu[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-5)
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(rm, 0.75 * 0.5 + 0.25 * mu, rtol=1e-12)
    np.testing.assert_allclose(rv, 0.75 * 2.0 + 0.25 * per_channel.var(1, ddof=1), rtol=1e-12)
    # eval: the running statistics, untouched
    before = rm.copy(), rv.copy()
    y = ops.batch_norm2d(x, np.ones(C), np.zeros(C), rm, rv, training=False).data
    np.testing.assert_allclose(y, (x - rm[None, :, None, None]) / np.sqrt(rv[None, :, None, None] + 1e-5))
    np.testing.assert_array_equal(rm, before[0])
    np.testing.assert_array_equal(rv, before[1])


def test_batch_norm2d_module_state_and_modes():
    bn = nn.BatchNorm2d(3, dtype=np.float64)
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert bn.state_dict()["num_batches_tracked"].dtype == np.int64
    x = np.random.default_rng(0).standard_normal((4, 3, 2, 2)) + 3.0
    bn(x)
    bn(x)
    assert bn.num_batches_tracked == 2 and np.all(bn.running_mean > 0.5)
    bn.eval()
    with no_grad():
        bn(x)
    assert bn.num_batches_tracked == 2
    other = nn.BatchNorm2d(3, dtype=np.float64)
    other.load_state_dict(bn.state_dict())
    for k, v in bn.state_dict().items():
        np.testing.assert_array_equal(other.state_dict()[k], v, err_msg=k)
    with pytest.raises(ValueError, match="more than one value per channel"):
        nn.BatchNorm2d(3, dtype=np.float64)(np.zeros((1, 3, 1, 1)))


# --------------------------------------------------------------------------- pool and relu
@given(data=st.data(), shape=st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 7), st.integers(1, 7)),
       k=st.integers(1, 3))
def test_avg_pool2d(data, shape, k):
    if shape[2] < k or shape[3] < k:
        k = 1
    x = data.draw(tensors(shape))
    N, C, H, W = shape
    y = ops.avg_pool2d(x, k).data
    expected = np.array([[[[x.data[n, c, i * k:(i + 1) * k, j * k:(j + 1) * k].mean() for j in range(W // k)]
                           for i in range(H // k)] for c in range(C)] for n in range(N)])
    np.testing.assert_allclose(y, expected.reshape(y.shape), rtol=1e-12)
    check(lambda a: ops.avg_pool2d(a, k), x, name="avg_pool2d")


@given(data=st.data(), shape=st.tuples(st.integers(1, 3), st.integers(1, 4)))
def test_relu(data, shape):
    x = data.draw(tensors(shape))
    np.testing.assert_array_equal(ops.relu(x).data, np.maximum(x.data, 0))
    check(ops.relu, x, name="relu")


# -------------------------------------------------------------------------------- layers
def module_check(module, *xs, name):
    """The layer's input and every parameter, 10 random entries of each (all of the small ones)."""
    n = len(xs)
    check(lambda *args: module(*args[:n]), *xs, *module.parameters(), name=name, max_checks=10)


@settings(max_examples=6)
@given(data=st.data(), grid=st.integers(1, 3), heads=st.sampled_from([1, 2, 4]), out=st.integers(1, 5))
def test_attention_pool2d_gradient(data, grid, heads, out):
    pool = nn.AttentionPool2d(grid, 8, heads, out, dtype=np.float64, rng=data.draw(st.integers(0, 99)))
    module_check(pool, data.draw(tensors((2, 8, grid, grid))), name="AttentionPool2d")


def test_attention_pool2d_is_attention_with_the_mean_as_query():
    """Written out with NumPy: one head of softmax(q k^T / sqrt(D)) v with q from the mean token."""
    rng = np.random.default_rng(1)
    pool = nn.AttentionPool2d(2, 6, 2, 5, dtype=np.float64, rng=3)
    x = rng.standard_normal((3, 6, 2, 2))
    tokens = x.reshape(3, 6, 4).transpose(0, 2, 1)                       # (N, L, C)
    tokens = np.concatenate([tokens.mean(1, keepdims=True), tokens], 1) + pool.positional_embedding.data
    lin = lambda m, t: t @ m.weight.data.T + m.bias.data  # noqa: E731
    q, k, v = lin(pool.q_proj, tokens[:, :1]), lin(pool.k_proj, tokens), lin(pool.v_proj, tokens)
    heads = []
    for h in range(2):
        s = q[:, :, 3 * h:3 * h + 3] @ k[:, :, 3 * h:3 * h + 3].transpose(0, 2, 1) / np.sqrt(3)   # (N, 1, 5)
        p = np.exp(s - s.max(-1, keepdims=True))
        heads.append((p / p.sum(-1, keepdims=True)) @ v[:, :, 3 * h:3 * h + 3])
    expected = lin(pool.c_proj, np.concatenate(heads, -1)[:, 0])
    np.testing.assert_allclose(pool(x).data, expected, rtol=1e-12)


@pytest.mark.parametrize("inplanes,planes,stride", [(4, 1, 1), (3, 2, 2), (8, 2, 1)])
def test_bottleneck_gradient(inplanes, planes, stride):
    block = Bottleneck(inplanes, planes, stride, dtype=np.float64, rng=5)
    assert (block.downsample is None) == (stride == 1 and inplanes == 4 * planes)
    x = Tensor(np.random.default_rng(2).standard_normal((2, inplanes, 4, 3)), requires_grad=True)
    module_check(block, x, name="Bottleneck")


def test_modified_resnet_names_and_shapes():
    net = ModifiedResNet((1, 2, 1, 1), output_dim=10, heads=2, input_resolution=64, width=4, dtype=np.float64)
    sd = net.state_dict()
    for key in ("conv1.weight", "bn1.running_var", "conv3.weight", "layer1.0.downsample.0.weight",
                "layer1.0.downsample.1.num_batches_tracked", "layer2.1.bn3.weight", "attnpool.positional_embedding",
                "attnpool.k_proj.weight", "attnpool.c_proj.bias"):
        assert key in sd, key
    assert "layer2.1.downsample.0.weight" not in sd                     # same shape in and out: identity
    assert sd["attnpool.positional_embedding"].shape == (2 * 2 + 1, 4 * 32)
    assert net(np.zeros((2, 3, 64, 64))).shape == (2, 10)


# ------------------------------------------------------------------- the released configurations
RELEASED = {  # name: (stage depths, width, resolution, embed_dim, text width), from the released files
    "RN50": ((3, 4, 6, 3), 64, 224, 1024, 512),
    "RN101": ((3, 4, 23, 3), 64, 224, 512, 512),
    "RN50x4": ((4, 6, 10, 6), 80, 288, 640, 640),
    "RN50x16": ((6, 8, 18, 8), 96, 384, 768, 768),
    "RN50x64": ((3, 15, 36, 10), 128, 448, 1024, 1024),
}


@pytest.mark.parametrize("name", list(RELEASED))
def test_infer_config_of_the_released_resnets(name):
    """The configuration read off key names and shapes alone (zero-stride arrays: no memory)."""
    from miniclip.model import infer_config
    layers, width, R, E, tw = RELEASED[name]
    fake = lambda *shape: np.broadcast_to(np.float16(0), shape)  # noqa: E731
    sd = {f"visual.layer{b + 1}.{i}.conv1.weight": fake(1, 1, 1, 1) for b, n in enumerate(layers) for i in range(n)}
    sd["visual.layer1.0.conv1.weight"] = fake(width, width, 1, 1)
    sd["visual.attnpool.positional_embedding"] = fake((R // 32) ** 2 + 1, width * 32)
    sd.update({f"transformer.resblocks.{i}.ln_1.weight": fake(tw) for i in range(12)})
    sd.update(text_projection=fake(tw, E), positional_embedding=fake(77, tw),
              **{"token_embedding.weight": fake(49408, tw), "ln_final.weight": fake(tw)})
    config = infer_config(sd)
    assert (config["vision_layers"], config["vision_width"], config["image_resolution"]) == (layers, width, R)
    assert (config["embed_dim"], config["transformer_width"], config["transformer_layers"]) == (E, tw, 12)
    assert config["vision_patch_size"] is None and config["context_length"] == 77
