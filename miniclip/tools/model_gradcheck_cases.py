"""Gradient-check cases for the layers and the whole model, for ``miniclip gradcheck``.

Each case checks a layer with respect to its input and every parameter (a
random sample of ``max_checks`` entries of each large parameter, so the table
stays fast); the last one is the full symmetric InfoNCE loss of a tiny CLIP
with respect to every parameter — the claim that the whole model's backward is right.
"""

import numpy as np

from .. import nn
from ..autograd import Tensor
from .gradcheck_suite import OP_CASES, Case
from ..loss import clip_loss
from ..model import CLIP, ModifiedResNet, VisionTransformer
from ..model.resnet import Bottleneck
from ..model.supervised import SupervisedClassifier
from ..ops import cross_entropy

F64 = np.float64
# 2 layers, width 32, 8x8 images in 4x4 patches, context 8, vocabulary 20
TINY = dict(embed_dim=16, image_resolution=8, vision_layers=2, vision_width=32, vision_patch_size=4,
            context_length=8, vocab_size=20, transformer_width=32, transformer_heads=4,
            transformer_layers=2, vision_heads=2)


class ModuleCase(Case):
    """A case whose inputs are the layer's input(s) followed by all its parameters."""

    def __init__(self, name, make_module, input_shapes, call=None, group="layer", max_checks=12):
        super().__init__(name, None, input_shapes, group=group)
        self.make_module, self.call = make_module, call
        self.max_checks = max_checks

    def inputs(self, rng):
        self.module = self.make_module()
        n = len(self.shapes)
        call = self.call or (lambda m, *xs: m(*xs))
        self.fn = lambda *args: call(self.module, *args[:n])
        xs = [Tensor(rng.standard_normal(s), requires_grad=True) for s in self.shapes]
        return xs + self.module.parameters()


def _resnet_with_statistics(seed=10):
    """A 32 px ModifiedResNet in eval mode with BN statistics and shifts away from their init.

    With the init's zero BN biases and zero running means, a channel that the ReLU zeroed stays
    exactly 0 through the next convolution and BN, and sits on the next ReLU's kink, where no
    finite difference agrees with any derivative. (Training mode's batch statistics over the 2 x 1
    x 1 values of the last stage are ill-conditioned in the same way; the Bottleneck and BN cases
    check training mode.)
    """
    net = ModifiedResNet((1, 1, 1, 1), output_dim=6, heads=2, input_resolution=32, width=4, dtype=F64, rng=seed)
    rng = np.random.default_rng(seed)
    for name, b in net.named_buffers():
        if name.endswith("running_mean"):
            b[...] = rng.normal(0, 0.3, b.shape)
        elif name.endswith("running_var"):
            b[...] = rng.uniform(0.5, 2.0, b.shape)
    for _, module in net.named_modules():
        if isinstance(module, nn.BatchNorm2d):
            module.bias.data[...] = rng.normal(0, 0.3, module.bias.shape)
    return net.eval()


def _tiny_tokens(rng, n=4):
    """Caption-like ids: tokens, then EOT (the largest id, 19), then zero padding."""
    tokens = np.zeros((n, TINY["context_length"]), dtype=np.int64)
    for i in range(n):
        length = 1 + i % (TINY["context_length"] - 1)
        tokens[i, :length] = rng.integers(1, 18, size=length)
        tokens[i, length] = TINY["vocab_size"] - 1
    return tokens


class ClipLossCase(Case):
    """clip_loss(model(images, tokens)) with respect to every parameter of a tiny CLIP."""

    def __init__(self):
        super().__init__("CLIP clip_loss", None, (), group="model")
        self.max_checks = 4

    def inputs(self, rng):
        model = CLIP(**TINY, dtype=F64, seed=int(rng.integers(1 << 31)))
        images = rng.standard_normal((4, 3, 8, 8))
        tokens = _tiny_tokens(rng)
        params = model.parameters()
        self.name = f"CLIP clip_loss ({len(params)} params)"
        self.fn = lambda *_: clip_loss(*model(images, tokens))
        return params


class SupervisedLossCase(Case):
    """cross_entropy(classifier(images), labels) with respect to every parameter of the supervised
    baseline (chapter 12): CLIP's image tower and a linear head."""

    def __init__(self):
        super().__init__("supervised baseline cross_entropy", None, (), group="model")
        self.max_checks = 4

    def inputs(self, rng):
        model = SupervisedClassifier(5, **TINY, dtype=F64, seed=int(rng.integers(1 << 31)))
        images, labels = rng.standard_normal((4, 3, 8, 8)), rng.integers(0, 5, 4)
        self.fn = lambda *_: cross_entropy(model(images), labels)
        return model.parameters()


CASES = [
    ModuleCase("Linear", lambda: nn.Linear(5, 3, dtype=F64, rng=1), ((2, 4, 5),)),
    ModuleCase("LayerNorm", lambda: nn.LayerNorm(6, dtype=F64), ((3, 6),)),
    ModuleCase("MultiheadAttention", lambda: nn.MultiheadAttention(12, 3, dtype=F64, rng=2), ((2, 5, 12),)),
    ModuleCase("MultiheadAttention (causal)", lambda: nn.MultiheadAttention(12, 3, dtype=F64, rng=2),
               ((2, 5, 12),), call=lambda m, x: m(x, causal=True)),
    ModuleCase("MLP", lambda: nn.MLP(8, dtype=F64, rng=3), ((2, 3, 8),)),
    ModuleCase("ResidualAttentionBlock", lambda: nn.ResidualAttentionBlock(8, 2, causal=True, dtype=F64, rng=4),
               ((2, 4, 8),)),
    ModuleCase("VisionTransformer", lambda: VisionTransformer(8, 4, 16, 2, 2, 6, dtype=F64, rng=6),
               ((2, 3, 8, 8),)),
    ModuleCase("Conv2d", lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1, dtype=F64, rng=7), ((2, 3, 5, 5),)),
    ModuleCase("BatchNorm2d (training)", lambda: nn.BatchNorm2d(4, dtype=F64), ((3, 4, 2, 3),)),
    ModuleCase("AttentionPool2d", lambda: nn.AttentionPool2d(2, 8, 2, 5, dtype=F64, rng=8), ((2, 8, 2, 2),)),
    ModuleCase("Bottleneck (stride 2)", lambda: Bottleneck(4, 2, 2, dtype=F64, rng=9), ((2, 4, 4, 4),)),
    ModuleCase("ModifiedResNet (eval)", lambda: _resnet_with_statistics(), ((1, 3, 32, 32),), max_checks=2),
    ClipLossCase(),
    SupervisedLossCase(),
]


def all_cases():
    """The table of ``miniclip gradcheck``: every op, then the layers and the whole model."""
    return list(OP_CASES) + list(CASES)
