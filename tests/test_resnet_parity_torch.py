"""PyTorch parity of the ResNet CLIPs: the original ModifiedResNet, written in PyTorch with openai/CLIP's
layout (``tests/torch_clip.py``), exports a state dict with perturbed parameters *and* perturbed BatchNorm
running statistics; ``build_model`` infers the configuration from the shapes and loads it. In training mode
(batch statistics) image embeddings, logits, loss, every parameter gradient and the updated running
statistics must agree to 1e-8 relative in float64; in eval mode (running statistics) the embeddings too,
and to 1e-4 in float32, both through the ops and inside ``no_grad()`` (where each convolution, its
BatchNorm, the residual and the ReLU run as one fused kernel).

The small configurations run in the fast suite; the full RN50 (224 px, the released hyperparameters)
is the ``rn50`` case. PyTorch is only an oracle here: skipped when it is not installed.
"""

import numpy as np
import pytest
from clip_tiny import random_images, random_tokens, rel_err

from miniclip import no_grad
from miniclip.loss import clip_loss
from miniclip.model import ModifiedResNet, build_model, infer_config

torch = pytest.importorskip("torch")
from torch_clip import TorchCLIP, torch_clip_loss  # noqa: E402  (needs torch: after importorskip)

TEXT = dict(context_length=7, vocab_size=23, transformer_width=32, transformer_heads=2, transformer_layers=1)
CONFIGS = {
    # every stage with a downsampling Bottleneck; 64 px, so attention pooling sees a 2x2 grid (+ the mean)
    "rn-tiny": dict(embed_dim=12, image_resolution=64, vision_layers=(1, 2, 1, 1), vision_width=4,
                    vision_patch_size=None, **TEXT),
    # deeper stages, grid 3x3, 8 pooling heads of 32 (width 8 -> 256 channels, 8 * 32 // 64 = 4 heads: default)
    "rn-odd": dict(embed_dim=20, image_resolution=96, vision_layers=(2, 1, 3, 2), vision_width=8,
                   vision_patch_size=None, **TEXT),
    # the released RN50 (text tower too) at 224 px
    "rn50": dict(embed_dim=1024, image_resolution=224, vision_layers=(3, 4, 6, 3), vision_width=64,
                 vision_patch_size=None, context_length=77, vocab_size=49408, transformer_width=512,
                 transformer_heads=8, transformer_layers=12),
}
FAST = ["rn-tiny", "rn-odd"]


