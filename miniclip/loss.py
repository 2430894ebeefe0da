"""Contrastive losses over a batch of N matching (image, caption) pairs.

Shape legend: N pairs; logits_per_image (N, N), row i = image i against every caption;
logits_per_text (N, N) = logits_per_image^T.

CLIP (Radford et al. 2021), the symmetric InfoNCE: pair i is the right answer in
row i of both matrices, so

    clip_loss = (CE(logits_per_image, arange(N)) + CE(logits_per_text, arange(N))) / 2

SigLIP (Zhai et al. 2023) treats every (image, caption) cell as its own binary
question "do these match?", with labels +1 on the diagonal and -1 elsewhere:

    siglip_loss = -sum_ij log sigmoid(label_ij * logit_ij) / N,   logits = exp(t) I T^T + b

No softmax over the batch, so no row normalization couples the examples. The model
carries ``b`` as ``CLIP.logit_bias`` when built with ``init_logit_bias`` (SigLIP:
``init_logit_scale=log(10)``, ``init_logit_bias=-10``), and adds it in ``forward``.

The temperature: ``logit_scale`` is learned, and left alone it can grow until the
logits saturate. As open_clip does (the original release leaves it out), the
training loop clamps it to [0, ln 100] right after each optimizer step, so that
exp(logit_scale) <= 100; the clamp lives in the training helper, not in these losses.
"""

import numpy as np

from . import ops
from .autograd.tensor import Tensor

SIGLIP_INIT_LOGIT_SCALE = float(np.log(10.0))  # the SigLIP paper's t' = log 10
SIGLIP_INIT_LOGIT_BIAS = -10.0                  # and b = -10: most pairs are negatives at the start


def _check_logits(name, logits):
    if not isinstance(logits, Tensor):
        logits = Tensor(np.asarray(logits))
    if logits.ndim != 2 or logits.shape[0] != logits.shape[1] or logits.shape[0] == 0:
        raise ValueError(f"{name}: expected square logits (N, N) of N matching pairs, got shape {logits.shape}")
    if not np.issubdtype(logits.dtype, np.floating):
        raise TypeError(f"{name}: expected floating-point logits, got {logits.dtype}")
    return logits


def clip_loss(logits_per_image, logits_per_text):
    """The symmetric InfoNCE loss: the mean of the image->text and text->image cross-entropies."""
    logits_per_image = _check_logits("clip_loss: logits_per_image", logits_per_image)
    logits_per_text = _check_logits("clip_loss: logits_per_text", logits_per_text)
    if logits_per_text.shape != logits_per_image.shape:
        raise ValueError(f"clip_loss: logits_per_image {logits_per_image.shape} and logits_per_text "
                         f"{logits_per_text.shape} must have the same shape")
    labels = np.arange(logits_per_image.shape[0])  # pair i: image i matches caption i
    return (ops.cross_entropy(logits_per_image, labels) + ops.cross_entropy(logits_per_text, labels)) / 2


def siglip_loss(logits_per_image, logits_per_text=None):
    """The pairwise sigmoid loss: -sum log sigmoid(labels * logits) / N, labels = 2 eye(N) - 1.

    ``logits_per_image`` must already include the bias (the model's ``forward`` adds
    ``logit_bias`` when it has one). ``logits_per_text`` is accepted so that both losses
    are called alike (``loss_fn(*model(images, tokens))``); the loss is symmetric, so
    only its shape is checked.
    """
    logits = _check_logits("siglip_loss: logits_per_image", logits_per_image)
    if logits_per_text is not None and tuple(np.shape(logits_per_text)) != logits.shape[::-1]:
        raise ValueError(f"siglip_loss: logits_per_text must have shape {logits.shape[::-1]}, "
                         f"got {tuple(np.shape(logits_per_text))}")
    N = logits.shape[0]
    labels = (2 * np.eye(N) - 1).astype(logits.dtype)  # +1 for the N matching pairs, -1 for the rest
    return -ops.logsigmoid(logits * labels).sum() / N
