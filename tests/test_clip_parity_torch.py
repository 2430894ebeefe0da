"""PyTorch parity: the original architecture, written here in PyTorch with openai/CLIP's layout
(``nn.MultiheadAttention``, ``nn.LayerNorm``, QuickGELU, ``conv1`` as ``nn.Conv2d``, the text tower inside
CLIP, ``initialize_parameters``), exports a state dict; ``build_model`` loads it, and the two must
agree on embeddings, logits, loss and every parameter gradient (float64, relative error <= 1e-8).

PyTorch is only an oracle here: skipped when it is not installed.
"""

import warnings

import numpy as np
import pytest
from clip_tiny import random_images, random_tokens, rel_err

from miniclip import Tensor
from miniclip.loss import clip_loss, siglip_loss
from miniclip.model import build_model, convert_checkpoint, load_npz

torch = pytest.importorskip("torch")
tnn, F = torch.nn, torch.nn.functional
from torch_clip import TorchCLIP, torch_clip_loss  # noqa: E402  (needs torch: after importorskip)


CONFIGS = {
    # (constructor arguments, perturb every parameter so that zero biases and unit gains are exercised)
    "tiny-fresh": (dict(embed_dim=16, image_resolution=8, vision_layers=2, vision_width=32, vision_patch_size=4,
                        context_length=8, vocab_size=20, transformer_width=32, transformer_heads=4,
                        transformer_layers=2, vision_heads=2), False),
    "odd-perturbed": (dict(embed_dim=12, image_resolution=12, vision_layers=1, vision_width=24, vision_patch_size=3,
                           context_length=7, vocab_size=23, transformer_width=48, transformer_heads=3,
                           transformer_layers=3, vision_heads=3), True),
    "width64-default-heads": (dict(embed_dim=32, image_resolution=16, vision_layers=2, vision_width=64,
                                   vision_patch_size=8, context_length=6, vocab_size=17, transformer_width=64,
                                   transformer_heads=1, transformer_layers=1, vision_heads=1), True),
}


def make_pair(name, dtype=torch.float64, seed=0):
    cfg, perturb = CONFIGS[name]
    torch.manual_seed(seed)
    ref = TorchCLIP(**cfg).to(dtype)
    if perturb:
        with torch.no_grad():
            for p in ref.parameters():
                p.add_(0.1 * torch.randn_like(p))
    sd = {k: v.detach().numpy().copy() for k, v in ref.state_dict().items()}
    heads = dict(vision_heads=cfg["vision_heads"], transformer_heads=cfg["transformer_heads"])
    if name == "width64-default-heads":
        heads = {}  # width // 64 = 1: the original's rule, inferred
    ours = build_model(sd, **heads, dtype=np.float64 if dtype == torch.float64 else np.float32)
    rng = np.random.default_rng(seed)
    images = random_images(rng, 5, cfg["image_resolution"], dtype=np.float64 if dtype == torch.float64 else np.float32)
    tokens = random_tokens(rng, 5, cfg["context_length"], cfg["vocab_size"])
    return ref, ours, images, tokens


@pytest.mark.parametrize("name", list(CONFIGS))
def test_parity_with_the_original_layout_float64(name):
    ref, ours, images, tokens = make_pair(name)
    assert list(ours.state_dict()) == list(ref.state_dict())  # same keys, same order
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]

    timg, ttok = torch.from_numpy(images), torch.from_numpy(tokens)
    errors = {
        "encode_image": rel_err(ours.encode_image(images).data, ref.encode_image(timg).detach().numpy()),
        "encode_text": rel_err(ours.encode_text(tokens).data, ref.encode_text(ttok).detach().numpy()),
    }
    lpi, lpt = ours(images, tokens)
    rlpi, rlpt = ref(timg, ttok)
    errors["logits_per_image"] = rel_err(lpi.data, rlpi.detach().numpy())
    errors["logits_per_text"] = rel_err(lpt.data, rlpt.detach().numpy())
    loss, rloss = clip_loss(lpi, lpt), torch_clip_loss(rlpi, rlpt)
    errors["loss"] = rel_err(loss.data, rloss.detach().numpy())

    loss.backward()
    rloss.backward()
    grads = dict(ref.named_parameters())
    worst_grad = 0.0
    for n, p in ours.named_parameters():
        err = rel_err(p.grad, grads[n].grad.numpy())
        assert err <= 1e-8, f"gradient of {n}: relative error {err:.3g}"
        worst_grad = max(worst_grad, err)
    errors["max over parameter gradients"] = worst_grad
    print(f"\n{name}: " + ", ".join(f"{k} {v:.2e}" for k, v in errors.items()))
    for k, v in errors.items():
        assert v <= 1e-8, f"{k}: relative error {v:.3g}"


