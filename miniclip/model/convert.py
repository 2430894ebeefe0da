"""Checkpoint files: original PyTorch CLIP checkpoints -> ``.npz``, and ``.npz`` state dicts.

    convert_checkpoint("ViT-B-32.pt", "ViT-B-32.npz")      # needs torch, once
    model = build_model(load_npz("ViT-B-32.npz"))          # no torch from here on

With ``vocab="bpe_simple_vocab_16e6.txt.gz"`` the file also holds the tokenizer's merges (under
``tokenizer_merges``, as miniclip's own checkpoints), so ``miniclip.load`` returns a working
tokenizer from the one file.

``convert_checkpoint`` reads both kinds of file the original ``clip.load`` reads:
a TorchScript archive (the files OpenAI publishes) and a plain pickled state dict
(including ``{"state_dict": ...}`` training checkpoints with a ``module.`` prefix).
"""

import os
import tempfile
import warnings

import numpy as np

from ..autograd.tensor import Tensor

CONVERT_DTYPES = ("float32", "float16", "float64")
TOKENIZER_KEY = "tokenizer_merges"  # the merges file's text, stored beside the weights (the same key as
                                    # miniclip's own checkpoints)


def save_npz(state_dict, path):
    """Write {name: array} to ``path`` as an uncompressed .npz, atomically.

    The file is written beside the target and renamed into place (``os.replace``),
    so a crash never leaves a half-written checkpoint under the final name.
    """
    arrays = {k: (v.data if isinstance(v, Tensor) else np.asarray(v)) for k, v in state_dict.items()}
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def load_npz(path):
    """{name: ndarray} from a .npz written by ``save_npz`` / ``convert_checkpoint`` (key order kept)."""
    with np.load(os.fspath(path), allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def read_torch_checkpoint(path):
    """{name: ndarray} from an original PyTorch checkpoint; needs torch."""
    # The file first: a missing file is the user's mistake whether or not torch is installed.
    if not os.path.isfile(path):
        raise FileNotFoundError(f"convert_checkpoint: no checkpoint file at {os.fspath(path)!r}")
    try:
        import torch
    except ImportError:
        raise ImportError("convert_checkpoint: reading a PyTorch checkpoint needs PyTorch, which miniclip "
                          "does not otherwise use. Install it once with `pip install torch`, convert, "
                          "and run the .npz without it.") from None
    try:  # a TorchScript archive, as published by OpenAI (what clip.load(jit=True) reads)
        with warnings.catch_warnings():  # recent torch deprecates TorchScript; the files still load
            warnings.simplefilter("ignore", DeprecationWarning)
            sd = torch.jit.load(os.fspath(path), map_location="cpu").state_dict()
    except RuntimeError:  # not TorchScript: a pickled state dict
        sd = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
        if isinstance(sd, dict) and "state_dict" in sd:
            sd = sd["state_dict"]
        if not isinstance(sd, dict):
            raise ValueError(f"convert_checkpoint: {path} holds a {type(sd).__name__}, not a state dict")
        sd = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in sd.items()}
    out = {}
    for k, v in sd.items():
        v = v.detach().cpu()
        if v.dtype == torch.bfloat16:  # NumPy has no bfloat16
            v = v.float()
        out[k] = v.numpy()
    return out


def convert_checkpoint(path_pt, out_npz, vocab=None, dtype=None):
    """Convert an original CLIP checkpoint (``.pt``) to an ``.npz`` state dict; returns ``out_npz``.

    Keys and shapes are kept as they are. Floating-point weights are stored as ``dtype``
    ("float32", "float16" or "float64"); by default float16 becomes float32 (the released
    files are float16, which miniclip computes in float32 anyway) and float32/float64 stay
    as they are; "float16" keeps a released file as it is (half the size). Integer entries
    (BatchNorm's ``num_batches_tracked``) stay integers. ``vocab``: the original
    ``bpe_simple_vocab_16e6.txt.gz``, whose merges are stored beside the weights.
    ``miniclip convert MODEL.pt OUT.npz [--vocab FILE] [--dtype D]`` calls this.
    """
    if dtype is not None and dtype not in CONVERT_DTYPES:
        raise ValueError(f"convert_checkpoint: expected dtype one of {CONVERT_DTYPES}, got {dtype!r}")
    merges = None
    if vocab is not None:  # the vocabulary first: a wrong path should not wait for torch
        from ..tokenizer import BPETokenizer
        if not os.path.isfile(vocab):
            raise FileNotFoundError(f"convert_checkpoint: no vocabulary file at {os.fspath(vocab)!r}")
        merges = BPETokenizer.from_clip_vocab(vocab).merges_text()
    state = read_torch_checkpoint(path_pt)
    for k, v in state.items():
        if v.dtype.kind == "f":
            state[k] = v.astype(dtype or (np.float32 if v.dtype == np.float16 else v.dtype))
    if merges is not None:
        state[TOKENIZER_KEY] = np.array(merges)
    return save_npz(state, out_npz)
