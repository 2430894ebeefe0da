"""The original CLIP architecture in PyTorch (openai/CLIP's ``clip/model.py`` layout).

An *outside oracle* only, for the parity tests and the training-step benchmark
(``benchmarks/bench_train.py``): ``nn.MultiheadAttention`` on (T, N, C), QuickGELU,
``conv1`` as ``nn.Conv2d``, the text tower inside CLIP, and the original's
``initialize_parameters``; the ModifiedResNet image encoder with ``nn.Conv2d``,
``nn.BatchNorm2d``, ``nn.AvgPool2d`` and ``F.multi_head_attention_forward``.
Importing this module needs torch.
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


class TorchBottleneck(tnn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = tnn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(planes)
        self.conv2 = tnn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = tnn.BatchNorm2d(planes)
        self.avgpool = tnn.AvgPool2d(stride) if stride > 1 else tnn.Identity()
        self.conv3 = tnn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = tnn.BatchNorm2d(planes * 4)
        self.downsample = None
        if stride > 1 or inplanes != planes * 4:
            self.downsample = tnn.Sequential(OrderedDict([("-1", tnn.AvgPool2d(stride)),
                                                          ("0", tnn.Conv2d(inplanes, planes * 4, 1, bias=False)),
                                                          ("1", tnn.BatchNorm2d(planes * 4))]))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(self.avgpool(out)))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class TorchAttentionPool2d(tnn.Module):
    def __init__(self, spacial_dim, embed_dim, num_heads, output_dim=None):
        super().__init__()
        self.positional_embedding = tnn.Parameter(torch.randn(spacial_dim ** 2 + 1, embed_dim) / embed_dim ** 0.5)
        self.k_proj = tnn.Linear(embed_dim, embed_dim)
        self.q_proj = tnn.Linear(embed_dim, embed_dim)
        self.v_proj = tnn.Linear(embed_dim, embed_dim)
        self.c_proj = tnn.Linear(embed_dim, output_dim or embed_dim)
        self.num_heads = num_heads

    def forward(self, x):
        x = x.flatten(start_dim=2).permute(2, 0, 1)                     # NCHW -> (HW)NC
        x = torch.cat([x.mean(dim=0, keepdim=True), x], dim=0)          # (HW+1)NC
        x = x + self.positional_embedding[:, None, :].to(x.dtype)
        x, _ = F.multi_head_attention_forward(
            query=x[:1], key=x, value=x, embed_dim_to_check=x.shape[-1], num_heads=self.num_heads,
            q_proj_weight=self.q_proj.weight, k_proj_weight=self.k_proj.weight, v_proj_weight=self.v_proj.weight,
            in_proj_weight=None, in_proj_bias=torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias]),
            bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0,
            out_proj_weight=self.c_proj.weight, out_proj_bias=self.c_proj.bias,
            use_separate_proj_weight=True, training=self.training, need_weights=False)
        return x.squeeze(0)


class TorchModifiedResNet(tnn.Module):
    def __init__(self, layers, output_dim, heads, input_resolution=224, width=64):
        super().__init__()
        self.conv1 = tnn.Conv2d(3, width // 2, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = tnn.BatchNorm2d(width // 2)
        self.conv2 = tnn.Conv2d(width // 2, width // 2, kernel_size=3, padding=1, bias=False)
        self.bn2 = tnn.BatchNorm2d(width // 2)
        self.conv3 = tnn.Conv2d(width // 2, width, kernel_size=3, padding=1, bias=False)
        self.bn3 = tnn.BatchNorm2d(width)
        self.avgpool = tnn.AvgPool2d(2)
        self._inplanes = width
        self.layer1 = self._make_layer(width, layers[0])
        self.layer2 = self._make_layer(width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(width * 8, layers[3], stride=2)
        self.attnpool = TorchAttentionPool2d(input_resolution // 32, width * 32, heads, output_dim)

    def _make_layer(self, planes, blocks, stride=1):
        layers = [TorchBottleneck(self._inplanes, planes, stride)]
        self._inplanes = planes * 4
        layers += [TorchBottleneck(self._inplanes, planes) for _ in range(1, blocks)]
        return tnn.Sequential(*layers)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = self.avgpool(F.relu(self.bn3(self.conv3(x))))
        return self.attnpool(self.layer4(self.layer3(self.layer2(self.layer1(x)))))


class TorchCLIP(tnn.Module):
    def __init__(self, embed_dim, image_resolution, vision_layers, vision_width, vision_patch_size,
                 context_length, vocab_size, transformer_width, transformer_heads, transformer_layers,
                 vision_heads):
        super().__init__()
        self.context_length = context_length
        if isinstance(vision_layers, (tuple, list)):
            self.visual = TorchModifiedResNet(vision_layers, embed_dim, vision_heads, image_resolution, vision_width)
        else:
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

    def initialize_parameters(self):  # the text tower (and the ResNet's attnpool and bn3), as the original
        tnn.init.normal_(self.token_embedding.weight, std=0.02)
        tnn.init.normal_(self.positional_embedding, std=0.01)
        if isinstance(self.visual, TorchModifiedResNet):
            pool = self.visual.attnpool
            for proj in (pool.q_proj, pool.k_proj, pool.v_proj, pool.c_proj):
                tnn.init.normal_(proj.weight, std=pool.c_proj.in_features ** -0.5)
            for stage in (self.visual.layer1, self.visual.layer2, self.visual.layer3, self.visual.layer4):
                for name, param in stage.named_parameters():
                    if name.endswith("bn3.weight"):
                        tnn.init.zeros_(param)
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


def torch_adamw(model, lr, betas, eps, weight_decay):
    """``torch.optim.AdamW`` with miniclip's parameter groups (``miniclip.training.optim.wants_weight_decay``):
    decay on weight matrices only, not on gains, biases, the temperature or the embeddings
    (``in_proj_weight`` is named as the weight it is)."""
    from miniclip.training.optim import wants_weight_decay
    named = list(model.named_parameters())
    decay = [wants_weight_decay(n.replace("in_proj_weight", "weight"), p) for n, p in named]
    return torch.optim.AdamW([{"params": [p for (_, p), d in zip(named, decay) if d], "weight_decay": weight_decay},
                              {"params": [p for (_, p), d in zip(named, decay) if not d], "weight_decay": 0.0}],
                             lr=lr, betas=betas, eps=eps)
