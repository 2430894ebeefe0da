"""Evaluating a CLIP the way the field does: zero-shot classification.

Zero-shot (Radford et al. 2021, section 3.1.4; open_clip ``zero_shot.py``): each class name is
written into several prompt templates ("a photo of a {}."), every prompt is encoded, the text
embeddings are L2-normalized, averaged over templates, and renormalized; that (E, classes)
matrix is a linear classifier built from text alone. ``logits = 100 * image_features @ W``.

Retrieval (recall@k) is ``retrieval.py``'s; both rank the true answer with ``true_class_rank``.

Shape legend: N images, M texts, E embedding dim, L classes (labels), P prompts per class.
"""

import string

import numpy as np

from ..autograd import Tensor, no_grad


def _numpy(x):
    return x.data if isinstance(x, Tensor) else np.asarray(x)


def _l2_normalize(x, axis=-1):
    return x / np.linalg.norm(x, axis=axis, keepdims=True)


def _encode(encode, inputs, batch_size):
    """Run ``encode`` over ``inputs`` in chunks under no_grad; (len(inputs), E) ndarray."""
    with no_grad():
        chunks = [_numpy(encode(inputs[i:i + batch_size])) for i in range(0, len(inputs), batch_size)]
    return np.concatenate(chunks, axis=0)


def parse_labels(text, flag="--labels"):
    """ "red circle, blue star" -> ["red circle", "blue star"]; at least two distinct names."""
    labels = [label.strip() for label in text.split(",") if label.strip()]
    if len(labels) < 2:
        raise ValueError(f"{flag}: expected at least two comma-separated names, got {text!r}")
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ValueError(f"{flag}: each name once, got {', '.join(map(repr, duplicates))} more than once")
    return labels


def check_template(template, flag="template"):
    """Refuse a prompt template that does not hold exactly one empty ``{}`` (where the class name
    goes): "a {1} photo", "a {x} photo", "a photo" and "a {} {} photo" all raise ValueError."""
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(template)
                  if name is not None]
    except ValueError as exc:  # an unmatched brace
        raise ValueError(f"{flag} {template!r}: not a valid template ({exc}); use one {{}} for the label") from None
    if len(fields) != 1 or fields[0] != ("", "", None):
        found = ", ".join("{" + name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}"
                          for name, spec, conv in fields) or "none"
        raise ValueError(f"{flag} {template!r}: expected exactly one {{}} where the label goes, found {found}")


def _format(template, classname):
    return template(classname) if callable(template) else template.format(classname)


# --------------------------------------------------------------------------- zero-shot
def zero_shot_classifier(model, tokenizer, classnames, templates, batch_size=512):
    """The text-only classifier W, shape (E, L): column c is

        W[:, c] = normalize(mean_p normalize(encode_text(template_p(class_c))))

    ``tokenizer(list_of_texts) -> (P*L, context_length)`` ids that ``model.encode_text`` accepts;
    ``templates``: strings with one ``{}`` or callables ``name -> text``.
    """
    classnames, templates = list(classnames), list(templates)
    if not classnames:
        raise ValueError("zero_shot_classifier: classnames is empty")
    if not templates:
        raise ValueError("zero_shot_classifier: templates is empty")
    for template in templates:
        if not callable(template):
            check_template(template, flag="zero_shot_classifier: template")
    texts = [_format(t, c) for c in classnames for t in templates]  # class-major: (L * P,)
    tokens = np.asarray(tokenizer(texts))
    features = _l2_normalize(_encode(model.encode_text, tokens, batch_size))  # (L*P, E)
    features = features.reshape(len(classnames), len(templates), -1)         # (L, P, E)
    return _l2_normalize(features.mean(axis=1)).T                            # (E, L)


def zero_shot_logits(model, images, classifier, batch_size=256):
    """``100 * normalize(encode_image(images)) @ classifier``, shape (N, L)."""
    image_features = _l2_normalize(_encode(model.encode_image, images, batch_size))  # (N, E)
    return 100.0 * image_features @ classifier.astype(image_features.dtype)


def true_class_rank(scores, labels):
    """Rank of ``scores[i, labels[i]]`` in row i (0 = best): the number of strictly greater
    scores plus the number of equal scores at a lower column index (a stable descending sort)."""
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    if scores.ndim != 2 or labels.shape != (scores.shape[0],):
        raise ValueError(f"true_class_rank: expected scores (N, L) and labels (N,), got {scores.shape} "
                         f"and {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= scores.shape[1]):
        raise ValueError(f"true_class_rank: labels must be in [0, {scores.shape[1]}), got "
                         f"[{labels.min()}, {labels.max()}]")
    if np.isnan(scores).any():
        raise ValueError("true_class_rank: scores contain NaN")
    rows = np.arange(scores.shape[0])
    target = scores[rows, labels][:, None]                                  # (N, 1)
    columns = np.arange(scores.shape[1])[None, :]                           # (1, L)
    ahead = (scores > target) | ((scores == target) & (columns < labels[:, None]))
    return ahead.sum(axis=1)


def topk_accuracy(logits, labels, ks=(1, 5)):
    """{k: fraction of rows whose true label ranks < k} (ties broken toward the lower index)."""
    rank = true_class_rank(logits, labels)
    return {k: float(np.mean(rank < k)) for k in ks}


def zero_shot_accuracy(model, images, labels, classifier, batch_size=256, n_classes=None):
    """Top-1 / top-5 zero-shot accuracy of ``images`` (N, 3, R, R) with true ``labels`` (N,).

    Returns ``{"top1", "top5", "predictions" (N,), "logits" (N, L), "confusion" (L, L)}``.
    """
    labels = np.asarray(labels)
    logits = zero_shot_logits(model, images, classifier, batch_size)
    acc = topk_accuracy(logits, labels, ks=(1, 5))
    predictions = np.argmax(logits, axis=1)  # argmax picks the lowest index on ties, like the rank
    n_classes = logits.shape[1] if n_classes is None else n_classes
    return {"top1": acc[1], "top5": acc[5], "predictions": predictions, "logits": logits,
            "confusion": confusion_matrix(labels, predictions, n_classes)}


def classifier_accuracy(model, images, labels, batch_size=256):
    """Top-1 / top-5 of a classifier that *learned* its class weights (``model(images) -> (N, L)``
    logits; the supervised baseline), in the same form as ``zero_shot_accuracy``."""
    labels = np.asarray(labels)
    logits = _encode(model, images, batch_size)                                   # (N, L)
    acc = topk_accuracy(logits, labels, ks=(1, 5))
    predictions = np.argmax(logits, axis=1)
    return {"top1": acc[1], "top5": acc[5], "predictions": predictions, "logits": logits,
            "confusion": confusion_matrix(labels, predictions, logits.shape[1])}


def confusion_matrix(labels, predictions, n_classes):
    """(L, L) counts: row = true class, column = predicted class."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    if labels.shape != predictions.shape:
        raise ValueError(f"confusion_matrix: labels {labels.shape} and predictions {predictions.shape} differ")
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def zero_shot_probabilities(model, images, classifier, batch_size=256):
    """softmax over classes of ``100 * normalize(encode_image(images)) @ classifier``: (N, L)."""
    logits = zero_shot_logits(model, images, classifier, batch_size)
    logits = logits - logits.max(axis=1, keepdims=True)  # shift for a stable exp
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)
