"""Evaluating a training run, every ``eval_every`` steps and at the end.

A shapes run is evaluated on images drawn fresh at each evaluation (never training images: another
seed, other splits): zero-shot top-1/top-5 over the 48 color-shape names, the 8 held-out pairs that
training never shows, each held-out rendering style (robustness to a shift, chapter 10), the eval
loss on one batch and retrieval recall@k. A CSV run is evaluated on its ``--val-data`` rows:
retrieval recall@k and the eval loss. The metrics themselves are ``zeroshot.py``'s; ``miniclip eval``
evaluates a saved model the same way (``saved.py``).

Shape legend: B batch, R image resolution, T context length, L classes.
"""

import numpy as np

from .. import ops
from ..autograd import Tensor, no_grad
from ..tokenizer import ContextTokenizer
from .retrieval import image_text_similarity, retrieval_metrics
from .zeroshot import classifier_accuracy, zero_shot_accuracy, zero_shot_classifier

# Evaluation images come from a seed far from the training one (and from other splits), so they are
# never training images.
EVAL_SEED_OFFSET = 1_000_003
FINAL_EVAL_SEED_OFFSET = 2_000_003
RETRIEVAL_PAIRS = 256  # the retrieval gallery of a shapes evaluation
# CSV runs: --val-data pairs used at each evaluation, and at the final one (as ``miniclip eval --data``)
CSV_EVAL_PAIRS = 256
CSV_FINAL_EVAL_PAIRS = 1000


def _shapes():
    from ..data import shapes  # imported lazily: the data layer pulls in Pillow
    return shapes


class RunEvaluation:
    """The evaluations of a run in progress: ``evaluate(step)`` on the run's evaluation sets (fresh
    shapes images drawn once, or the first ``--val-data`` rows), ``evaluate(step, final=True)`` on a
    larger fresh set. Each returns ``(record, arrays)``, or None for a CSV run without ``--val-data``."""

    def __init__(self, model, tokenizer, config, preprocess, val_dataset=None):
        self.model, self.tokenizer, self.config, self.preprocess = model, tokenizer, config, preprocess
        self.val_dataset = val_dataset
        self.eval_sets = None
        if config.train_data is None:
            self.eval_sets = shapes_eval_sets(config, config.eval_images, config.eval_heldout_images,
                                              config.seed + EVAL_SEED_OFFSET, preprocess)

    def __call__(self, step, final=False):
        """The evaluation at ``step``, with the model in eval mode (a ResNet's BatchNorm then uses its
        running statistics, as ``miniclip.load`` will) and back in training mode afterwards."""
        self.model.eval()
        try:
            return self._evaluate(final)
        finally:
            self.model.train()

    def _evaluate(self, final):
        config = self.config
        if self.eval_sets is None:
            if self.val_dataset is None:
                return None
            return evaluate_csv(self.model, self.tokenizer, config, self.val_dataset, self.preprocess,
                                n=CSV_FINAL_EVAL_PAIRS if final else CSV_EVAL_PAIRS)
        if final:
            sets = shapes_eval_sets(config, config.final_eval_images, config.final_eval_heldout_images,
                                    config.seed + FINAL_EVAL_SEED_OFFSET, self.preprocess)
        else:
            sets = dict(self.eval_sets)
        in_distribution = sets.pop("")
        return evaluate_shapes(self.model, self.tokenizer, config, *in_distribution, batch_size=256, style_sets=sets)


def shapes_eval_set(n, seed, resolution, split, preprocess, styles=None):
    """``n`` freshly drawn shapes samples in ``styles`` (default: the diverse world's): (images (n, 3, R, R),
    labels (n,), captions, uint8 images when they all have the model's size)."""
    shapes = _shapes()
    styles = shapes.WORLDS["diverse"] if styles is None else styles
    samples = [shapes.draw_sample(seed, i, resolution, split, styles) for i in range(n)]
    images = np.stack([preprocess(s.image) for s in samples])  # (n, 3, R, R): any picture size, as a user's file
    same_size = all(s.image.shape == (resolution, resolution, 3) for s in samples)
    return {"images": images, "labels": np.array([s.label for s in samples]),
            "captions": [s.caption for s in samples],
            "pixels": np.stack([s.image for s in samples]) if same_size else None}


