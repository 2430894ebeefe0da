"""PyTorch parity: the original architecture, written here in PyTorch with openai/CLIP's layout
(``nn.MultiheadAttention``, ``nn.LayerNorm``, QuickGELU, ``conv1`` as ``nn.Conv2d``, the text tower inside
CLIP, ``initialize_parameters``), exports a state dict; ``build_model`` loads it, and the two must
agree on embeddings, logits, loss and every parameter gradient (float64, relative error <= 1e-8).

PyTorch is only an oracle here: skipped when it is not installed.
"""

import warnings
from collections import OrderedDict

import numpy as np
import pytest
from clip_tiny import random_images, random_tokens, rel_err

from miniclip import Tensor
from miniclip.loss import clip_loss, siglip_loss
from miniclip.model import build_model, convert_checkpoint, load_npz

torch = pytest.importorskip("torch")
tnn = torch.nn
F = torch.nn.functional


# ----------------------------------------------------------- the original layout, in PyTorch
class QuickGELU(tnn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(tnn.Module):
    # The original's LayerNorm subclass computes in float32 (for fp16); in a float64 test that cast
    # would only lose digits, so the plain nn.LayerNorm (same parameters, same eps) is used.
    def __init__(self, d_model, n_head, attn_mask=None):
        super().__init__()
        self.attn = tnn.MultiheadAttention(d_model, n_head)
        self.ln_1 = tnn.LayerNorm(d_model)
        self.mlp = tnn.Sequential(OrderedDict([("c_fc", tnn.Linear(d_model, 4 * d_model)),
                                               ("gelu", QuickGELU()),
                                               ("c_proj", tnn.Linear(4 * d_model, d_model))]))
        self.ln_2 = tnn.LayerNorm(d_model)
        self.attn_mask = attn_mask

    def forward(self, x):  # x: (T, N, C), PyTorch's default layout, as the original
        mask = None if self.attn_mask is None else self.attn_mask.to(x.dtype)
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class TorchTransformer(tnn.Module):
    def __init__(self, width, layers, heads, attn_mask=None):
        super().__init__()
        self.width, self.layers = width, layers
        self.resblocks = tnn.Sequential(*[ResidualAttentionBlock(width, heads, attn_mask) for _ in range(layers)])

    def forward(self, x):
        return self.resblocks(x)


class TorchVisionTransformer(tnn.Module):
    def __init__(self, input_resolution, patch_size, width, layers, heads, output_dim):
        super().__init__()
        self.conv1 = tnn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        scale = width ** -0.5
        self.class_embedding = tnn.Parameter(scale * torch.randn(width))
        self.positional_embedding = tnn.Parameter(scale * torch.randn((input_resolution // patch_size) ** 2 + 1, width))
        self.ln_pre = tnn.LayerNorm(width)
        self.transformer = TorchTransformer(width, layers, heads)
        self.ln_post = tnn.LayerNorm(width)
        self.proj = tnn.Parameter(scale * torch.randn(width, output_dim))

    def forward(self, x):
        x = self.conv1(x)                                   # (N, W, g, g)
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)  # (N, g*g, W)
        cls = self.class_embedding + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding
        x = self.ln_pre(x)
        x = self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)  # NLD -> LND -> NLD
        return self.ln_post(x[:, 0, :]) @ self.proj


class TorchCLIP(tnn.Module):
    def __init__(self, embed_dim, image_resolution, vision_layers, vision_width, vision_patch_size,
                 context_length, vocab_size, transformer_width, transformer_heads, transformer_layers,
                 vision_heads):
        super().__init__()
        self.context_length = context_length
        self.visual = TorchVisionTransformer(image_resolution, vision_patch_size, vision_width,
                                             vision_layers, vision_heads, embed_dim)
        mask = torch.full((context_length, context_length), float("-inf")).triu(1)
        self.transformer = TorchTransformer(transformer_width, transformer_layers, transformer_heads, mask)
        self.token_embedding = tnn.Embedding(vocab_size, transformer_width)
        self.positional_embedding = tnn.Parameter(torch.empty(context_length, transformer_width))
        self.ln_final = tnn.LayerNorm(transformer_width)
        self.text_projection = tnn.Parameter(torch.empty(transformer_width, embed_dim))
        self.logit_scale = tnn.Parameter(torch.ones([]) * np.log(1 / 0.07))
        self.initialize_parameters()

    def initialize_parameters(self):  # the text tower only, as the original
        tnn.init.normal_(self.token_embedding.weight, std=0.02)
        tnn.init.normal_(self.positional_embedding, std=0.01)
        W, L = self.transformer.width, self.transformer.layers
        proj_std, attn_std, fc_std = W ** -0.5 * (2 * L) ** -0.5, W ** -0.5, (2 * W) ** -0.5
        for block in self.transformer.resblocks:
            tnn.init.normal_(block.attn.in_proj_weight, std=attn_std)
            tnn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            tnn.init.normal_(block.mlp.c_fc.weight, std=fc_std)
            tnn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
        tnn.init.normal_(self.text_projection, std=W ** -0.5)

    def encode_image(self, image):
        return self.visual(image)

    def encode_text(self, text):
        x = self.token_embedding(text) + self.positional_embedding
        x = self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
        x = self.ln_final(x)
        return x[torch.arange(x.shape[0]), text.argmax(dim=-1)] @ self.text_projection

    def forward(self, image, text):
        img = self.encode_image(image)
        txt = self.encode_text(text)
        img = img / img.norm(dim=-1, keepdim=True)
        txt = txt / txt.norm(dim=-1, keepdim=True)
        logits_per_image = self.logit_scale.exp() * img @ txt.t()
        return logits_per_image, logits_per_image.t()


def torch_clip_loss(lpi, lpt):
    labels = torch.arange(lpi.shape[0])
    return (F.cross_entropy(lpi, labels) + F.cross_entropy(lpt, labels)) / 2


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


def test_convert_without_torch_says_what_to_install(tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    with pytest.raises(ImportError, match="pip install torch"):
        convert_checkpoint(tmp_path / "model.pt", tmp_path / "model.npz")


def test_tensor_inputs_match_array_inputs():
    _, ours, images, tokens = make_pair("tiny-fresh", seed=3)
    np.testing.assert_array_equal(ours(Tensor(images), Tensor(tokens))[0].data, ours(images, tokens)[0].data)
