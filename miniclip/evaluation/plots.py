"""The pictures of a run: PNGs in the run folder, redrawn from ``metrics.jsonl`` at any time.

    loss.png         train loss per step and eval loss at each evaluation
    lr_temperature.png  the learning-rate schedule and the learned temperature tau (logits = cosine / tau)
    zero_shot.png    zero-shot top-1 over time: all 48 names and the held-out pairs
    robustness.png   accuracy on each held-out style (y) against accuracy in distribution (x), one point
                     per evaluation, with the line y = x: the CLIP paper's "effective robustness" picture
    similarity.png   image-text cosine similarities of one eval batch (a good model: a bright diagonal)
    confusion.png    zero-shot confusion matrix over the classes (rows true, columns predicted)
    samples.png      sample images with their caption and the model's top guess

Only the plots that have data are drawn: a CSV run has no zero-shot classes (no zero_shot.png, confusion.png,
samples.png), and without ``--val-data`` no evaluation at all (no similarity.png).

``metrics.jsonl`` has one JSON object per line with ``"kind": "train"`` (step, loss, lr,
temperature, ...) or ``"kind": "eval"`` (step, eval_loss, zeroshot_top1_all, zeroshot_top1_heldout,
...). The matrices and samples come from ``eval_arrays.npz``, written beside it at each evaluation.

Uses matplotlib's Agg backend (files only, no window), so it works on a headless machine.
"""

import json
import os

import numpy as np

METRICS_FILE = "metrics.jsonl"
ARRAYS_FILE = "eval_arrays.npz"


def _pyplot():
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def read_metrics(path):
    """The records of a ``metrics.jsonl`` file, in order; a clear error names a bad line."""
    records = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}, line {lineno}: not valid JSON ({exc})") from exc
    return records


def _series(records, kind, key):
    rows = [r for r in records if r.get("kind") == kind and r.get(key) is not None]
    return np.array([r["step"] for r in rows]), np.array([r[key] for r in rows], dtype=float)


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def plot_losses(records, path):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    steps, loss = _series(records, "train", "loss")
    ax.plot(steps, loss, lw=0.8, alpha=0.5, label="train loss")
    if len(loss) >= 20:  # a running mean makes the trend readable through batch noise
        w = max(len(loss) // 50, 5)
        ax.plot(steps[w - 1:], np.convolve(loss, np.ones(w) / w, mode="valid"), lw=1.5,
                label=f"train loss (mean of {w})")
    steps, loss = _series(records, "eval", "eval_loss")
    if len(loss):
        on = "--val-data pairs" if any("val_pairs" in r for r in records) else "fresh images"  # a CSV run: its CSV
        ax.plot(steps, loss, "o-", label=f"eval loss ({on})")
    train_batch = next((r.get("batch_size") for r in records if r.get("kind") == "train"), None)
    if train_batch:
        ax.axhline(np.log(train_batch), ls=":", c="gray", label=f"chance = ln({train_batch})")
    ax.set_xlabel("step")
    ax.set_ylabel("contrastive loss")
    ax.legend()
    ax.set_title("loss")
    return _save(fig, path)


def plot_lr_temperature(records, path):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    steps, lr = _series(records, "train", "lr")
    ax.plot(steps, lr, c="tab:blue")
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate", color="tab:blue")
    ax2 = ax.twinx()
    steps, temp = _series(records, "train", "temperature")
    ax2.plot(steps, temp, c="tab:red")
    ax2.set_ylabel("temperature tau = exp(-logit_scale)", color="tab:red")
    ax2.set_yscale("log")
    ax.set_title("schedule and learned temperature")
    return _save(fig, path)


def plot_zero_shot(records, path):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label, color in (("zeroshot_top1_all", "top-1, all names", "tab:blue"),
                              ("zeroshot_top1_heldout", "top-1, held-out pairs", "tab:orange"),
                              ("zeroshot_top5_all", "top-5, all names", "tab:green")):
        final_steps, final_acc = _series(records, "final", key)  # the final evaluation, on a larger fresh set
        steps, acc = _series(records, "eval", key)
        if len(final_acc):
            label += f" (final {100 * final_acc[-1]:.1f}%)"
            # the label goes on the star when there is no periodic evaluation (a run of eval_every steps)
            ax.plot(final_steps, 100 * final_acc, "*", color=color, markersize=12,
                    label=None if len(acc) else label)
        if len(acc):
            ax.plot(steps, 100 * acc, "o-", color=color, label=label)
    ax.set_ylim(0, 102)
    ax.set_xlabel("step")
    ax.set_ylabel("zero-shot accuracy (%)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    ax.grid(alpha=0.3)
    ax.set_title("zero-shot accuracy on fresh images (star: final)")
    return _save(fig, path)


def plot_robustness(records, path):
    """Held-out style accuracy (y) against in-distribution accuracy (x) at every evaluation (Radford et al.
    2021, figure 13): on y = x a model is as good on the shifted pictures as on the familiar ones; the
    gap below the line is what a distribution shift costs it. Left: all 48 names; right: held-out pairs."""
    plt = _pyplot()
    rows = [r for r in records if r.get("kind") in ("eval", "final")]
    styles = sorted({k[len("zeroshot_top1_all_"):] for r in rows for k in r if k.startswith("zeroshot_top1_all_")})
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8))
    for ax, which, title in ((axes[0], "all", "all 48 names"), (axes[1], "heldout", "held-out pairs")):
        ax.plot([0, 100], [0, 100], ls="--", c="gray", label="y = x (no cost of the shift)")
        for style, color in zip(styles, ("tab:red", "tab:purple", "tab:green", "tab:brown")):
            points = [(r[f"zeroshot_top1_{which}"], r[f"zeroshot_top1_{which}_{style}"], r["kind"])
                      for r in rows if f"zeroshot_top1_{which}_{style}" in r]
            evals = np.array([(x, y) for x, y, kind in points if kind == "eval"]).reshape(-1, 2)
            ax.plot(100 * evals[:, 0], 100 * evals[:, 1], "o-", color=color, alpha=0.7, label=style)
            for x, y, kind in points:
                if kind == "final":
                    ax.plot(100 * x, 100 * y, "*", color=color, markersize=14)
        ax.set_xlim(0, 102)
        ax.set_ylim(0, 102)
        ax.set_aspect("equal")
        ax.set_xlabel(f"in distribution: zero-shot top-1, {title} (%)")
        ax.set_ylabel(f"held-out style: zero-shot top-1, {title} (%)")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
        ax.set_title(title)
    fig.suptitle("robustness to held-out drawing styles over training (star: final)")
    return _save(fig, path)


