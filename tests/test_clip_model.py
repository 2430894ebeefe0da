"""The CLIP model: names and shapes of the original, its gradients, the causal mask, EOT pooling,
input checks, initialization, build_model and .npz checkpoints."""

import numpy as np
import pytest
from clip_tiny import TINY, random_images, random_tokens, rel_err, tiny_clip

from miniclip import Tensor, gradcheck
from miniclip.loss import clip_loss, siglip_loss
from miniclip.model import CLIP, build_model, infer_config, load_npz, save_npz

BLOCK_KEYS = [  # one ResidualAttentionBlock of clip/model.py, in its state_dict order
    ("attn.in_proj_weight", lambda w: (3 * w, w)), ("attn.in_proj_bias", lambda w: (3 * w,)),
    ("attn.out_proj.weight", lambda w: (w, w)), ("attn.out_proj.bias", lambda w: (w,)),
    ("ln_1.weight", lambda w: (w,)), ("ln_1.bias", lambda w: (w,)),
    ("mlp.c_fc.weight", lambda w: (4 * w, w)), ("mlp.c_fc.bias", lambda w: (4 * w,)),
    ("mlp.c_proj.weight", lambda w: (w, 4 * w)), ("mlp.c_proj.bias", lambda w: (w,)),
    ("ln_2.weight", lambda w: (w,)), ("ln_2.bias", lambda w: (w,)),
]


def original_keys(embed_dim, image_resolution, vision_layers, vision_width, vision_patch_size,
                  context_length, vocab_size, transformer_width, transformer_layers, **_):
    """The (key, shape) list of the original CLIP's state_dict() for a ViT configuration."""
    E, Wv, P, W = embed_dim, vision_width, vision_patch_size, transformer_width
    grid = image_resolution // P
    keys = [("positional_embedding", (context_length, W)), ("text_projection", (W, E)), ("logit_scale", ()),
            ("visual.class_embedding", (Wv,)), ("visual.positional_embedding", (grid * grid + 1, Wv)),
            ("visual.proj", (Wv, E)), ("visual.conv1.weight", (Wv, 3, P, P)),
            ("visual.ln_pre.weight", (Wv,)), ("visual.ln_pre.bias", (Wv,))]
    keys += [(f"visual.transformer.resblocks.{i}.{k}", s(Wv)) for i in range(vision_layers) for k, s in BLOCK_KEYS]
    keys += [("visual.ln_post.weight", (Wv,)), ("visual.ln_post.bias", (Wv,))]
    keys += [(f"transformer.resblocks.{i}.{k}", s(W)) for i in range(transformer_layers) for k, s in BLOCK_KEYS]
    keys += [("token_embedding.weight", (vocab_size, W)), ("ln_final.weight", (W,)), ("ln_final.bias", (W,))]
    return keys


def test_state_dict_keys_shapes_and_order_match_the_original():
    sd = tiny_clip().state_dict()
    assert [(k, v.shape) for k, v in sd.items()] == original_keys(**TINY)


def test_vit_b_32_has_302_keys():
    keys = original_keys(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768,
                         vision_patch_size=32, context_length=77, vocab_size=49408,
                         transformer_width=512, transformer_layers=12)
    assert len(keys) == 302  # the count of the released ViT-B/32 checkpoint (plus 3 non-parameter scalars)


def test_clip_loss_gradcheck_wrt_every_parameter():
    model = tiny_clip()
    rng = np.random.default_rng(0)
    images, tokens = random_images(rng, 4, 8), random_tokens(rng, 4, 8, 20)
    params = model.parameters()
    assert len(params) == len(original_keys(**TINY))
    err = gradcheck(lambda *_: clip_loss(*model(images, tokens)), *params, max_checks=8, name="clip_loss")
    assert err < 1e-6


def test_siglip_loss_gradcheck_including_the_bias():
    model = tiny_clip(init_logit_scale=np.log(10), init_logit_bias=-10.0, transformer_layers=1,
                      vision_layers=1)
    assert "logit_bias" in model.state_dict()
    rng = np.random.default_rng(1)
    images, tokens = random_images(rng, 3, 8), random_tokens(rng, 3, 8, 20)
    err = gradcheck(lambda *_: siglip_loss(*model(images, tokens)), *model.parameters(), max_checks=6,
                    name="siglip_loss")
    assert err < 1e-6


