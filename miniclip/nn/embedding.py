"""``Embedding``: a table of vectors, one row per token id.

Shape legend: ids (N, T) integers in [0, V); weight (V, C); out (N, T, C).
"""

import numpy as np

from .. import ops
from . import init
from .module import Module
from .parameter import Parameter


class Embedding(Module):
    """out[n, t] = weight[ids[n, t]].  Init: PyTorch's default N(0, 1) (CLIP overrides it)."""

    def __init__(self, num_embeddings, embedding_dim, dtype=np.float32, rng=None):
        super().__init__()
        rng = init.as_rng(rng)
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = Parameter(init.normal(rng, (num_embeddings, embedding_dim), 1.0, dtype))

    def forward(self, ids):
        return ops.embedding(ids, self.weight)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}"
