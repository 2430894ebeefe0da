"""``build_model``: a CLIP whose hyperparameters are read off a checkpoint's shapes.

Shape legend: W_v vision width, P patch size, g grid, W text width, E embedding dim.

As the original ``build_model``:
    vision width  = visual.conv1.weight.shape[0]       patch = visual.conv1.weight.shape[-1]
    vision layers = number of visual.*.attn.in_proj_weight keys
    grid          = round(sqrt(visual.positional_embedding rows - 1)), resolution = patch * grid
    embed_dim     = text_projection.shape[1]           context_length = positional_embedding rows
    vocab_size    = token_embedding.weight rows        text width = ln_final.weight.shape[0]
    text layers   = number of distinct transformer.resblocks.<i>
    logit_bias    = present only in SigLIP-trained models (``CLIP(init_logit_bias=...)``)
    heads         = width // 64 (pass vision_heads / transformer_heads for models narrower than 64)

A ModifiedResNet checkpoint (RN50, RN101, RN50x4, RN50x16, RN50x64) has no ``visual.proj``; then
    vision layers = (number of distinct visual.layer<k>.<i>, for k = 1..4)   RN50 (3, 4, 6, 3)
    vision width  = visual.layer1.0.conv1.weight.shape[0]                    RN50 64
    resolution    = 32 * round(sqrt(visual.attnpool.positional_embedding rows - 1))
    vision heads  = vision width * 32 // 64
"""

import numpy as np

from ..autograd.tensor import Tensor
from .clip import CLIP

# TorchScript archives carry these three scalars beside the weights; they are not parameters. Nor is
# the tokenizer a converted file may hold (``miniclip convert --vocab``).
NON_PARAMETER_KEYS = ("input_resolution", "context_length", "vocab_size", "tokenizer_merges")


def _as_array(value):
    """ndarray of a state-dict value (ndarray, miniclip Tensor, or torch tensor)."""
    if isinstance(value, Tensor):
        return value.data
    if hasattr(value, "detach"):  # a torch tensor; torch itself is never imported here
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def infer_config(state_dict):
    """The CLIP constructor's arguments that ``state_dict``'s shapes imply (heads excluded)."""
    sd = state_dict
    vit = "visual.proj" in sd
    if not vit and "visual.attnpool.positional_embedding" not in sd:
        raise KeyError("build_model: not a CLIP state dict: neither 'visual.proj' (a ViT) nor "
                       "'visual.attnpool.positional_embedding' (a ResNet) is present")
    vision_keys = (("visual.conv1.weight", "visual.positional_embedding") if vit else
                   ("visual.layer1.0.conv1.weight", "visual.attnpool.positional_embedding"))
    required = vision_keys + ("text_projection", "positional_embedding", "token_embedding.weight",
                              "ln_final.weight")
    missing = [k for k in required if k not in sd]
    if missing:
        raise KeyError(f"build_model: the state dict lacks {', '.join(missing)}")

    shape = {k: _as_array(sd[k]).shape for k in required}
    rows = shape[vision_keys[1]][0]
    grid_size = round((rows - 1) ** 0.5)
    if grid_size ** 2 + 1 != rows:
        raise ValueError(f"build_model: {vision_keys[1]} has {rows} rows; expected grid**2 + 1 "
                         f"(one per {'patch' if vit else 'position'} plus the {'class' if vit else 'mean'} token)")
    if vit:
        vision_width = shape["visual.conv1.weight"][0]
        vision_patch_size = shape["visual.conv1.weight"][-1]
        vision_layers = len([k for k in sd if k.startswith("visual.") and k.endswith(".attn.in_proj_weight")])
        image_resolution = vision_patch_size * grid_size
    else:  # ModifiedResNet: 32 is the total downsampling of stem and stages
        vision_width = shape["visual.layer1.0.conv1.weight"][0]
        vision_patch_size = None
        vision_layers = tuple(len({k.split(".")[2] for k in sd if k.startswith(f"visual.layer{b}.")})
                              for b in (1, 2, 3, 4))
        image_resolution = 32 * grid_size
    transformer_layers = len({k.split(".")[2] for k in sd if k.startswith("transformer.resblocks.")})
    extra = {"init_logit_bias": 0.0} if "logit_bias" in sd else {}  # a SigLIP-trained model (value loaded after)
    return dict(**extra,
        embed_dim=shape["text_projection"][1],
        image_resolution=image_resolution,
        vision_layers=vision_layers,
        vision_width=vision_width,
        vision_patch_size=vision_patch_size,
        context_length=shape["positional_embedding"][0],
        vocab_size=shape["token_embedding.weight"][0],
        transformer_width=shape["ln_final.weight"][0],
        transformer_layers=transformer_layers,
    )


def build_model(state_dict, vision_heads=None, transformer_heads=None, dtype=None):
    """A ``CLIP`` built to fit ``state_dict`` and loaded from it strictly, in eval mode.

    ``state_dict`` maps the original's keys to arrays (NumPy, miniclip or torch tensors);
    it is not modified. Heads default to width // 64 (at least 1), the original's rule.
    ``dtype`` defaults to float64 for a float64 checkpoint and float32 otherwise (the
    released checkpoints are float16, which miniclip computes in float32).
    """
    sd = {k: _as_array(v) for k, v in state_dict.items() if k not in NON_PARAMETER_KEYS}
    config = infer_config(sd)
    if dtype is None:
        dtype = np.float64 if sd["text_projection"].dtype == np.float64 else np.float32
    if transformer_heads is None:
        transformer_heads = max(1, config["transformer_width"] // 64)
    model = CLIP(**config, transformer_heads=transformer_heads, vision_heads=vision_heads, dtype=dtype)
    model.load_state_dict(sd, strict=True)
    return model.eval()
