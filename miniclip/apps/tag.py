"""Tagging a folder: zero-shot labels for every image, written as a CSV.

    miniclip tag photos/ --model runs/shapes-1 --labels "red circle,blue star" --out tags.csv

Shape legend:  N images,  L labels,  E embedding dim,  k labels kept per image.

Each label becomes a column of the text-only classifier ``W`` (E, L) (``evaluate.zero_shot_classifier``:
prompt templates averaged); an image's probabilities are ``softmax(100 * normalize(image) @ W)``
(``evaluate.zero_shot_probabilities``). The CSV has one row per image: its path, then the k best
labels with their probabilities, best first.
"""

from __future__ import annotations

import csv
import os
import tempfile

import numpy as np

from ..training.checkpoint import _fsync_directory
from ..evaluation.zeroshot import check_template, zero_shot_classifier, zero_shot_probabilities
from .embed import find_images, image_batches, load_model, skipped_line


def classifier_for(loaded, labels, templates, flag="--labels"):
    """The (E, L) zero-shot classifier of ``labels``; a prompt longer than the model's context is refused
    naming it (rather than silently cut)."""
    for template in templates:
        check_template(template, flag="--template")
    for text in (t.format(label) for label in labels for t in templates):
        loaded.check_length(text, f"{flag}: the prompt")
    return zero_shot_classifier(loaded.model, loaded.tokenizer, labels, templates)


def tag_folder(root, model, labels, templates=("{}",), top: int = 3, batch_size: int = 64, progress: bool = True):
    """``(rows, skipped)``: for each readable image under ``root``, ``(root/path, [(label, probability), ...])``
    with its ``top`` labels best first; ``skipped`` lists ``(path, reason)`` of the unreadable files."""
    loaded = model if hasattr(model, "fingerprint") else load_model(model)
    classifier = classifier_for(loaded, labels, templates)                       # (E, L)
    top = min(int(top), len(labels))
    rows, skipped = [], []
    for names, images in image_batches(root, find_images(root), loaded.preprocess, skipped, batch_size, progress,
                                       desc="tag"):
        probs = zero_shot_probabilities(loaded.model, images, classifier)        # (B, L)
        for path, p in zip(names, probs):
            best = np.argsort(-p, kind="stable")[:top]
            rows.append((os.path.join(root, path), [(labels[i], float(p[i])) for i in best]))
    return rows, skipped


def write_tags_csv(rows, out, top: int) -> str:
    """Write ``path, label_1, p_1, ..., label_k, p_k`` rows to ``out`` atomically (temp file + rename)."""
    out = os.fspath(out)
    directory = os.path.dirname(os.path.abspath(out))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(out)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["path"] + [f"{name}_{j}" for j in range(1, top + 1) for name in ("label", "p")])
            for path, best in rows:
                writer.writerow([path] + [value for label, p in best for value in (label, f"{p:.6g}")])
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)
    return out


def tag_summary(rows, skipped, out) -> list[str]:
    lines = [f"{out}: {len(rows)} images tagged"]
    if skipped:
        lines.append(skipped_line(skipped))
    return lines
