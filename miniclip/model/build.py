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
"""

import numpy as np

from ..autograd.tensor import Tensor
from .clip import CLIP

# TorchScript archives carry these three scalars beside the weights; they are not parameters.
NON_PARAMETER_KEYS = ("input_resolution", "context_length", "vocab_size")


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
    if "visual.proj" not in sd:
        if any(k.startswith("visual.layer1.") for k in sd):
            raise NotImplementedError(
                "build_model: this is a ModifiedResNet checkpoint (RN50, RN101, ...: it has visual.layer1.* "
                "and no visual.proj); miniclip implements only the ViT image encoder (ViT-B/32, ViT-B/16, ...)")
        raise KeyError("build_model: not a CLIP ViT state dict: the key 'visual.proj' is missing")
    required = ("visual.conv1.weight", "visual.positional_embedding", "text_projection",
                "positional_embedding", "token_embedding.weight", "ln_final.weight")
    missing = [k for k in required if k not in sd]
    if missing:
        raise KeyError(f"build_model: the state dict lacks {', '.join(missing)}")

    shape = {k: _as_array(sd[k]).shape for k in required}
    vision_width = shape["visual.conv1.weight"][0]
    vision_patch_size = shape["visual.conv1.weight"][-1]
    vision_layers = len([k for k in sd if k.startswith("visual.") and k.endswith(".attn.in_proj_weight")])
    grid_size = round((shape["visual.positional_embedding"][0] - 1) ** 0.5)
    if grid_size ** 2 + 1 != shape["visual.positional_embedding"][0]:
        raise ValueError(f"build_model: visual.positional_embedding has {shape['visual.positional_embedding'][0]} "
                         f"rows; expected grid**2 + 1 (one per patch plus the class token)")
    transformer_layers = len({k.split(".")[2] for k in sd if k.startswith("transformer.resblocks.")})
    extra = {"init_logit_bias": 0.0} if "logit_bias" in sd else {}  # a SigLIP-trained model (value loaded after)
    return dict(**extra,
        embed_dim=shape["text_projection"][1],
        image_resolution=vision_patch_size * grid_size,
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
