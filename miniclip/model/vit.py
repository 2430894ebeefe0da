"""``VisionTransformer``: CLIP's image encoder (ViT, Dosovitskiy et al. 2021).

Shape legend: N images, R resolution, P patch size, g = R / P grid size,
L = g*g patches, W width, E output (embedding) dim.

    images (N, 3, R, R)
    -> patches (N, L, 3*P*P) -> @ conv1 -> (N, L, W)     patch embedding
    -> [class_embedding; patches] + positional_embedding  (N, 1 + L, W)
    -> ln_pre -> transformer -> ln_post of token 0 -> @ proj   (N, E)

The other image encoder of the original, the ModifiedResNet (RN50, RN101, ...), is in ``resnet.py``.
"""

import numpy as np

from .. import ops
from ..nn import LayerNorm, Module, Parameter, Transformer, init


class VisionTransformer(Module):
    """The original ``VisionTransformer(input_resolution, patch_size, width, layers, heads, output_dim)``.

    Init (the original keeps PyTorch's defaults here, except the three ``scale * randn``):
    ``conv1.weight`` U(+-1/sqrt(3*P*P)) (Conv2d default); ``class_embedding``,
    ``positional_embedding`` and ``proj`` ~ width^-0.5 * N(0, 1); the blocks and LayerNorms
    keep their PyTorch defaults (see ``miniclip.nn``).
    """

    def __init__(self, input_resolution, patch_size, width, layers, heads, output_dim,
                 dtype=np.float32, rng=None):
        super().__init__()
        if input_resolution % patch_size:
            raise ValueError(f"VisionTransformer: input_resolution ({input_resolution}) must be a "
                             f"multiple of patch_size ({patch_size})")
        rng = init.as_rng(rng)
        self.input_resolution, self.patch_size = input_resolution, patch_size
        self.width, self.output_dim = width, output_dim
        self.grid = input_resolution // patch_size
        # ``conv1`` is a module in the original (Conv2d without bias), hence the key
        # ``conv1.weight`` of shape (W, 3, P, P); a bias-free Module holding that one Parameter.
        self.conv1 = _PatchEmbedding(width, patch_size, dtype, rng)

        scale = width ** -0.5
        self.class_embedding = Parameter(init.normal(rng, (width,), scale, dtype))
        self.positional_embedding = Parameter(init.normal(rng, (self.grid ** 2 + 1, width), scale, dtype))
        self.ln_pre = LayerNorm(width, dtype=dtype)
        self.transformer = Transformer(width, layers, heads, causal=False, dtype=dtype, rng=rng)
        self.ln_post = LayerNorm(width, dtype=dtype)
        self.proj = Parameter(init.normal(rng, (width, output_dim), scale, dtype))

    def forward(self, x):
        x = self.conv1(x)                                                   # (N, L, W)
        N, L, W = x.shape
        cls = ops.reshape(self.class_embedding, (1, 1, W)) + np.zeros((N, 1, W), dtype=x.dtype)  # (N, 1, W)
        x = ops.concatenate([cls, x], axis=1)                               # (N, 1 + L, W): class token first
        x = x + self.positional_embedding                                   # (N, 1 + L, W) + (1 + L, W)
        x = self.ln_pre(x)
        x = self.transformer(x)                                             # (N, 1 + L, W)
        x = ops.reshape(ops.narrow(x, 1, 0, 1), (N, W))                     # (N, 1 + L, W) -> (N, W): the class token
        x = self.ln_post(x)
        return x @ self.proj                                                # (N, W) @ (W, E) -> (N, E)


class _PatchEmbedding(Module):
    """The original's ``conv1`` (Conv2d(3, W, kernel_size=P, stride=P, bias=False)) as one GEMM.

    With kernel = stride = P the convolution windows tile the image without
    overlap: output pixel (i, j) of channel w is the dot product of
    ``weight[w]`` (3, P, P) with the patch ``image[:, iP:(i+1)P, jP:(j+1)P]``.
    So cut the image into its L = g*g patches, flatten each in the weight's
    (c, kh, kw) order, and all outputs are one matrix product:
    (N, L, 3*P*P) @ (3*P*P, W). Output order is row-major over (i, j), the same as
    the original's ``reshape(N, W, g*g).permute(0, 2, 1)``.
    """

    def __init__(self, width, patch_size, dtype, rng):
        super().__init__()
        self.patch_size = patch_size
        fan_in = 3 * patch_size * patch_size
        self.weight = Parameter(init.fan_in_uniform(rng, (width, 3, patch_size, patch_size), fan_in, dtype))

    def forward(self, images):
        N, _, R, _ = images.shape
        P, W = self.patch_size, self.weight.shape[0]
        g = R // P
        x = ops.reshape(images, (N, 3, g, P, g, P))       # (N, 3, R, R) -> (N, c, i, kh, j, kw)
        x = ops.permute(x, (0, 2, 4, 1, 3, 5))            # -> (N, i, j, c, kh, kw)
        x = ops.reshape(x, (N * g * g, 3 * P * P))        # -> (N*L, 3*P*P), each patch in (c, kh, kw) order
        w = ops.reshape(self.weight, (W, 3 * P * P))      # (W, 3, P, P) -> (W, 3*P*P), the same order
        x = x @ w.T                                       # (N*L, 3*P*P) @ (3*P*P, W) -> (N*L, W)
        return ops.reshape(x, (N, g * g, W))              # (N*L, W) -> (N, L, W)
