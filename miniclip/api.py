"""``miniclip.load``: a trained model, its preprocessing and its tokenizer, as ``clip.load`` gives them.

    import miniclip
    model, preprocess, tokenizer = miniclip.load("runs/shapes-1/model.npz")
    image = preprocess(PIL.Image.open("red_circle.png"))[None]        # (1, 3, R, R)
    tokens = tokenizer(["a red circle", "a blue star"])                 # (2, context_length) int64
    logits_per_image, logits_per_text = model(image, tokens)

Shape legend: N texts, T context length, R image resolution.
"""

import os

import numpy as np

from .checkpoint import CheckpointError, CheckpointManager, load_checkpoint
from .model import CLIP
from .tokenizer import BPETokenizer


class ContextTokenizer:
    """A ``BPETokenizer`` that pads to the model's context length by default:
    ``tokenizer(texts) -> (N, T)`` int64 ids. ``encode``, ``decode``, ``eot_token``, ... pass through."""

    def __init__(self, tokenizer, context_length):
        self.tokenizer, self.context_length = tokenizer, int(context_length)

    def __call__(self, texts, context_length=None, truncate=False):
        return self.tokenizer(texts, context_length=context_length or self.context_length, truncate=truncate)

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)

    def __repr__(self):
        return f"{self.tokenizer!r} (context_length={self.context_length})"


def resolve_model_path(path):
    """A run folder means its ``model.npz`` (or, before training finished, its newest checkpoint)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        final = os.path.join(path, "model.npz")
        if os.path.exists(final):
            return final
        latest = CheckpointManager(os.path.join(path, "checkpoints")).latest()
        if latest is None:
            raise FileNotFoundError(f"load: {path} is a folder without model.npz or checkpoints/step_*.npz")
        return latest
    return path


def load(path, dtype=None):
    """``(model, preprocess, tokenizer)`` from a miniclip ``model.npz``, a training checkpoint or a run folder.

    ``preprocess(PIL image of any mode, or uint8 array) -> (3, R, R)`` array of the model's dtype (CLIP's resize,
    center crop and normalization); ``tokenizer(texts) -> (N, context_length)`` int64 ids. ``dtype``
    ("float32" / "float64") overrides the saved one.
    """
    from .data import Preprocess  # the data layer (Pillow) only when loading

    path = resolve_model_path(path)
    ckpt = load_checkpoint(path)
    args = dict(ckpt.extra.get("model_args") or {})
    if not args or ckpt.tokenizer_merges is None:
        raise CheckpointError(f"load: {path} is a checkpoint without the model's arguments or tokenizer; "
                              f"was it written by miniclip train?")
    if dtype is not None:
        args["dtype"] = str(np.dtype(dtype))
    model = CLIP(**args)
    model.load_state_dict(ckpt.model_state)
    model.eval()
    preprocess = Preprocess(args["image_resolution"], train=False, dtype=np.dtype(args["dtype"]))
    tokenizer = ContextTokenizer(BPETokenizer.from_merges_text(ckpt.tokenizer_merges, path), args["context_length"])
    return model, preprocess, tokenizer
