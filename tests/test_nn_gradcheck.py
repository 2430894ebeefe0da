"""Float64 finite-difference checks of every layer, with respect to its input and every parameter."""

import numpy as np
import pytest
from clip_tiny import random_images, random_tokens, tiny_clip

from miniclip import Tensor, gradcheck, nn
from miniclip.model import VisionTransformer

F64 = np.float64


def check(module, *inputs, max_checks=12, call=None):
    """gradcheck of ``call(*inputs)`` (default: ``module(*inputs)``) w.r.t. the inputs that require
    grad and every parameter of ``module``; returns the max normwise relative error."""
    call = call or module
    params = module.parameters()
    n = len(inputs)
    return gradcheck(lambda *args: call(*args[:n]), *inputs, *params, max_checks=max_checks,
                     name=type(module).__name__)


def x_of(shape, seed=0):
    return Tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


def test_linear():
    lin = nn.Linear(5, 3, dtype=F64, rng=1)
    assert check(lin, x_of((2, 4, 5)), max_checks=None) < 1e-7
    np.testing.assert_allclose(lin(np.ones((1, 5))).data, (lin.weight.data.sum(1) + lin.bias.data)[None])


def test_layernorm():
    ln = nn.LayerNorm(6, dtype=F64)
    ln.weight.data[...] = np.random.default_rng(3).standard_normal(6)
    ln.bias.data[...] = np.random.default_rng(4).standard_normal(6)
    assert check(ln, x_of((3, 2, 6)), max_checks=None) < 1e-7


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("heads", [1, 3])
def test_multihead_attention(causal, heads, fused):
    mha = nn.MultiheadAttention(12, heads, dtype=F64, rng=2)
    mha.fused = fused
    mha.in_proj_bias.data[...] = np.random.default_rng(5).standard_normal(36) * 0.1
    assert check(mha, x_of((2, 5, 12)), call=lambda x: mha(x, causal=causal), max_checks=20) < 1e-7


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 2e-6)])
@pytest.mark.parametrize("causal", [False, True])
def test_multihead_attention_fused_equals_plain(causal, dtype, tol):
    """The switch changes how attention is computed, not what: outputs and every gradient agree."""
    mha = nn.MultiheadAttention(12, 3, dtype=dtype, rng=2)
    x = Tensor(np.random.default_rng(9).standard_normal((2, 6, 12)).astype(dtype), requires_grad=True)
    dy = np.random.default_rng(10).standard_normal((2, 6, 12)).astype(dtype)
    results = []
    for fused in (True, False):
        mha.fused = fused
        mha.zero_grad()
        x.grad = None
        y = mha(x, causal=causal)
        y.backward(dy)
        results.append([y.data, x.grad] + [p.grad for p in mha.parameters()])
    for fused, plain in zip(*results):
        np.testing.assert_allclose(plain, fused, rtol=tol, atol=tol)


def test_mlp():
    assert check(nn.MLP(8, dtype=F64, rng=3), x_of((2, 3, 8))) < 1e-7


@pytest.mark.parametrize("causal", [False, True])
def test_residual_attention_block(causal):
    block = nn.ResidualAttentionBlock(8, 2, causal=causal, dtype=F64, rng=4)
    assert check(block, x_of((2, 4, 8))) < 1e-7


def test_residual_attention_block_adds_inside_the_last_gemms():
    """x = x + attn(ln_1(x)) and x = x + mlp(ln_2(x)) run as residual=x in out_proj and c_proj:
    no Add node, and the same values and gradients as with the adds as separate ops."""
    from miniclip import ops
    block = nn.ResidualAttentionBlock(8, 2, causal=True, dtype=F64, rng=4)
    x = x_of((2, 4, 8))
    y = block(x)
    assert y._op.__name__ == "Linear" and y._parents[0]._op.__name__ == "QuickGELU"
    h = ops.add(x, block.attn(block.ln_1(x), causal=True))          # ops.add: a separate Add
    plain = ops.add(h, block.mlp(block.ln_2(h)))
    np.testing.assert_allclose(y.data, plain.data, rtol=1e-14, atol=1e-14)


def test_transformer():
    assert check(nn.Transformer(8, 2, 2, causal=True, dtype=F64, rng=5), x_of((2, 4, 8)), max_checks=8) < 1e-7


def test_vision_transformer_including_the_image():
    vit = VisionTransformer(8, 4, 16, 2, 2, 6, dtype=F64, rng=6)
    images = Tensor(random_images(np.random.default_rng(7), 2, 8), requires_grad=True)
    assert check(vit, images, max_checks=10) < 1e-7


def test_text_encoder():
    model = tiny_clip()
    tokens = random_tokens(np.random.default_rng(8), 3, 8, 20)
    text_params = [p for n, p in model.named_parameters() if not n.startswith("visual.")]
    err = gradcheck(lambda *_: model.encode_text(tokens), *text_params, max_checks=8, name="encode_text")
    assert err < 1e-7