def shapes_eval_sets(config, n_all, n_heldout, seed, preprocess):
    """The evaluation sets of a shapes run: ``{"": (all names, held-out pairs)}`` in the training world's
    styles (in distribution), and the same for each held-out style, half as many images each."""
    shapes = _shapes()

    def pair(styles, n, m):
        return (shapes_eval_set(n, seed, config.image_resolution, "all", preprocess, styles),
                shapes_eval_set(m, seed, config.image_resolution, "held_out", preprocess, styles))

    sets = {"": pair(shapes.WORLDS[config.world], n_all, n_heldout)}
    for style in shapes.HELD_OUT_STYLES:
        sets[style] = pair((style,), max(1, n_all // 2), max(1, n_heldout // 2))
    return sets


def evaluate_shapes(model, tokenizer, config, all_set, heldout_set, batch_size, retrieval_pairs=RETRIEVAL_PAIRS,
                    style_sets=None):
    """Zero-shot top-1/top-5 over the 48 names (all images; held-out images separately), the
    eval loss on one batch of pairs, and retrieval recall@k on ``retrieval_pairs`` image-caption pairs.

    ``style_sets``: ``{style: (all_set, heldout_set)}`` of held-out rendering styles; adds
    ``zeroshot_top1_all_<style>`` and ``zeroshot_top1_heldout_<style>`` (robustness to a shift).
    """
    if config.objective == "supervised":
        return evaluate_supervised(model, all_set, heldout_set, batch_size, style_sets)
    shapes = _shapes()
    tok = ContextTokenizer(tokenizer, config.context_length)
    classifier = zero_shot_classifier(model, tok, shapes.CLASS_NAMES, shapes.ZERO_SHOT_TEMPLATES)
    zs_all = zero_shot_accuracy(model, all_set["images"], all_set["labels"], classifier, batch_size)
    zs_held = zero_shot_accuracy(model, heldout_set["images"], heldout_set["labels"], classifier, batch_size)
    n_pairs = min(retrieval_pairs, len(all_set["captions"]))
    tokens = tok(all_set["captions"][:n_pairs])
    similarity = image_text_similarity(model, all_set["images"][:n_pairs], tokens, batch_size)
    record = {"zeroshot_top1_all": zs_all["top1"], "zeroshot_top5_all": zs_all["top5"],
              "zeroshot_top1_heldout": zs_held["top1"], "zeroshot_top5_heldout": zs_held["top5"]}
    for style, (style_all, style_held) in (style_sets or {}).items():
        for name, data in (("all", style_all), ("heldout", style_held)):
            record[f"zeroshot_top1_{name}_{style}"] = zero_shot_accuracy(
                model, data["images"], data["labels"], classifier, batch_size)["top1"]
    record["eval_loss"] = eval_loss(model, all_set["images"], tokens, config, config.batch_size)
    record.update({f"retrieval_{k}": v for k, v in retrieval_metrics(similarity).items()})
    arrays = {"similarity": similarity[:32, :32], "similarity_captions": np.array(all_set["captions"][:32]),
              "confusion": zs_all["confusion"], "classnames": np.array(shapes.CLASS_NAMES)}
    # a sample grid: 6 images of all names, 6 of held-out pairs, with the model's top guess
    picks = [(s, z, i) for s, z in ((all_set, zs_all), (heldout_set, zs_held)) for i in range(min(6, len(s["labels"])))]
    arrays["sample_images"] = np.stack([s["pixels"][i] for s, _, i in picks])
    arrays["sample_captions"] = np.array([s["captions"][i] for s, _, i in picks])
    arrays["sample_guesses"] = np.array([shapes.CLASS_NAMES[z["predictions"][i]] for _, z, i in picks])
    arrays["sample_correct"] = np.array([z["predictions"][i] == s["labels"][i] for s, z, i in picks])
    return record, arrays


def evaluate_supervised(model, all_set, heldout_set, batch_size, style_sets=None):
    """The supervised baseline's evaluation, on the same images as ``evaluate_shapes``: top-1/top-5 of
    its learned head over the 48 names (``supervised_top1_all``, ``supervised_top1_heldout``, per held-out
    style ``supervised_top1_all_<style>``...) and the cross-entropy of the in-distribution images."""
    shapes = _shapes()
    acc = {"all": classifier_accuracy(model, all_set["images"], all_set["labels"], batch_size),
           "heldout": classifier_accuracy(model, heldout_set["images"], heldout_set["labels"], batch_size)}
    record = {f"supervised_top{k}_{name}": a[f"top{k}"] for name, a in acc.items() for k in (1, 5)}
    for style, (style_all, style_held) in (style_sets or {}).items():
        for name, data in (("all", style_all), ("heldout", style_held)):
            record[f"supervised_top1_{name}_{style}"] = classifier_accuracy(
                model, data["images"], data["labels"], batch_size)["top1"]
    logits = acc["all"]["logits"]
    with no_grad():
        record["eval_loss"] = float(ops.cross_entropy(Tensor(logits), all_set["labels"]).item())
    arrays = {"confusion": acc["all"]["confusion"], "classnames": np.array(shapes.CLASS_NAMES)}
    return record, arrays


def supervised_line(record):
    """The evaluation line of a supervised-baseline run."""
    styles = [k[len("supervised_top1_all_"):] for k in record if k.startswith("supervised_top1_all_")]
    parts = "".join(f", {style} {100 * record[f'supervised_top1_all_{style}']:.1f}% / "
                    f"{100 * record[f'supervised_top1_heldout_{style}']:.1f}%" for style in styles)
    return (f"step {record['step']:>5}: eval loss {record['eval_loss']:.3f} | supervised top-1 all 48 names "
            f"{100 * record['supervised_top1_all']:.1f}% (top-5 {100 * record['supervised_top5_all']:.1f}%) | "
            f"held-out pairs {100 * record['supervised_top1_heldout']:.1f}% (never seen labeled)"
            + (f" | held-out styles (all / pairs): {parts[2:]}" if parts else ""))


def eval_line(r):
    """The line a run prints for an evaluation record ``r``."""
    if "supervised_top1_all" in r:
        return supervised_line(r)
    return (f"step {r['step']:>5}: eval loss {r['eval_loss']:.3f} | zero-shot top-1 all 48 names "
            f"{100 * r['zeroshot_top1_all']:.1f}% (top-5 {100 * r['zeroshot_top5_all']:.1f}%) | held-out pairs "
            f"{100 * r['zeroshot_top1_heldout']:.1f}% |{held_out_styles_text(r)} retrieval R@1 i->t "
            f"{100 * r['retrieval_image_to_text_R@1']:.1f}% t->i {100 * r['retrieval_text_to_image_R@1']:.1f}%"
            if "zeroshot_top1_all" in r else
            f"step {r['step']:>5}: eval loss {r['eval_loss']:.3f} | retrieval R@1/5/10 on {r['val_pairs']} "
            f"--val-data pairs: i->t {recalls(r, 'image_to_text')}% t->i {recalls(r, 'text_to_image')}%")


def eval_loss(model, images, tokens, config, batch_size):
    """The training loss on the first ``batch_size`` eval pairs (the loss depends on the batch size)."""
    n = min(batch_size, len(tokens))
    with no_grad():
        loss = config.loss_fn()(*model(images[:n], tokens[:n]))
    return float(loss.item())


def held_out_styles_text(record):
    """" held-out styles (all / pairs): pixel 93.1% / 88.0%, matplotlib ... |" for an evaluation line."""
    styles = [k[len("zeroshot_top1_all_"):] for k in record if k.startswith("zeroshot_top1_all_")]
    if not styles:
        return ""
    parts = [f"{style} {100 * record[f'zeroshot_top1_all_{style}']:.1f}% / "
             f"{100 * record[f'zeroshot_top1_heldout_{style}']:.1f}%" for style in styles]
    return " held-out styles (all / pairs): " + ", ".join(parts) + " |"


def recalls(record, direction):
    """``"12.5/40.0/60.0"``: recall@1/5/10 of ``direction`` ("image_to_text" or "text_to_image") in percent."""
    return "/".join(f"{100 * record[f'retrieval_{direction}_R@{k}']:.1f}" for k in (1, 5, 10))


def check_held_out(train_dataset, val_dataset):
    """Refuse --val-data that shares images with --train-data: retrieval on training pairs is no validation."""
    from ..data import CsvDataError
    trained = {p.resolve() for p in train_dataset.paths}
    shared = [line for p, line in zip(val_dataset.paths, val_dataset.lines) if p.resolve() in trained]
    if shared:
        raise CsvDataError(f"{val_dataset.csv_path}: {len(shared)} of {len(val_dataset)} rows use images of "
                           f"--train-data {train_dataset.csv_path} (first: line {shared[0]}); validation pairs "
                           f"must be kept out of training")


def evaluate_csv(model, tokenizer, config, dataset, preprocess, n=CSV_EVAL_PAIRS):
    """Retrieval recall@k and the eval loss on the first ``n`` rows of a validation CSV (``--val-data``
    during training, ``miniclip eval --data`` after): pairs the model never trained on."""
    n = min(n, len(dataset))
    images = np.stack([preprocess(dataset[i][0]) for i in range(n)])
    captions = [dataset[i][1] for i in range(n)]
    tok = ContextTokenizer(tokenizer, config.context_length)
    tokens = tok(captions)  # (n, T): every caption fits (CsvDataset checked it with this tokenizer)
    similarity = image_text_similarity(model, images, tokens)
    record = {"val_pairs": n, "eval_loss": eval_loss(model, images, tokens, config, config.batch_size)}
    record.update({f"retrieval_{k}": v for k, v in retrieval_metrics(similarity).items()})
    return record, {"similarity": similarity[:32, :32], "similarity_captions": np.array(captions[:32])}