def test_losses_by_hand():
    logits = np.array([[2.0, 0.5, -1.0], [0.1, 1.5, 0.2], [-0.3, 0.0, 3.0]])
    log_softmax = lambda z: z - np.log(np.exp(z).sum(1, keepdims=True))  # noqa: E731
    expected = -(np.trace(log_softmax(logits)) + np.trace(log_softmax(logits.T))) / 6
    assert clip_loss(Tensor(logits), Tensor(logits.T)).item() == pytest.approx(expected, rel=1e-14)
    labels = 2 * np.eye(3) - 1
    expected = np.log1p(np.exp(-labels * logits)).sum() / 3
    assert siglip_loss(Tensor(logits)).item() == pytest.approx(expected, rel=1e-14)
    with pytest.raises(ValueError, match="square"):
        clip_loss(Tensor(np.zeros((2, 3))), Tensor(np.zeros((3, 2))))


def test_forward_returns_scaled_cosines():
    model = tiny_clip()
    rng = np.random.default_rng(2)
    images, tokens = random_images(rng, 3, 8), random_tokens(rng, 2, 8, 20)
    lpi, lpt = model(images, tokens)
    img, txt = model.encode_image(images).data, model.encode_text(tokens).data
    img, txt = img / np.linalg.norm(img, axis=1, keepdims=True), txt / np.linalg.norm(txt, axis=1, keepdims=True)
    np.testing.assert_allclose(lpi.data, np.exp(model.logit_scale.data) * img @ txt.T, rtol=1e-12)
    np.testing.assert_array_equal(lpt.data, lpi.data.T)
    assert lpi.shape == (3, 2) and model.logit_scale.item() == pytest.approx(np.log(1 / 0.07))


def test_causal_mask_later_tokens_never_change_earlier_positions():
    model = tiny_clip()
    rng = np.random.default_rng(3)
    tokens = rng.integers(0, 20, size=(2, 8))
    base = model.text_states(tokens).data
    for t in range(8):
        changed = tokens.copy()
        changed[:, t] = (changed[:, t] + 1 + rng.integers(0, 18)) % 20
        out = model.text_states(changed).data
        np.testing.assert_array_equal(out[:, :t], base[:, :t])        # earlier positions: bit-identical
        assert np.all(np.abs(out[:, t:t + 1] - base[:, t:t + 1]).max(axis=-1) > 1e-9)  # position t moves


def test_eot_pooling_reads_the_largest_id_position():
    model = tiny_clip()
    rng = np.random.default_rng(4)
    tokens = random_tokens(rng, 4, 8, 20)
    states = model.text_states(tokens).data
    eot = tokens.argmax(-1)
    expected = states[np.arange(4), eot] @ model.text_projection.data
    np.testing.assert_allclose(model.encode_text(tokens).data, expected, rtol=1e-12)
    # tokens after the end-of-text (padding) cannot change the features: the mask hides them
    padded = tokens.copy()
    for i, e in enumerate(eot):
        padded[i, e + 1:] = rng.integers(0, 19, size=8 - e - 1)
    np.testing.assert_array_equal(model.encode_text(padded).data, model.encode_text(tokens).data)


