"""What the apps' tests share: a tiny model that has learned the shapes world's colors, and a folder of shapes.

The model (resolution 16, one layer per encoder, 400 steps of 64 pairs, ~15 s on one core) names the
color of a shape reliably (8 of 8 colors for a filled disk drawn on black) but not yet the shape: its
zero-shot top-1 over the 48 names is ~30%, top-5 ~90%. The tests assert colors, never shapes.
"""

import csv
import os

from miniclip.data.shapes import export_samples
from miniclip.training import TrainConfig, train

COLOR_MODEL = dict(steps=400, batch_size=64, lr=2e-3, warmup_steps=30, image_resolution=16, vision_patch_size=8,
                   vision_width=48, vision_layers=1, vision_heads=1, transformer_width=48, transformer_layers=1,
                   transformer_heads=1, embed_dim=32, vocab_size=600, context_length=16, init_temperature=0.2,
                   eval_every=400, checkpoint_every=400, eval_images=48, eval_heldout_images=16,
                   final_eval_images=48, final_eval_heldout_images=16, threads=1, progress=False, plots=False)


def train_color_model(run_dir):
    """Train the tiny model into ``run_dir`` (a run folder); returns its path."""
    train(TrainConfig(out=str(run_dir), **COLOR_MODEL), log=lambda *a, **k: None)
    return str(run_dir)


def shapes_folder(out_dir, n=40, seed=3):
    """``n`` exported shapes-world PNGs under ``out_dir/images``; returns (images folder, {file name: color})."""
    csv_path = export_samples(out_dir, n=n, seed=seed, resolution=32, split="all")
    with open(csv_path, newline="") as f:
        colors = {os.path.basename(row["filepath"]): row["color"] for row in csv.DictReader(f)}
    return os.path.join(str(out_dir), "images"), colors
