"""The supervised baseline: CLIP's image encoder with a linear classifier head, trained on labels.

CLIP's zero-shot classifier is a linear layer too: its weights are the text embeddings of the
class names (``evaluate.zero_shot_classifier``). The baseline keeps everything else -- the same
image tower (Vision Transformer or ModifiedResNet), the same images, steps and optimizer -- and *learns* those weights from labels:

    features = visual(images)                  (B, E)   the image tower of CLIP(...)
    logits   = features @ head.weight^T + head.bias     (B, L)   L = 48 class names
    loss     = cross_entropy(logits, labels)

It can only ever name the classes it saw labeled: the 8 held-out pairs are never among the training
labels, so their outputs are trained only to be *low*. That is the trade-off chapter 12 measures.

``encode_image`` returns the features, as CLIP's does, so a linear probe (``evaluation/probe.py``) reads both
models alike. Shape legend: B batch, R resolution, E embedding dim, L classes.
"""

import numpy as np

from ..nn import Linear, Module, init
from .clip import image_tower


class SupervisedClassifier(Module):
    """``visual`` (the CLIP image encoder) + ``head`` (Linear E -> n_classes)."""

    def __init__(self, n_classes, embed_dim, image_resolution, vision_layers, vision_width, vision_patch_size,
                 vision_heads=None, dtype=np.float32, seed=0, **unused_text_args):
        super().__init__()
        dtype = np.dtype(dtype)
        rng = init.as_rng(seed)
        self.n_classes, self.image_resolution, self._dtype = int(n_classes), image_resolution, dtype
        self.visual = image_tower(embed_dim, image_resolution, vision_layers, vision_width, vision_patch_size,
                                  vision_heads, dtype=dtype, rng=rng)  # the same tower CLIP(...) builds
        self.head = Linear(embed_dim, n_classes, dtype=dtype, rng=rng)

    @property
    def dtype(self):
        return self._dtype

    def encode_image(self, images):
        """(B, 3, R, R) -> (B, E) features, as ``CLIP.encode_image``."""
        return self.visual(images)

    def encode_text(self, tokens):
        raise ValueError("this is the supervised baseline (--objective supervised): it has no text encoder, so it "
                         "names only the labels it was trained on; `miniclip eval` reports its accuracy")

    def forward(self, images):
        """(B, 3, R, R) -> (B, L) class logits."""
        return self.head(self.encode_image(images))
