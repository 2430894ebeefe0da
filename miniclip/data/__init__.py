"""Data in: the shapes world, CSV image-caption datasets, CLIP preprocessing, the batch loader."""

from .csv_dataset import CsvDataError, CsvDataset
from .loader import Batch, Loader
from .shapes import (CLASS_NAMES, COLOR_NAMES, COLORS, HELD_OUT_LABELS, HELD_OUT_PAIRS, HELD_OUT_STYLES, SHAPES,
                     STYLES, TRAIN_PAIRS, TRAIN_STYLES, WORLDS, ZERO_SHOT_TEMPLATES, ShapesDataset, draw_sample,
                     export_samples, save_sample_grid)
from .transforms import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, Preprocess

__all__ = ["CsvDataset", "CsvDataError", "Loader", "Batch", "Preprocess", "OPENAI_CLIP_MEAN", "OPENAI_CLIP_STD",
           "ShapesDataset", "draw_sample", "export_samples", "save_sample_grid", "CLASS_NAMES", "COLORS",
           "COLOR_NAMES", "SHAPES", "HELD_OUT_PAIRS", "HELD_OUT_LABELS", "TRAIN_PAIRS", "ZERO_SHOT_TEMPLATES",
           "STYLES", "TRAIN_STYLES", "HELD_OUT_STYLES", "WORLDS"]