def test_input_errors_name_argument_expected_and_received():
    model = tiny_clip()
    images, tokens = np.zeros((2, 3, 8, 8)), random_tokens(np.random.default_rng(5), 2, 8, 20)
    with pytest.raises(ValueError, match=r"images of shape \(N, 3, 8, 8\), got shape \(2, 3, 9, 9\)"):
        model.encode_image(np.zeros((2, 3, 9, 9)))
    with pytest.raises(TypeError, match="images.*got dtype uint8"):
        model.encode_image(np.zeros((2, 3, 8, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"tokens of shape \(N, 8\).*got shape \(2, 77\)"):
        model.encode_text(np.zeros((2, 77), dtype=np.int64))
    with pytest.raises(TypeError, match="tokens as integer ids.*float64"):
        model.encode_text(tokens.astype(np.float64))
    bad = tokens.copy()
    bad[1, 0] = 20
    with pytest.raises(ValueError, match=r"\[0, 20\).*e\.g\. 20"):
        model(images, bad)
    with pytest.raises(ValueError, match="ModifiedResNet: .*resolution divisible by 32.*input_resolution 8"):
        CLIP(16, 8, (1, 1, 1, 1), 32, None, 8, 20, 32, 2, 2)


def test_inputs_may_be_tensors_or_arrays_of_another_float_dtype():
    model = tiny_clip(dtype=np.float32)
    rng = np.random.default_rng(6)
    images, tokens = random_images(rng, 2, 8), random_tokens(rng, 2, 8, 20)
    a = model.encode_image(images)                      # float64 array -> float32 model
    b = model.encode_image(Tensor(images.astype(np.float32)))
    assert a.dtype == np.float32 and isinstance(a, Tensor)
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(model.encode_text(Tensor(tokens)).data, model.encode_text(tokens).data)


def test_initialization_follows_the_original():
    cfg = dict(TINY, vision_width=128, transformer_width=128, transformer_layers=3, vision_heads=2)
    model = CLIP(**cfg, dtype=np.float64, seed=0)
    sd = model.state_dict()
    W, L, Wv = 128, 3, 128
    std = lambda k: sd[k].std()  # noqa: E731
    # text tower: initialize_parameters
    assert std("token_embedding.weight") == pytest.approx(0.02, rel=0.1)
    assert std("positional_embedding") == pytest.approx(0.01, rel=0.1)
    assert std("transformer.resblocks.1.attn.in_proj_weight") == pytest.approx(W ** -0.5, rel=0.05)
    assert std("transformer.resblocks.1.attn.out_proj.weight") == pytest.approx(W ** -0.5 * (2 * L) ** -0.5, rel=0.05)
    assert std("transformer.resblocks.1.mlp.c_fc.weight") == pytest.approx((2 * W) ** -0.5, rel=0.05)
    assert std("transformer.resblocks.2.mlp.c_proj.weight") == pytest.approx(W ** -0.5 * (2 * L) ** -0.5, rel=0.05)
    assert std("text_projection") == pytest.approx(W ** -0.5, rel=0.1)
    # vision tower: scale * randn and PyTorch's defaults
    for k in ("visual.positional_embedding", "visual.proj"):
        assert std(k) == pytest.approx(Wv ** -0.5, rel=0.15)
    bound = np.sqrt(6 / (4 * Wv))  # xavier-uniform of (3C, C)
    w = sd["visual.transformer.resblocks.0.attn.in_proj_weight"]
    assert np.abs(w).max() <= bound and w.std() == pytest.approx(bound / np.sqrt(3), rel=0.05)
    w = sd["visual.transformer.resblocks.0.mlp.c_proj.weight"]   # Linear default U(+-1/sqrt(fan_in))
    assert np.abs(w).max() <= (4 * Wv) ** -0.5 and w.std() == pytest.approx((4 * Wv) ** -0.5 / np.sqrt(3), rel=0.05)
    w = sd["visual.conv1.weight"]
    assert np.abs(w).max() <= (3 * 16) ** -0.5
    for prefix in ("visual.transformer", "transformer"):
        assert not sd[f"{prefix}.resblocks.0.attn.in_proj_bias"].any()
        assert not sd[f"{prefix}.resblocks.0.attn.out_proj.bias"].any()
        assert np.all(sd[f"{prefix}.resblocks.0.ln_1.weight"] == 1)
        b = sd[f"{prefix}.resblocks.0.mlp.c_fc.bias"]
        assert b.any() and np.abs(b).max() <= 128 ** -0.5
    assert sd["logit_scale"] == pytest.approx(np.log(1 / 0.07))
    # the same seed gives the same model; another seed another one
    np.testing.assert_array_equal(CLIP(**cfg, dtype=np.float64, seed=0).state_dict()["visual.proj"], sd["visual.proj"])
    assert not np.array_equal(CLIP(**cfg, dtype=np.float64, seed=1).state_dict()["visual.proj"], sd["visual.proj"])


SIZES = [
    dict(embed_dim=16, image_resolution=8, vision_layers=2, vision_width=32, vision_patch_size=4,
         context_length=8, vocab_size=20, transformer_width=32, transformer_layers=2),
    dict(embed_dim=24, image_resolution=12, vision_layers=1, vision_width=64, vision_patch_size=3,
         context_length=5, vocab_size=30, transformer_width=128, transformer_layers=3),
    dict(embed_dim=8, image_resolution=16, vision_layers=3, vision_width=16, vision_patch_size=8,
         context_length=6, vocab_size=11, transformer_width=16, transformer_layers=1),
]


@pytest.mark.parametrize("cfg", SIZES)
def test_build_model_infers_every_hyperparameter(cfg):
    heads_v, heads_t = max(1, cfg["vision_width"] // 64), max(1, cfg["transformer_width"] // 64)
    model = CLIP(**cfg, transformer_heads=heads_t, dtype=np.float64, seed=3)
    sd = model.state_dict()
    sd.update(input_resolution=np.array(cfg["image_resolution"]), context_length=np.array(cfg["context_length"]),
              vocab_size=np.array(cfg["vocab_size"]))  # as in a TorchScript archive
    assert infer_config(sd) == cfg
    built = build_model(sd)
    assert "input_resolution" in sd  # the caller's dict is left alone
    assert built.dtype == np.float64 and not built.training
    assert built.visual.transformer.heads == heads_v and built.transformer.heads == heads_t
    for (k, a), (_, b) in zip(built.state_dict().items(), model.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=k)
    rng = np.random.default_rng(0)
    images = random_images(rng, 2, cfg["image_resolution"])
    tokens = random_tokens(rng, 2, cfg["context_length"], cfg["vocab_size"])
    np.testing.assert_array_equal(built(images, tokens)[0].data, model(images, tokens)[0].data)


def test_build_model_heads_override_and_dtype():
    model = tiny_clip(dtype=np.float32)
    built = build_model(model.state_dict(), vision_heads=2, transformer_heads=4)
    assert built.dtype == np.float32 and built.visual.transformer.heads == 2 and built.transformer.heads == 4
    assert build_model(model.state_dict(), dtype=np.float64).dtype == np.float64
    half = {k: v.astype(np.float16) for k, v in model.state_dict().items()}  # like the released checkpoints
    assert build_model(half).dtype == np.float32


def test_build_model_refuses_broken_state_dicts():
    with pytest.raises(KeyError, match="neither 'visual.proj' .* nor 'visual.attnpool.positional_embedding'"):
        build_model({"visual.layer1.0.conv1.weight": np.zeros((64, 64, 1, 1)), "text_projection": np.zeros((4, 4))})
    with pytest.raises(KeyError, match="lacks visual.layer1.0.conv1.weight"):
        build_model({"visual.attnpool.positional_embedding": np.zeros((50, 2048)), "text_projection": np.zeros((4, 4))})
    sd = tiny_clip().state_dict()
    del sd["ln_final.weight"]
    with pytest.raises(KeyError, match="ln_final.weight"):
        build_model(sd)
    sd = tiny_clip().state_dict()
    sd["visual.transformer.resblocks.0.attn.in_proj_bias"] = np.zeros(5)
    with pytest.raises(ValueError, match=r"in_proj_bias.*\(5,\).*\(96,\)"):
        build_model(sd, vision_heads=2, transformer_heads=4)


def test_npz_round_trip(tmp_path):
    model = tiny_clip(seed=7)
    path = save_npz(model.state_dict(), tmp_path / "tiny.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.npz"]  # no temporary file left behind
    sd = load_npz(path)
    assert list(sd) == list(model.state_dict())
    built = build_model(sd, vision_heads=2, transformer_heads=4)
    rng = np.random.default_rng(1)
    images, tokens = random_images(rng, 2, 8), random_tokens(rng, 2, 8, 20)
    np.testing.assert_array_equal(built(images, tokens)[0].data, model(images, tokens)[0].data)
    assert rel_err(built.encode_text(tokens).data, model.encode_text(tokens).data) == 0
