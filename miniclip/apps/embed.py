"""A trained model at work: its identity, and images and texts turned into unit-length embeddings.

Shape legend:  N images or texts,  B batch,  E embedding dim,  R image resolution.

Embeddings are L2-normalized, ``x / ||x||``, so that the cosine similarity of two of them is their dot
product and a whole gallery is scored against a query by one matrix product (see ``search``).

A model's identity is a hash of its weights (``fingerprint``): an index built with one model holds
vectors in that model's embedding space, and a query embedded by any other model -- another run, the
same run trained further -- would be compared in a different space and give meaningless scores. The
hash, not the file name, is what an index remembers and checks.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..api import load, resolve_model_path
from ..autograd import no_grad
from ..data.transforms import fully_transparent

# The image formats a folder is searched for (by file name, case-insensitive); Pillow reads them all.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")

# What Pillow raises on a file it cannot decode: truncated or corrupt data (OSError, SyntaxError from a
# plugin's header check, EOFError, struct.error), a bad value in it (ValueError), or too many pixels.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, Image.DecompressionBombError)


def l2_normalize(x):
    """``x / ||x||`` along the last axis: (N, E) -> (N, E) rows of unit length."""
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def fingerprint(model) -> str:
    """The model's identity: SHA-256 (first 16 hex digits) over its parameters' names, dtypes, shapes
    and bytes, in name order. Equal weights give equal fingerprints whatever the file is called."""
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        array = np.ascontiguousarray(value)
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


@dataclass
class LoadedModel:
    """``miniclip.load``'s triple with where it came from and who it is."""

    model: object
    preprocess: object
    tokenizer: object
    path: str          # the resolved model file (a run folder's model.npz or newest checkpoint)
    fingerprint: str

    @property
    def resolution(self) -> int:
        return self.preprocess.resolution

    def embed_images(self, images, batch_size: int = 64) -> np.ndarray:
        """(N, 3, R, R) preprocessed images -> (N, E) float32 unit vectors."""
        with no_grad():
            chunks = [self.model.encode_image(images[i:i + batch_size]).data for i in range(0, len(images), batch_size)]
        return l2_normalize(np.concatenate(chunks).astype(np.float32))

    def check_length(self, text, flag) -> None:
        """Refuse (ValueError naming ``flag``) a text longer than the model's context, rather than cut it."""
        n = len(self.tokenizer.encode(text)) + 2  # with start and end of text
        if n > self.tokenizer.context_length:
            raise ValueError(f"{flag} {text!r} takes {n} tokens with start and end, more than the model's "
                             f"context of {self.tokenizer.context_length}; shorten it")

    def embed_texts(self, texts, flag="text") -> np.ndarray:
        """N strings -> (N, E) float32 unit vectors; a text longer than the context is refused (``check_length``)."""
        for text in texts:
            self.check_length(text, flag)
        tokens = self.tokenizer(list(texts))  # (N, T)
        with no_grad():
            return l2_normalize(self.model.encode_text(tokens).data.astype(np.float32))


def load_model(path) -> LoadedModel:
    """``LoadedModel`` from a run folder, a model.npz or a training checkpoint."""
    resolved = os.path.abspath(resolve_model_path(path))
    model, preprocess, tokenizer = load(resolved)
    return LoadedModel(model, preprocess, tokenizer, resolved, fingerprint(model))


def read_image(path_or_file, preprocess) -> np.ndarray:
    """One image file (a path or a binary file object), any mode and size -> (3, R, R) through
    ``preprocess``. Raises ValueError with the reason when it cannot be decoded or shows nothing
    (fully transparent)."""
    try:
        with Image.open(path_or_file) as image:
            if fully_transparent(image):
                raise ValueError("fully transparent: nothing to see")
            return preprocess(image)
    except DECODE_ERRORS as exc:
        reason = str(exc) or type(exc).__name__
        raise ValueError(reason if isinstance(exc, ValueError) else f"cannot decode it ({reason})") from None


def find_images(root) -> list[str]:
    """Paths of the image files under ``root`` (recursive; by extension), relative to it, sorted."""
    if not os.path.isdir(root):
        raise NotADirectoryError(f"{root} is not a folder of images")
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders.sort()
        for name in files:
            if name.lower().endswith(IMAGE_EXTENSIONS):
                found.append(os.path.relpath(os.path.join(folder, name), root))
    return sorted(found)


def image_batches(root, paths, preprocess, skipped, batch_size: int = 64, progress: bool = True, desc: str = "embed"):
    """Yield ``(names, images)``: up to ``batch_size`` of ``paths`` (relative to ``root``) that could be read,
    and their (B, 3, R, R) preprocessed pixels, with a tqdm progress bar. Each file that cannot be read
    is appended to ``skipped`` as ``(path, reason)`` and left out."""
    from tqdm import tqdm

    names, images = [], []
    with tqdm(total=len(paths), desc=desc, unit="img", disable=not progress, leave=False) as bar:
        for path in paths:
            try:
                images.append(read_image(os.path.join(root, path), preprocess))  # (3, R, R)
                names.append(path)
            except ValueError as exc:
                skipped.append((path, str(exc)))
            bar.update(1)
            if len(names) == batch_size:
                yield names, np.stack(images)
                names, images = [], []
    if names:
        yield names, np.stack(images)


def embed_files(loaded: LoadedModel, root, paths, batch_size: int = 64, progress: bool = True, desc: str = "embed"):
    """Embed the images ``root/path`` for each of ``paths``, ``batch_size`` at a time.

    Returns ``(kept, embeddings, skipped)``: the readable paths, their (len(kept), E) unit embeddings,
    and ``[(path, reason), ...]`` of the files that could not be read (they are not embedded).
    """
    kept, chunks, skipped = [], [], []
    for names, images in image_batches(root, paths, loaded.preprocess, skipped, batch_size, progress, desc):
        chunks.append(loaded.embed_images(images, batch_size))
        kept.extend(names)
    embeddings = np.concatenate(chunks) if chunks else np.zeros((0, loaded.model.embed_dim), np.float32)  # (N, E)
    return kept, embeddings, skipped


def skipped_line(skipped, limit: int = 5) -> str:
    """One summary line for the files that could not be read: how many, and the first few with why."""
    shown = "; ".join(f"{path} ({reason})" for path, reason in skipped[:limit])
    more = f"; and {len(skipped) - limit} more" if len(skipped) > limit else ""
    return f"skipped {len(skipped)} unreadable file{'s' if len(skipped) != 1 else ''}: {shown}{more}"