def plot_similarity(similarity, path, captions=None):
    plt = _pyplot()
    n = similarity.shape[0]
    fig, ax = plt.subplots(figsize=(7, 6))
    im = ax.imshow(similarity, cmap="viridis")
    fig.colorbar(im, ax=ax, label="cosine similarity")
    ax.set_xlabel("caption j")
    ax.set_ylabel("image i")
    if captions is not None and n <= 24:
        ax.set_xticks(range(n), [str(c) for c in captions], rotation=90, fontsize=6)
    ax.set_title("image-text similarity of an eval batch")
    return _save(fig, path)


def plot_confusion(confusion, classnames, path):
    plt = _pyplot()
    n = confusion.shape[0]
    fig, ax = plt.subplots(figsize=(10, 9))
    ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(n), classnames, rotation=90, fontsize=5)
    ax.set_yticks(range(n), classnames, fontsize=5)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("zero-shot confusion matrix")
    return _save(fig, path)


def plot_samples(images, captions, guesses, path, correct=None):
    """``images``: (K, R, R, 3) uint8; captions and guesses: K strings each."""
    plt = _pyplot()
    k = len(images)
    cols = min(k, 6)
    rows = (k + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.9 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= k:
            continue
        ax.imshow(images[i], interpolation="nearest")
        ok = None if correct is None else bool(correct[i])
        color = "black" if ok is None else ("tab:green" if ok else "tab:red")
        ax.set_title(f"{captions[i]}\nguess: {guesses[i]}", fontsize=7, color=color)
    fig.suptitle("samples: caption / model's top zero-shot guess")
    return _save(fig, path)


def plot_run(run_dir):
    """Redraw every plot of ``run_dir`` from its metrics.jsonl (and eval_arrays.npz). Returns the paths."""
    metrics_path = os.path.join(run_dir, METRICS_FILE)
    if not os.path.exists(metrics_path):
        raise FileNotFoundError(f"plot_run: {metrics_path} does not exist (is {run_dir!r} a run folder?)")
    records = read_metrics(metrics_path)
    out = [plot_losses(records, os.path.join(run_dir, "loss.png")),
           plot_lr_temperature(records, os.path.join(run_dir, "lr_temperature.png"))]
    if any("zeroshot_top1_all" in r for r in records):  # (a CSV run has no zero-shot classes)
        out.append(plot_zero_shot(records, os.path.join(run_dir, "zero_shot.png")))
    if any(k.startswith("zeroshot_top1_all_") for r in records for k in r):
        out.append(plot_robustness(records, os.path.join(run_dir, "robustness.png")))
    arrays_path = os.path.join(run_dir, ARRAYS_FILE)
    if os.path.exists(arrays_path):
        with np.load(arrays_path, allow_pickle=False) as a:
            if "similarity" in a:
                out.append(plot_similarity(a["similarity"], os.path.join(run_dir, "similarity.png"),
                                           a["similarity_captions"] if "similarity_captions" in a else None))
            if "confusion" in a:
                out.append(plot_confusion(a["confusion"], list(a["classnames"]),
                                          os.path.join(run_dir, "confusion.png")))
            if "sample_images" in a:
                out.append(plot_samples(a["sample_images"], list(a["sample_captions"]),
                                        list(a["sample_guesses"]), os.path.join(run_dir, "samples.png"),
                                        a["sample_correct"] if "sample_correct" in a else None))
    return out
