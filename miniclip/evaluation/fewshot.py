"""Is zero-shot good? Linear probes and few-shot probes of a trained CLIP on the shapes world.

The paper's comparison (Radford et al. 2021, sections 3.1.5 and 3.2, figures 6 and 10): freeze the
image encoder, draw labeled images, and fit a linear classifier (``probe.py``) on their features

    features = model.encode_image(images)                  (N, E), not normalized

with k labeled images per class, k in {1, 2, 4, 8, 16, all}. Zero-shot needs *no* labeled image;
the number of labels per class at which the probe catches up with it is what zero-shot is worth.

The images (drawn fresh from the shapes world, from seeds that training never used):

    train pool   split "train": the 40 pairs training showed, ``pool`` images
    validation   split "train", other seeds, ``val`` images: chooses the L2 strength (every k uses
                 the full validation split, which is generous to the probe at small k)
    test         split "train", other seeds, ``test`` images: probe and zero-shot scored on the same images
    held-out     split "held_out": the 8 pairs training never drew, ``heldout`` images

A probe can only name a class it saw labeled: trained on the 40 training pairs, it scores 0% on
the held-out pairs by construction, where zero-shot composes a name it never saw drawn.

Shape legend: N images, E embedding dim, L classes.
"""

import numpy as np

from .zeroshot import _encode, zero_shot_accuracy, zero_shot_classifier
from .probe import few_shot_subset, select_l2

SHOTS = (1, 2, 4, 8, 16, None)          # None: every image of the pool
PROBE_SEED_OFFSET = 3_000_017            # far from the training and evaluation seeds


def world_styles(path):
    """The drawing styles of the world the model at ``path`` was trained on: a miniclip run's
    ``world`` (classic for runs from before there was a choice); for any other model, the diverse world."""
    from ..api import is_miniclip_checkpoint
    from ..training.checkpoint import load_checkpoint
    from ..data.shapes import WORLDS
    if not is_miniclip_checkpoint(path):
        return WORLDS["diverse"]
    return WORLDS[(load_checkpoint(path).config or {}).get("world", "classic")]


def shapes_features(model, preprocess, n, seed, split, resolution, styles=None, batch_size=256):
    """Features (n, E) float64 and labels (n,) of ``n`` fresh shapes images of ``split`` in ``styles``
    (default: the diverse world's)."""
    from .runs import shapes_eval_set
    images = shapes_eval_set(n, seed, resolution, split, preprocess, styles)
    features = _encode(model.encode_image, images["images"], batch_size).astype(np.float64)
    return features, images["labels"], images["images"]


def probe_data(model, preprocess, resolution, seed=0, pool=4800, val=1200, test=2400, heldout=800, styles=None):
    """The four sets of the module docstring, drawn in ``styles`` (the model's world; default the
    diverse one): {name: (features, labels, images)}."""
    base = seed + PROBE_SEED_OFFSET
    return {"pool": shapes_features(model, preprocess, pool, base, "train", resolution, styles),
            "val": shapes_features(model, preprocess, val, base + 1, "train", resolution, styles),
            "test": shapes_features(model, preprocess, test, base + 2, "train", resolution, styles),
            "heldout": shapes_features(model, preprocess, heldout, base + 3, "held_out", resolution, styles)}


def zero_shot_on(model, tokenizer, data):
    """Zero-shot top-1 among all 48 names on the test and held-out images of ``probe_data``."""
    from ..data.shapes import CLASS_NAMES, ZERO_SHOT_TEMPLATES
    classifier = zero_shot_classifier(model, tokenizer, CLASS_NAMES, ZERO_SHOT_TEMPLATES)
    return {name: zero_shot_accuracy(model, data[name][2], data[name][1], classifier)["top1"]
            for name in ("test", "heldout")}


def linear_probe(data, shots=None, seed=0):
    """Fit one probe on ``shots`` images per class of the pool (all when None), L2 chosen on val.

    Returns {"shots", "l2", "train", "val", "test", "heldout"}: accuracies in [0, 1].
    """
    features, labels, _ = data["pool"]
    picks = few_shot_subset(labels, shots, np.random.default_rng([seed, shots or 0]))
    probe, _ = select_l2(features[picks], labels[picks], *data["val"][:2])
    return {"shots": shots, "l2": probe.l2, "train": probe.accuracy(features[picks], labels[picks]),
            **{name: probe.accuracy(*data[name][:2]) for name in ("val", "test", "heldout")}}


