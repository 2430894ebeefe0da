"""``miniclip.load``: a trained model, its preprocessing and its tokenizer, as ``clip.load`` gives them.

    import miniclip
    model, preprocess, tokenizer = miniclip.load("runs/shapes-1/model.npz")
    image = preprocess(PIL.Image.open("red_circle.png"))[None]        # (1, 3, R, R)
    tokens = tokenizer(["a red circle", "a blue star"])                 # (2, context_length) int64
    logits_per_image, logits_per_text = model(image, tokens)

The same call takes an original OpenAI checkpoint converted once with ``miniclip convert``
(ViT-B/32, RN50, ...; the file then holds the original's state dict, and its vocabulary when
converted with ``--vocab``):

    model, preprocess, tokenizer = miniclip.load("RN50.npz")          # (N, 3, 224, 224) images, T = 77

Shape legend: N texts, T context length, R image resolution.
"""

import os
import zipfile

import numpy as np

from .training.checkpoint import CheckpointError, CheckpointManager, load_checkpoint
from .model import CLIP, build_model, load_npz
from .model.convert import TOKENIZER_KEY
from .tokenizer import BPETokenizer, ContextTokenizer


class MissingTokenizer:
    """Stands in for the tokenizer of a converted checkpoint that holds no vocabulary.

    The model and ``preprocess`` work (image features need no text); calling it, or reading
    any of its attributes, raises ``MissingVocabularyError`` saying how to add the vocabulary.
    """

    def __init__(self, path):
        object.__setattr__(self, "path", os.fspath(path))

    def _error(self):
        return MissingVocabularyError(
            f"load: {self.path} holds no tokenizer vocabulary; convert the checkpoint again with "
            f"`miniclip convert MODEL.pt {self.path} --vocab bpe_simple_vocab_16e6.txt.gz` (the vocabulary "
            f"file of openai/CLIP) to store it in the file")

    def __call__(self, *args, **kwargs):
        raise self._error()

    def __getattr__(self, name):
        if name.startswith("__"):  # copy, pickle and friends probe dunders: not a use of the tokenizer
            raise AttributeError(name)
        raise self._error()

    def __repr__(self):
        return f"MissingTokenizer({self.path!r})"


class MissingVocabularyError(ValueError):
    """The tokenizer of a converted checkpoint without ``--vocab`` was used."""


def is_miniclip_checkpoint(path):
    """True for a file ``miniclip train`` wrote (it has a ``meta`` entry), False for a converted
    OpenAI state dict; a file that cannot be read counts as miniclip's, whose reader names the problem."""
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as data:
            return "meta" in data.files
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return True


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
    """``(model, preprocess, tokenizer)`` from a miniclip ``model.npz``, a training checkpoint, a run
    folder, or an OpenAI checkpoint converted by ``miniclip convert`` (ViT or ResNet).

    ``preprocess(PIL image of any mode, or uint8 array) -> (3, R, R)`` array of the model's dtype (CLIP's resize,
    center crop and normalization); ``tokenizer(texts) -> (N, context_length)`` int64 ids. ``dtype``
    ("float32" / "float64") overrides the saved one. A converted checkpoint without a vocabulary
    gives a ``MissingTokenizer`` that explains how to add one when it is used.
    """
    from .data import Preprocess  # the data layer (Pillow) only when loading

    path = resolve_model_path(path)
    if os.path.isfile(path) and not is_miniclip_checkpoint(path):
        return _load_converted(path, dtype)
    ckpt = load_checkpoint(path)
    args = dict(ckpt.extra.get("model_args") or {})
    if not args or ckpt.tokenizer_merges is None:
        raise CheckpointError(f"load: {path} is a checkpoint without the model's arguments or tokenizer; "
                              f"was it written by miniclip train?")
    if dtype is not None:
        args["dtype"] = str(np.dtype(dtype))
    if (ckpt.config or {}).get("objective") == "supervised":  # the baseline of chapter 12: image tower + head
        from .model.supervised import SupervisedClassifier
        model = SupervisedClassifier(ckpt.model_state["head.weight"].shape[0], **args)
    else:
        model = CLIP(**args)
    model.load_state_dict(ckpt.model_state)
    model.eval()
    preprocess = Preprocess(args["image_resolution"], train=False, dtype=np.dtype(args["dtype"]))
    tokenizer = ContextTokenizer(BPETokenizer.from_merges_text(ckpt.tokenizer_merges, path), args["context_length"])
    return model, preprocess, tokenizer


def _load_converted(path, dtype):
    """``load`` of an original state dict written by ``miniclip convert`` (see ``model/convert.py``)."""
    from .data import Preprocess

    state = load_npz(path)
    merges = state.pop(TOKENIZER_KEY, None)
    try:
        model = build_model(state, dtype=dtype)
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"load: {path} is neither a miniclip checkpoint nor a converted CLIP "
                              f"checkpoint ({exc})") from exc
    preprocess = Preprocess(model.image_resolution, train=False, dtype=model.dtype)
    if merges is None:
        return model, preprocess, MissingTokenizer(path)
    return model, preprocess, ContextTokenizer(BPETokenizer.from_merges_text(str(merges), path), model.context_length)
