"""Exact search of an image index: one matrix product, then the k best.

    miniclip search photos.npz "a red star" --top 10
    miniclip search photos.npz --image query.png

Shape legend:  N images in the index,  E embedding dim,  k results.

The index rows and the query are unit vectors, so the cosine similarity of every image with the
query is one matrix-vector product, ``scores = embeddings @ q`` (N,), and the k best are found
with a partial sort (``argpartition``, O(N)) before sorting only those k. That is exact, and its time
grows linearly with N x E: it reads the whole index for every query (benchmarks/README.md measures
where it stops being interactive). Beyond that one uses an approximate nearest-neighbour index (FAISS's
IVF/PQ, HNSW graphs), which visits a small part of the gallery and almost always returns the same top k.
"""

from __future__ import annotations

import os

import numpy as np

from .embed import load_model, read_image
from .index import load_index


def top_k(embeddings, query, k: int):
    """Rows of ``embeddings`` (N, E) most similar to the unit vector ``query`` (E,): ``(rows, scores)``,
    best first; ties go to the lower row (a stable order)."""
    scores = embeddings @ query.astype(embeddings.dtype)                         # (N,)
    k = min(int(k), len(scores))
    if k == 0:
        return np.zeros(0, np.int64), np.zeros(0, scores.dtype)
    candidates = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))  # (k,)
    order = np.lexsort((candidates, -scores[candidates]))  # by score, then by row
    rows = candidates[order]
    return rows, scores[rows]


def search(index, loaded, text=None, image=None, k: int = 10):
    """The ``k`` images of ``index`` nearest to a text or to an image (a path or a file object):
    ``[{"rank", "path", "score"}, ...]`` best first; ``score`` is the cosine similarity."""
    index.check_model(loaded)
    if (text is None) == (image is None):
        raise ValueError("search: give a text or an image to search for, not both nor neither")
    if text is not None:
        if not text.strip():
            raise ValueError("search: the query text is empty")
        query = loaded.embed_texts([text], flag="the query")[0]                  # (E,)
    else:
        try:
            query = loaded.embed_images(read_image(image, loaded.preprocess)[None])[0]
        except ValueError as exc:
            raise ValueError(f"--image {getattr(image, 'name', image)}: {exc}") from None
    rows, scores = top_k(index.embeddings, query, k)
    return [{"rank": r + 1, "id": int(i), "path": index.full_path(i), "score": float(s)}
            for r, (i, s) in enumerate(zip(rows, scores))]


def search_index_file(index_path, text=None, image=None, k: int = 10, model=None):
    """``search`` with the index read from ``index_path`` and its own model (or ``model``, which must be
    the same one)."""
    index = load_index(index_path)
    if model is None and not os.path.exists(index.model_path):
        raise FileNotFoundError(f"index {index_path} was built with the model {index.model_path}, which is gone; "
                                f"pass --model with that model (fingerprint {index.model_fingerprint})")
    loaded = load_model(model if model is not None else index.model_path)
    return search(index, loaded, text=text, image=image, k=k)