def few_shot_curve(data, shots=SHOTS, seeds=5):
    """Test accuracy per number of labels per class: {k: (mean, std, [one value per seed])}.

    Every k < all is repeated with ``seeds`` different draws of its labeled images; "all" once.
    A k larger than the pool's smallest class is left out of the result (``probe_checkpoint``
    names it).
    """
    smallest_class = min(np.sum(data["pool"][1] == c) for c in np.unique(data["pool"][1]))
    curve = {}
    for k in shots:
        if k is not None and k > smallest_class:
            continue                     # the pool cannot give k of every class; the caller reports it
        values = [linear_probe(data, k, seed)["test"] for seed in range(seeds if k is not None else 1)]
        curve[k] = (float(np.mean(values)), float(np.std(values)), values)
    return curve


def plot_few_shot(curve, zero_shot, pool_per_class, path):
    """``fewshot.png``: probe test accuracy against labels per class, zero-shot as horizontal lines."""
    from .plots import _pyplot, _save
    ks = list(curve)
    x = [k if k is not None else pool_per_class for k in ks]
    mean = np.array([curve[k][0] for k in ks]) * 100
    std = np.array([curve[k][1] for k in ks]) * 100
    fig, ax = _pyplot().subplots(figsize=(6.4, 4.2))
    ax.errorbar(x, mean, yerr=std, marker="o", capsize=3, label="linear probe (mean ± std over seeds)")
    ax.axhline(zero_shot["test"] * 100, color="C1", linestyle="--",
               label=f"zero-shot, 0 labels ({zero_shot['test'] * 100:.1f}%)")
    ax.axhline(zero_shot["heldout"] * 100, color="C2", linestyle=":",
               label=f"zero-shot on held-out pairs ({zero_shot['heldout'] * 100:.1f}%)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(x, [str(k) if k is not None else f"all\n({pool_per_class})" for k in ks])
    ax.set_xlabel("labeled images per class (training pairs)")
    ax.set_ylabel("top-1 accuracy on fresh images (%)")
    ax.set_ylim(0, 100)
    ax.set_title("How many labels is zero-shot worth?", fontsize=10)
    ax.text(0.98, 0.03, "a probe never saw the held-out pairs labeled:\nit scores 0% on them at every k",
            transform=ax.transAxes, ha="right", va="bottom", fontsize=8, color="C2")
    ax.legend(loc="center right", fontsize=8)
    return _save(fig, path)


def probe_checkpoint(path, shots=None, seed=0, few_shot=False, seeds=5, plot=None, sizes=None):
    """What ``miniclip probe`` prints: one probe (``shots`` labels per class), zero-shot on the same
    images, and with ``few_shot`` the whole curve (drawn to ``plot``, default ``fewshot.png`` beside
    the model). ``sizes`` overrides ``probe_data``'s set sizes (dict). Returns a dict of results."""
    import os

    from ..api import load, resolve_model_path
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    path = resolve_model_path(path)
    model, preprocess, tokenizer = load(path)
    data = probe_data(model, preprocess, preprocess.resolution, seed=seed, styles=world_styles(path),
                      **(sizes or {}))
    result = {"model": path, **{f"{name}_images": len(data[name][1]) for name in data},
              **linear_probe(data, shots, seed)}
    if hasattr(model, "head"):  # the supervised baseline: no text encoder; its own head on the same images
        from .zeroshot import classifier_accuracy
        zero_shot = None
        result.update({f"head_{name}": classifier_accuracy(model, data[name][2], data[name][1])["top1"]
                       for name in ("test", "heldout")})
    else:
        zero_shot = zero_shot_on(model, tokenizer, data)
        result.update({"zeroshot_test": zero_shot["test"], "zeroshot_heldout": zero_shot["heldout"]})
    if few_shot:
        if zero_shot is None:
            raise ValueError("--few-shot compares probes with zero-shot, which the supervised baseline cannot do "
                             "(it has no text encoder); probe it without --few-shot")
        curve = few_shot_curve(data, seeds=seeds)
        result["few_shot"] = {("all" if k is None else str(k)): {"mean": m, "std": s, "runs": v}
                              for k, (m, s, v) in curve.items()}
        result["few_shot_left_out"] = [k for k in SHOTS if k not in curve]
        per_class = len(data["pool"][1]) // len(np.unique(data["pool"][1]))
        plot = plot or os.path.join(folder, "fewshot.png")
        result["plot"] = plot_few_shot(curve, zero_shot, per_class, plot)
    return result
