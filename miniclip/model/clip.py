"""``CLIP``: an image encoder and a text encoder that map into one embedding space.

Shape legend: N images / captions, R image resolution, T context length (77 in
the released models), V vocabulary size, W text width, E embedding dim.

    image_features = visual(images)                      (N, 3, R, R) -> (N, E)
    text_features  = encode_text(tokens)                 (N, T) ids    -> (N, E)
    logits_per_image = exp(logit_scale) * normalize(image_features) @ normalize(text_features)^T
    logits_per_text  = logits_per_image^T

The text tower lives inside this class, as in the original ``clip/model.py``:
``token_embedding``, ``positional_embedding``, a causal ``transformer``,
``ln_final``, the features at the end-of-text token, ``text_projection``.
Attributes are created in the original's order, so ``state_dict()`` has the
original's keys, shapes and key order, and OpenAI checkpoints load unchanged
(see ``build_model``).
"""

import numpy as np

from .. import ops
from ..autograd.tensor import Tensor
from ..nn import Embedding, LayerNorm, Module, Parameter, Transformer, init
from .resnet import ModifiedResNet
from .vit import VisionTransformer


def image_tower(embed_dim, image_resolution, vision_layers, vision_width, vision_patch_size, vision_heads=None,
                dtype=np.float32, rng=None):
    """CLIP's image encoder: ``vision_layers`` an int builds a ``VisionTransformer`` of that depth, a
    tuple of four stage depths a ``ModifiedResNet``. ``vision_heads=None`` follows the original's
    rules (ResNet: ``vision_width * 32 // 64``, ViT: ``vision_width // 64``), at least 1 head."""
    if isinstance(vision_layers, (tuple, list)):
        heads = max(1, vision_width * 32 // 64) if vision_heads is None else vision_heads
        return ModifiedResNet(tuple(vision_layers), embed_dim, heads, image_resolution, vision_width,
                              dtype=dtype, rng=rng)
    heads = max(1, vision_width // 64) if vision_heads is None else vision_heads
    return VisionTransformer(image_resolution, vision_patch_size, vision_width, vision_layers, heads, embed_dim,
                             dtype=dtype, rng=rng)


class CLIP(Module):
    """The original constructor's arguments, plus:

    - ``vision_heads``: attention heads of the image encoder; default ``vision_width // 64``
      (at least 1), the original's rule, which gives 0 heads for small test models;
    - ``dtype``: float32 (default) or float64 for every parameter;
    - ``seed``: an int or a ``np.random.Generator`` for the initialization;
    - ``init_logit_scale``: log(1/0.07) as in the paper (SigLIP uses log(10));
    - ``init_logit_bias``: None (CLIP: no bias). A number, e.g. -10 for SigLIP, creates the
      learnable scalar ``logit_bias``, which is then added to both logit matrices
      (``logits = exp(logit_scale) * I T^T + logit_bias``; see ``miniclip.loss.siglip_loss``).
      Softmax is shift-invariant, so ``clip_loss`` ignores it.

    ``vision_layers`` an int builds a ``VisionTransformer`` of that depth; a tuple of four stage
    depths builds a ``ModifiedResNet`` (RN50 is (3, 4, 6, 3)), as in the original, which then
    ignores ``vision_patch_size`` and uses ``vision_width * 32 // 64`` attention-pooling heads.
    """

    def __init__(self, embed_dim, image_resolution, vision_layers, vision_width, vision_patch_size,
                 context_length, vocab_size, transformer_width, transformer_heads, transformer_layers,
                 vision_heads=None, dtype=np.float32, seed=0,
                 init_logit_scale=np.log(1 / 0.07), init_logit_bias=None):
        super().__init__()
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"CLIP: expected dtype float32 or float64, got {dtype}")
        rng = init.as_rng(seed)
        self.embed_dim, self.image_resolution = embed_dim, image_resolution
        self.context_length, self.vocab_size = context_length, vocab_size
        self._dtype = dtype

        # same order as the original's __init__: own parameters come out as positional_embedding,
        # text_projection, logit_scale, then visual.*, transformer.*, token_embedding.*, ln_final.*
        self.visual = image_tower(embed_dim, image_resolution, vision_layers, vision_width, vision_patch_size,
                                  vision_heads, dtype=dtype, rng=rng)
        self.transformer = Transformer(transformer_width, transformer_layers, transformer_heads,
                                       causal=True, dtype=dtype, rng=rng)
        self.token_embedding = Embedding(vocab_size, transformer_width, dtype=dtype, rng=rng)
        self.positional_embedding = Parameter(np.zeros((context_length, transformer_width), dtype=dtype))
        self.ln_final = LayerNorm(transformer_width, dtype=dtype)
        self.text_projection = Parameter(np.zeros((transformer_width, embed_dim), dtype=dtype))
        self.logit_scale = Parameter(np.asarray(init_logit_scale, dtype=dtype))  # shape (): a learnable log-temperature
        if init_logit_bias is not None:
            self.logit_bias = Parameter(np.asarray(init_logit_bias, dtype=dtype))
        else:
            self.logit_bias = None
        self.initialize_parameters(rng)

    def initialize_parameters(self, rng):
        """The original's ``initialize_parameters``: the text tower is re-drawn (and, for a ResNet,
        the attention pool's projections and every Bottleneck's last BN gain).

        token_embedding N(0, 0.02^2), positional_embedding N(0, 0.01^2); in every
        *text* block in_proj_weight std W^-0.5, out_proj.weight and c_proj.weight std
        W^-0.5 (2 layers)^-0.5 (the residual stream sums 2 layers of outputs), c_fc.weight
        std (2W)^-0.5; text_projection std W^-0.5. Biases and LayerNorms keep PyTorch's
        defaults (in_proj_bias and out_proj.bias 0, c_fc/c_proj biases U(+-1/sqrt(fan_in))),
        and so does the whole vision tower apart from its three ``scale * randn`` parameters.
        ResNet: the q, k, v and c_proj weights of ``attnpool`` get std C^-0.5 (C its input width),
        and every ``bn3.weight`` is zeroed, so that each residual branch starts at zero and each
        Bottleneck as the identity of its shortcut.
        """
        dt = self._dtype
        W, layers = self.transformer.width, self.transformer.layers
        self.token_embedding.weight.data[...] = init.normal(rng, self.token_embedding.weight.shape, 0.02, dt)
        self.positional_embedding.data[...] = init.normal(rng, self.positional_embedding.shape, 0.01, dt)
        if isinstance(self.visual, ModifiedResNet):
            pool = self.visual.attnpool
            std = pool.c_proj.in_features ** -0.5
            for proj in (pool.q_proj, pool.k_proj, pool.v_proj, pool.c_proj):
                proj.weight.data[...] = init.normal(rng, proj.weight.shape, std, dt)
            for layer in (self.visual.layer1, self.visual.layer2, self.visual.layer3, self.visual.layer4):
                for block in layer:
                    block.bn3.weight.data[...] = 0
        proj_std = W ** -0.5 * (2 * layers) ** -0.5
        attn_std = W ** -0.5
        fc_std = (2 * W) ** -0.5
        for block in self.transformer.resblocks:
            for p, std in ((block.attn.in_proj_weight, attn_std), (block.attn.out_proj.weight, proj_std),
                           (block.mlp.c_fc.weight, fc_std), (block.mlp.c_proj.weight, proj_std)):
                p.data[...] = init.normal(rng, p.shape, std, dt)
        self.text_projection.data[...] = init.normal(rng, self.text_projection.shape, W ** -0.5, dt)

    @property
    def dtype(self):
        return self._dtype

    # ------------------------------------------------------------------ encoders
    def encode_image(self, images):
        """(N, 3, R, R) float images -> (N, E) image features (not normalized)."""
        return self.visual(self._check_images(images))

    def encode_text(self, tokens):
        """(N, T) integer token ids -> (N, E) text features (not normalized).

        The features are read at each caption's end-of-text token, found as
        ``tokens.argmax(-1)``: end-of-text has the largest id in the vocabulary. With
        the causal mask that position has seen the whole caption and none of the padding.
        """
        tokens = self._check_tokens(tokens)
        x = self.text_states(tokens)                          # (N, T, W)
        eot = tokens.argmax(axis=-1)                          # (N,) the end-of-text position of each caption
        x = x[np.arange(x.shape[0]), eot]                     # (N, T, W) -> (N, W)
        return x @ self.text_projection                       # (N, W) @ (W, E) -> (N, E)

    def text_states(self, tokens):
        """The text transformer's output at every position, after ``ln_final``: (N, T, W).

        ``encode_text`` pools this at the end-of-text token; exposed for tests and readers
        (position t depends only on tokens 0..t).
        """
        tokens = self._check_tokens(tokens)
        x = self.token_embedding(tokens)                      # (N, T) -> (N, T, W)
        x = x + self.positional_embedding                     # (N, T, W) + (T, W)
        x = self.transformer(x)                               # causal blocks, (N, T, W)
        return self.ln_final(x)

    def forward(self, images, tokens):
        """(logits_per_image (N_img, N_txt), logits_per_text (N_txt, N_img)), as the original."""
        image_features = ops.normalize(self.encode_image(images), axis=-1)   # (N_img, E), unit rows
        text_features = ops.normalize(self.encode_text(tokens), axis=-1)     # (N_txt, E), unit rows
        logits_per_image = self.logit_scale.exp() * (image_features @ text_features.T)  # cosine * scale
        if self.logit_bias is not None:                                      # SigLIP's learnable bias
            logits_per_image = logits_per_image + self.logit_bias
        logits_per_text = logits_per_image.T
        return logits_per_image, logits_per_text

    # ---------------------------------------------------------------- validation
    def _check_images(self, images):
        R = self.image_resolution
        data = images.data if isinstance(images, Tensor) else np.asarray(images)
        if not np.issubdtype(data.dtype, np.floating):
            raise TypeError(f"CLIP: expected images as floating-point values (N, 3, {R}, {R}), got dtype "
                            f"{data.dtype}; convert and normalize them first (miniclip's preprocess)")
        if data.ndim != 4 or data.shape[1:] != (3, R, R):
            raise ValueError(f"CLIP: expected images of shape (N, 3, {R}, {R}), got shape {data.shape}")
        if isinstance(images, Tensor):
            return images if images.dtype == self.dtype else ops.astype(images, self.dtype)
        return Tensor(data.astype(self.dtype, copy=False))  # as the original's image.type(self.dtype)

    def _check_tokens(self, tokens):
        T, V = self.context_length, self.vocab_size
        data = tokens.data if isinstance(tokens, Tensor) else np.asarray(tokens)
        if not np.issubdtype(data.dtype, np.integer):
            raise TypeError(f"CLIP: expected tokens as integer ids of shape (N, {T}), got dtype {data.dtype}")
        if data.ndim != 2 or data.shape[1] != T:
            raise ValueError(f"CLIP: expected tokens of shape (N, {T}) (context_length {T}), "
                             f"got shape {data.shape}")
        if data.size and (data.min() < 0 or data.max() >= V):
            bad = data[(data < 0) | (data >= V)]
            raise ValueError(f"CLIP: token ids must lie in [0, {V}) (vocab_size {V}); got {bad.size} out of "
                             f"range, e.g. {int(bad[0])} (min {int(data.min())}, max {int(data.max())})")
        return data

    def extra_repr(self):
        return (f"embed_dim={self.embed_dim}, image_resolution={self.image_resolution}, "
                f"context_length={self.context_length}, vocab_size={self.vocab_size}, dtype={self.dtype}")
