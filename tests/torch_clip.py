"""The original CLIP architecture in PyTorch (openai/CLIP's ``clip/model.py`` layout).

An *outside oracle* only, for the parity tests and the training-step benchmark
(``benchmarks/bench_train.py``): ``nn.MultiheadAttention`` on (T, N, C), QuickGELU,
``conv1`` as ``nn.Conv2d``, the text tower inside CLIP, and the original's
``initialize_parameters``. Importing this module needs torch.
"""

from collections import OrderedDict

import numpy as np
import torch

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
