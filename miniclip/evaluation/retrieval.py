"""Retrieval: the caption of an image among many, and the image of a caption (open_clip ``get_clip_metrics``).

Image i pairs with caption i. For each query the
rank of its true partner is the number of candidates scoring strictly higher, plus tied
candidates with a lower index (a stable descending sort); recall@k = mean(rank < k). Mean and
median rank are reported 1-based (rank + 1), as open_clip does.

Shape legend: N images, M texts, E embedding dim.
"""

import numpy as np

from .zeroshot import _encode, _l2_normalize, _numpy, true_class_rank


def retrieval_metrics(similarity):
    """Recall@1/5/10 and mean/median rank, both directions, for paired data.

    ``similarity`` (N, N): ``similarity[i, j]`` scores image i against caption j; the pair
    (i, i) is the true one. Image-to-text ranks each row, text-to-image each column.
    Keys follow open_clip: ``image_to_text_R@1``, ..., ``text_to_image_median_rank``.
    """
    similarity = _numpy(similarity)
    if similarity.ndim != 2 or similarity.shape[0] != similarity.shape[1] or similarity.shape[0] == 0:
        raise ValueError(f"retrieval_metrics: expected a square (N, N) similarity with N >= 1, "
                         f"got shape {similarity.shape}")
    n = similarity.shape[0]
    metrics = {}
    for name, scores in (("image_to_text", similarity), ("text_to_image", similarity.T)):
        rank = true_class_rank(scores, np.arange(n))
        metrics[f"{name}_mean_rank"] = float(rank.mean() + 1)
        metrics[f"{name}_median_rank"] = float(np.floor(np.median(rank)) + 1)
        for k in (1, 5, 10):
            metrics[f"{name}_R@{k}"] = float(np.mean(rank < k))
    return metrics


def image_text_similarity(model, images, tokens, batch_size=256):
    """Cosine similarities (N images, M texts) of the model's normalized embeddings."""
    image_features = _l2_normalize(_encode(model.encode_image, images, batch_size))  # (N, E)
    text_features = _l2_normalize(_encode(model.encode_text, tokens, batch_size))    # (M, E)
    return image_features @ text_features.T
