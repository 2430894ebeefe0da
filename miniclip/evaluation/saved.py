"""``miniclip eval``: a saved model (a run folder, model.npz, a checkpoint, a converted OpenAI file)
evaluated as its run's final evaluation was (``runs.py``), on fresh images or on a CSV of pairs.
"""

from dataclasses import replace

from ..api import is_miniclip_checkpoint, load, resolve_model_path
from ..training.checkpoint import load_checkpoint
from ..training.config import TrainConfig
from .runs import (CSV_FINAL_EVAL_PAIRS, FINAL_EVAL_SEED_OFFSET, RETRIEVAL_PAIRS, evaluate_csv, evaluate_shapes,
                   shapes_eval_sets)


def evaluate_checkpoint(path, images=None, heldout_images=None, seed=None, data=None, csv_img_key="filepath",
                        csv_caption_key="title", csv_separator=",", skip_bad_rows=False, pairs=CSV_FINAL_EVAL_PAIRS):
    """What ``miniclip eval`` prints: zero-shot top-1/top-5 over the 48 shapes names (all, and the
    held-out pairs separately) in the world the model was trained on, top-1 on each held-out style
    (half as many images), and retrieval recall@k on fresh shapes pairs; with ``data`` (a CSV),
    retrieval recall@k on its first ``pairs`` rows instead (a model trained on a CSV needs ``data``:
    the shapes prompts are not its words). Returns a dict of metrics.

    ``images``, ``heldout_images`` and ``seed`` default to those of the run's final evaluation, so
    that, by default, the numbers are the ones of training's final line."""
    path = resolve_model_path(path)
    model, preprocess, tokenizer = load(path)
    if is_miniclip_checkpoint(path):
        ckpt_config = load_checkpoint(path).config or {}
    else:  # a converted OpenAI checkpoint has no run config: shapes at the model's resolution and context
        ckpt_config = {"image_resolution": model.image_resolution, "context_length": model.context_length}
    config = TrainConfig.from_dict({k: v for k, v in ckpt_config.items() if k != "out"})
    if data is not None:
        if isinstance(pairs, bool) or not isinstance(pairs, int) or pairs < 1:
            raise ValueError(f"--pairs: expected an integer >= 1 (CSV rows used for retrieval), got {pairs!r}")
        options = replace(config, csv_img_key=csv_img_key, csv_caption_key=csv_caption_key,
                          csv_separator=csv_separator, skip_bad_rows=skip_bad_rows)
        dataset = options.csv_dataset(data, tokenizer.tokenizer)
        record, _ = evaluate_csv(model, tokenizer.tokenizer, config, dataset, preprocess, n=pairs)
        record["pairs"] = record.pop("val_pairs")
        return {"data": str(data), **record}
    if config.train_data is not None:
        raise ValueError(f"{path} was trained on a CSV ({config.train_data}), not on the shapes world: pass "
                         f"--data VAL.csv (image-caption pairs kept out of training) for retrieval R@1/5/10")
    final = (config.final_eval_images, config.final_eval_heldout_images, config.seed + FINAL_EVAL_SEED_OFFSET)
    images, heldout_images, seed = (given if given is not None else default
                                    for given, default in zip((images, heldout_images, seed), final))
    sets = shapes_eval_sets(config, images, heldout_images, seed, preprocess)
    record, _ = evaluate_shapes(model, tokenizer.tokenizer, config, *sets.pop(""), batch_size=256, style_sets=sets)
    return {"world": config.world, "images": images, "heldout_images": heldout_images, "seed": seed,
            "style_images": max(1, images // 2), "style_heldout_images": max(1, heldout_images // 2),
            "final_images": (images, heldout_images, seed) == final, "gallery": min(RETRIEVAL_PAIRS, images),
            "loss_batch": min(config.batch_size, images), **record}
