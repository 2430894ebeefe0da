"""The shape of the embedding space: a 2-D picture of it, and the modality gap.

CLIP's image and text embeddings do not fill the sphere together. Each modality sits in a cone of
its own, and the two cones are apart: the *modality gap* (Liang et al. 2022, "Mind the Gap"),

    gap = || mean_i normalize(image_i)  -  mean_j normalize(text_j) ||

between the centroids of the L2-normalized embeddings (0 when the clouds share a centre; at most 2).
Matching pairs still score highest -- the contrastive loss only compares a caption with the other
captions of the batch, so moving every text embedding by the same vector barely changes it.

Whether the loss *wants* the gap closed depends on the temperature tau. ``gap_loss_curve`` moves
both clouds toward each other by a fraction ``lambda`` of the gap vector (renormalizing every
embedding), and evaluates the CLIP loss at several tau:

    image_i(lambda) = normalize(image_i - lambda * delta / 2),  text_j(lambda) = normalize(text_j + lambda * delta / 2)
    delta = mean(image) - mean(text)       lambda = 0: as trained; lambda = 1: centroids (nearly) together

Liang et al. found that at CLIP's learned tau (0.01) closing the gap *raises* the loss, while at
a high tau it lowers it: the temperature decides whether the gap is worth keeping. Chapter 12 measures
the same curve on the toy model.

The picture (``plot_embedding_space``): a PCA of both modalities *together* to 2-D -- the first
principal axis is, typically, the gap itself.

Shape legend: N images, M texts, E embedding dim.
"""

import numpy as np

from ..autograd import Tensor, no_grad
from ..loss import clip_loss


def _normalize(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def modality_gap(image_features, text_features):
    """``|| mean(normalize(images)) - mean(normalize(texts)) ||`` (images (N, E), texts (M, E))."""
    delta = _normalize(image_features).mean(axis=0) - _normalize(text_features).mean(axis=0)   # (E,)
    return float(np.linalg.norm(delta))


def pca_2d(*arrays):
    """Project every array (rows are points) on the two principal axes of all their rows together.

    Returns ``(projections, explained)``: one (n_k, 2) array per input, and the fraction of the total
    variance along each of the two axes.
    """
    stacked = np.concatenate(arrays, axis=0)                                 # (sum n_k, E)
    centered = stacked - stacked.mean(axis=0)
    _, s, vt = np.linalg.svd(centered, full_matrices=False)                 # rows of vt: principal axes
    projected = centered @ vt[:2].T                                          # (sum n_k, 2)
    splits = np.cumsum([len(a) for a in arrays])[:-1]
    return np.split(projected, splits), (s[:2] ** 2) / np.sum(s ** 2)


def shifted_pairs(image_features, text_features, shift):
    """Both clouds moved toward each other by ``shift`` x the gap vector, every row renormalized."""
    images, texts = _normalize(image_features), _normalize(text_features)
    delta = images.mean(axis=0) - texts.mean(axis=0)                         # (E,)
    return _normalize(images - shift * delta / 2), _normalize(texts + shift * delta / 2)


def gap_loss_curve(image_features, text_features, temperatures, shifts):
    """The CLIP loss of the (N, E) paired embeddings after ``shifted_pairs``, for every tau and shift.

    Returns an array (len(temperatures), len(shifts)).
    """
    losses = np.empty((len(temperatures), len(shifts)))
    for j, shift in enumerate(shifts):
        images, texts = shifted_pairs(image_features, text_features, shift)
        cosine = images @ texts.T                                            # (N, N)
        for i, tau in enumerate(temperatures):
            with no_grad():
                losses[i, j] = clip_loss(Tensor(cosine / tau), Tensor(cosine.T / tau)).item()
    return losses


def plot_embedding_space(image_features, text_features, image_groups, text_groups, group_names, path,
                         colors=None, title="image and text embeddings (PCA of both, normalized)"):
    """Scatter the PCA of normalized image (dots) and text (crosses) embeddings, colored by group
    (``colors[g]``, any matplotlib color; default the C0, C1, ... cycle)."""
    from .plots import _pyplot, _save
    (images, texts), explained = pca_2d(_normalize(image_features), _normalize(text_features))
    fig, ax = _pyplot().subplots(figsize=(6.4, 5.2))
    for g, name in enumerate(group_names):
        color = colors[g] if colors is not None else f"C{g % 10}"
        ax.scatter(*images[image_groups == g].T, s=6, alpha=0.5, color=color, label=name)
        ax.scatter(*texts[text_groups == g].T, s=40, marker="x", color=color)
    gap = modality_gap(image_features, text_features)
    ax.set_xlabel(f"principal axis 1 ({100 * explained[0]:.0f}% of the variance)")
    ax.set_ylabel(f"principal axis 2 ({100 * explained[1]:.0f}%)")
    ax.set_title(f"{title}\ndots: images, crosses: texts; modality gap {gap:.2f}", fontsize=9)
    ax.legend(fontsize=7, markerscale=2, ncol=2)
    return _save(fig, path)


# ----------------------------------------------------------------- on a trained shapes model
GAP_TEMPERATURES = (0.01, 0.03, 0.07, 0.3, 1.0)
GAP_SHIFTS = (0.0, 0.25, 0.5, 0.75, 1.0)


def embedding_report(path, n=960, pairs=256, seed=0, plot=None):
    """What ``miniclip embeddings`` prints: the modality gap of ``n`` fresh shapes images and their
    captions, the loss after closing it by each of ``GAP_SHIFTS`` at each of ``GAP_TEMPERATURES``
    (and at the model's learned tau) on ``pairs`` of them, and the PCA picture (``plot``; default
    ``embedding_space.png`` beside the model)."""
    import os

    from ..api import load, resolve_model_path
    from ..data.shapes import COLOR_NAMES, SHAPES
    from .zeroshot import _encode
    from .fewshot import world_styles
    from .runs import shapes_eval_set
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    path = resolve_model_path(path)
    model, preprocess, tokenizer = load(path)
    shapes = shapes_eval_set(n, seed + 4_000_037, preprocess.resolution, "all", preprocess, world_styles(path))
    images = _encode(model.encode_image, shapes["images"], 256).astype(np.float64)      # (n, E)
    texts = _encode(model.encode_text, tokenizer(shapes["captions"]), 256).astype(np.float64)
    learned_tau = float(np.exp(-model.logit_scale.data.item()))
    temperatures = sorted(set(GAP_TEMPERATURES) | {round(learned_tau, 4)})
    colors = shapes["labels"] // len(SHAPES)                                              # color index
    plot = plot_embedding_space(images, texts, colors, colors, COLOR_NAMES,
                                plot or os.path.join(folder, "embedding_space.png"),
                                colors=[_MPL_COLOR.get(c, c) for c in COLOR_NAMES])
    return {"model": path, "images": n, "pairs": pairs, "modality_gap": modality_gap(images, texts),
            "learned_temperature": learned_tau, "temperatures": temperatures, "shifts": list(GAP_SHIFTS),
            "loss": gap_loss_curve(images[:pairs], texts[:pairs], temperatures, GAP_SHIFTS).tolist(),
            "plot": plot}


_MPL_COLOR = {"yellow": "gold", "white": "gray", "cyan": "c"}   # visible on a white figure