def make_pair(name, dtype=torch.float64, seed=0, n=None):
    cfg = CONFIGS[name]
    n = n or (2 if name == "rn50" else 3)  # RN50 in float64 with its graph: ~3 GB for 2 images
    torch.manual_seed(seed)
    ref = TorchCLIP(**cfg, vision_heads=cfg["vision_width"] * 32 // 64).to(dtype)
    with torch.no_grad():  # away from the init: zero bn3 gains, unit BN gains, zero means, unit variances
        for p in ref.parameters():
            p.add_(0.1 * torch.randn_like(p))
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(7)
    sd = {k: v.detach().numpy().copy() for k, v in ref.state_dict().items()}
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    ours = build_model(sd, transformer_heads=cfg["transformer_heads"], dtype=np_dtype)
    rng = np.random.default_rng(seed)
    images = random_images(rng, n, cfg["image_resolution"], dtype=np_dtype)
    tokens = random_tokens(rng, n, cfg["context_length"], cfg["vocab_size"])
    return ref, ours, images, tokens


def test_build_model_infers_the_resnet_configuration():
    ref, ours, _, _ = make_pair("rn-odd")
    sd = {k: v.detach().numpy() for k, v in ref.state_dict().items()}
    config = infer_config(sd)
    assert config["vision_layers"] == (2, 1, 3, 2) and config["vision_width"] == 8
    assert config["image_resolution"] == 96 and config["vision_patch_size"] is None
    assert isinstance(ours.visual, ModifiedResNet)
    assert ours.visual.attnpool.num_heads == 4                         # 8 * 32 // 64, the original's rule
    assert list(ours.state_dict()) == list(ref.state_dict())           # same keys, same order, buffers included
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    for k, v in ref.state_dict().items():
        np.testing.assert_array_equal(ours.state_dict()[k], v.numpy(), err_msg=k)


def check_training_step(name):
    """Training mode, float64: embeddings, logits, loss, every gradient, the running statistics."""
    ref, ours, images, tokens = make_pair(name)
    ref.train()
    ours.train()
    timg, ttok = torch.from_numpy(images), torch.from_numpy(tokens)
    # one side's forward and backward, then the other's: one graph in memory at a time
    lpi, lpt = ours(images, tokens)
    loss = clip_loss(lpi, lpt)
    loss.backward()
    rlpi, rlpt = ref(timg, ttok)
    rloss = torch_clip_loss(rlpi, rlpt)
    rloss.backward()
    errors = {"logits_per_image": rel_err(lpi.data, rlpi.detach().numpy()),
              "logits_per_text": rel_err(lpt.data, rlpt.detach().numpy()),
              "loss": rel_err(loss.data, rloss.detach().numpy())}
    grads = dict(ref.named_parameters())
    # k_proj.bias adds q . b_k to every score of a head alike, which softmax ignores: its true gradient is
    # 0 and both sides hold rounding noise, so it is held to the scale of k_proj.weight's gradient instead
    zero = "visual.attnpool.k_proj.bias"
    scale = np.abs(grads["visual.attnpool.k_proj.weight"].grad.numpy()).max()
    errors["k_proj.bias gradient / k_proj.weight gradient"] = np.abs(dict(ours.named_parameters())[zero].grad).max() / scale
    worst = max((rel_err(p.grad, grads[n].grad.numpy()), n) for n, p in ours.named_parameters() if n != zero)
    errors[f"max over parameter gradients ({worst[1]})"] = worst[0]
    # both forwards ran once in training mode: the running statistics moved the same way
    state = ours.state_dict()
    errors["running statistics"] = max(rel_err(state[k], v.numpy()) for k, v in ref.state_dict().items()
                                       if "running_" in k)
    assert all(state[k] == 8 for k in state if k.endswith("num_batches_tracked"))
    # the embeddings, once more, in training mode (these forwards move the running statistics again)
    errors["encode_image (train)"] = rel_err(ours.encode_image(images).data, ref.encode_image(timg).detach().numpy())
    print(f"\n{name}: " + ", ".join(f"{k} {v:.2e}" for k, v in errors.items()))
    for k, v in errors.items():
        assert v <= 1e-8, f"{k}: relative error {v:.3g}"


def check_eval(name, dtype, tol):
    ref, ours, images, tokens = make_pair(name, dtype=dtype, seed=1)
    ref.eval()
    with torch.no_grad():
        expected = ref.encode_image(torch.from_numpy(images)).numpy()
        expected_logits = ref(torch.from_numpy(images), torch.from_numpy(tokens))[0].numpy()
    err = rel_err(ours.encode_image(images).data, expected)           # the ops, recording a graph
    err_logits = rel_err(ours(images, tokens)[0].data, expected_logits)
    with no_grad():                                                    # the fused path (nn/conv_bn.py)
        err_fused = rel_err(ours.encode_image(images).data, expected)
    print(f"\n{name} eval {dtype}: encode_image {err:.2e} (no_grad {err_fused:.2e}), logits {err_logits:.2e}")
    assert err <= tol and err_logits <= tol and err_fused <= tol


@pytest.mark.parametrize("name", FAST)
def test_resnet_training_step_matches_float64(name):
    check_training_step(name)


@pytest.mark.parametrize("name,dtype,tol", [("rn-tiny", torch.float64, 1e-8), ("rn-odd", torch.float32, 1e-4)])
def test_resnet_eval_matches(name, dtype, tol):
    check_eval(name, dtype, tol)


def test_rn50_training_step_matches_float64():
    check_training_step("rn50")


def test_rn50_eval_float32_matches():
    check_eval("rn50", torch.float32, 1e-4)