def test_siglip_parity_with_a_learnable_bias():
    ref, _, images, tokens = make_pair("odd-perturbed", seed=4)
    ref.logit_bias = tnn.Parameter(torch.tensor(-10.0, dtype=torch.float64))
    with torch.no_grad():
        ref.logit_scale.fill_(np.log(10))
    sd = {k: v.detach().numpy().copy() for k, v in ref.state_dict().items()}
    ours = build_model(sd, vision_heads=3, transformer_heads=3)
    assert list(ours.state_dict()) == list(sd) and ours.logit_bias.item() == -10.0

    lpi, lpt = ours(images, tokens)
    loss = siglip_loss(lpi, lpt)
    rlpi, _ = ref(torch.from_numpy(images), torch.from_numpy(tokens))
    logits = rlpi + ref.logit_bias
    labels = 2 * torch.eye(logits.shape[0], dtype=logits.dtype) - 1
    rloss = -F.logsigmoid(labels * logits).sum() / logits.shape[0]
    assert rel_err(lpi.data, logits.detach().numpy()) <= 1e-8
    assert rel_err(loss.data, rloss.detach().numpy()) <= 1e-8
    loss.backward()
    rloss.backward()
    grads = dict(ref.named_parameters())
    for n, p in ours.named_parameters():
        assert rel_err(p.grad, grads[n].grad.numpy()) <= 1e-8, n


def test_parity_float32_is_close():
    ref, ours, images, tokens = make_pair("tiny-fresh", dtype=torch.float32, seed=1)
    assert ours.dtype == np.float32
    lpi, _ = ours(images, tokens)
    rlpi, _ = ref(torch.from_numpy(images), torch.from_numpy(tokens))
    assert rel_err(lpi.data, rlpi.detach().numpy()) < 1e-5


def test_convert_plain_state_dict_and_torchscript(tmp_path):
    ref, ours, images, tokens = make_pair("tiny-fresh", seed=2)
    torch.save(ref.state_dict(), tmp_path / "plain.pt")
    torch.save({"state_dict": {f"module.{k}": v for k, v in ref.state_dict().items()}}, tmp_path / "train.pt")
    with warnings.catch_warnings():  # torch deprecates tracing and warns about tracing MHA: not our concern
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(ref, (torch.from_numpy(images), torch.from_numpy(tokens)), check_trace=False)
        traced.save(str(tmp_path / "scripted.pt"))
    expected = ours(images, tokens)[0].data
    for name in ("plain", "train", "scripted"):
        out = convert_checkpoint(tmp_path / f"{name}.pt", tmp_path / f"{name}.npz")
        sd = load_npz(out)
        assert list(sd) == list(ref.state_dict()), name
        model = build_model(sd, vision_heads=2, transformer_heads=4)
        np.testing.assert_array_equal(model(images, tokens)[0].data, expected, err_msg=name)


def test_tensor_inputs_match_array_inputs():
    _, ours, images, tokens = make_pair("tiny-fresh", seed=3)
    np.testing.assert_array_equal(ours(Tensor(images), Tensor(tokens))[0].data, ours(images, tokens)[0].data)
