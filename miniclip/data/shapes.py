"""The shapes world: one colored shape per picture, drawn in one of several styles, with a caption that names it.

Shape legend:  R image side in pixels (resolution),  S supersampling factor,  N samples.

8 colors x 6 shapes = 48 "color shape" classes. Eight of those pairs (``HELD_OUT_PAIRS``) are never
drawn for training: each of their colors and each of their shapes is seen, only not together, so a
model that names a "green circle" correctly has composed "green" and "circle" -- CLIP's zero-shot
point in miniature. Evaluation reports them separately.

Styles: ``classic`` (a filled shape on a dark noisy background, drawn here) and the styles of
``styles.py`` (filled, outline, shaded, sketch on varied backgrounds, blurred, compressed, noisy).
``WORLDS`` says which styles a training world draws: "diverse" (the default; half classic) or "classic".
Two held-out styles are never drawn for training, like ImageNet-Sketch for an ImageNet model: "pixel"
(styles.py) and "matplotlib" (``plotted.py``, a separate renderer that shares no drawing code).

Every sample is a pure function of (seed, split, index) (and the styles it picks from):
``draw_sample(seed, index)`` draws the same image and caption on every machine and in every thread,
so an "infinite" world still has epochs, shuffling and reproducible batches (see ``ShapesDataset``).

Drawing (classic): the shape's outline is rasterized by Pillow as a mask at S x R pixels and
box-filtered down to R (anti-aliased edges for little cost); background and shape colors are
composited with NumPy.

Command line (``miniclip data ...``, or ``python -m miniclip.data ...``)::

    miniclip data grid shapes_grid.png [--n 32] [--seed 0] [--resolution 48] [--split held_out] [--style sketch]
    miniclip data export OUT_DIR --n 1000 [--seed 0] [--resolution 48] [--split train] [--style diverse]
"""

from __future__ import annotations

import csv
import functools
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from . import styles as _styles
from .styles import TRAIN_STYLES

# Base colors (RGB). Jitter stays well inside the gaps between them (orange between red and yellow).
COLORS = {
    "red": (225, 35, 35),
    "orange": (245, 135, 20),
    "yellow": (240, 225, 40),
    "green": (40, 190, 60),
    "cyan": (40, 215, 225),
    "blue": (45, 85, 240),
    "purple": (160, 60, 210),
    "white": (240, 240, 240),
}
COLOR_NAMES = tuple(COLORS)
SHAPES = ("circle", "square", "triangle", "diamond", "star", "cross")
SIZES = ("small", "large")
POSITIONS = ("left", "right", "top", "bottom", "center")

# Pairs that training never draws: every color and every shape appears in exactly one.
HELD_OUT_PAIRS = (("red", "triangle"), ("orange", "star"), ("yellow", "cross"), ("green", "circle"),
                  ("cyan", "square"), ("blue", "diamond"), ("purple", "star"), ("white", "triangle"))
ALL_PAIRS = tuple((c, s) for c in COLOR_NAMES for s in SHAPES)
TRAIN_PAIRS = tuple(p for p in ALL_PAIRS if p not in HELD_OUT_PAIRS)
# Zero-shot class names, label = index into this tuple (color-major).
CLASS_NAMES = tuple(f"{c} {s}" for c, s in ALL_PAIRS)
HELD_OUT_LABELS = tuple(ALL_PAIRS.index(p) for p in HELD_OUT_PAIRS)
SPLITS = {"train": TRAIN_PAIRS, "held_out": HELD_OUT_PAIRS, "all": ALL_PAIRS}

# Rendering styles. Training draws one of the styles of its world per sample; the held-out styles are
# never drawn for training (like ImageNet-Sketch for an ImageNet model): "pixel" is blocky pixel art,
# "matplotlib" a separate renderer (plotted.py: matplotlib's patches at other image sizes and aspect
# ratios, through a PNG file) that shares no drawing code with the training drawer.
HELD_OUT_STYLES = ("pixel", "matplotlib")
STYLES = TRAIN_STYLES + HELD_OUT_STYLES
# The training worlds: the styles a sample picks from, uniformly (a repeated style is picked more often).
# Half of the diverse world is the classic style: with a quarter or less, this small model took thousands
# of steps longer to start telling shapes apart (README, "The default run, and why").
WORLDS = {"diverse": ("classic",) * 4 + TRAIN_STYLES[1:], "classic": ("classic",)}

# Prompt templates for zero-shot classification (formatted with a class name, embeddings averaged).
ZERO_SHOT_TEMPLATES = ("a photo of a {}.", "a {}.", "a picture of a {}.", "there is a {} in the image.",
                       "a drawing of a {}.")

# Caption templates: always the color and the shape, sometimes the size and the position.
CAPTION_TEMPLATES = (
    "a {color} {shape}",
    "a photo of a {color} {shape}",
    "a {size} {color} {shape}",
    "a {size} {color} {shape} {where}",
    "there is a {color} {shape} {where}",
    "a {color} {shape} {where}",
    "a picture of a {size} {color} {shape}",
    "the {shape} is {color}",
    "a {color} {shape} on a dark background",
)
# In the diverse world a caption sometimes says how the shape is drawn.
STYLE_TEMPLATES = {
    "filled": ("a filled {color} {shape}",),
    "outline": ("an outline of a {color} {shape}", "a {color} {shape} outline"),
    "shaded": ("a shaded {color} {shape}",),
    "sketch": ("a sketch of a {color} {shape}", "a {size} sketch of a {color} {shape}"),
}

WHERE = {"left": "on the left", "right": "on the right", "top": "at the top", "bottom": "at the bottom",
         "center": "in the center"}

_AN = re.compile(r"\ba (?=[aeiou])")
_SPLIT_CODES = {"train": 0, "held_out": 1, "all": 2}


@dataclass(frozen=True)
class ShapeSample:
    """One drawn sample: ``image`` uint8 (R, R, 3) and what it shows."""

    image: np.ndarray
    caption: str
    color: str
    shape: str
    size: str
    position: str
    label: int  # index into CLASS_NAMES
    style: str = "classic"  # how it is drawn (STYLES)

    @property
    def class_name(self) -> str:
        return CLASS_NAMES[self.label]


def make_caption(rng: np.random.Generator, color: str, shape: str, size: str, position: str,
                 style: str = "classic", background: str = "dark") -> str:
    """A caption from a random template, e.g. "a small red circle on the left"; in the diverse world
    sometimes one that names the style ("a sketch of a blue star") or the background."""
    if style == "classic":  # the classic world
        template = CAPTION_TEMPLATES[rng.integers(len(CAPTION_TEMPLATES))]
    else:
        u = rng.uniform()
        if u < 0.35 and style in STYLE_TEMPLATES:  # held-out styles are never named
            options = STYLE_TEMPLATES[style]
            template = options[rng.integers(len(options))]
        else:  # the classic templates, except the one that would say "dark" about any background
            template = CAPTION_TEMPLATES[rng.integers(len(CAPTION_TEMPLATES) - 1)]
    caption = template.format(color=color, shape=shape, size=size, where=WHERE[position])
    return _AN.sub("an ", caption)  # "a orange star" -> "an orange star"


def shape_outline(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    """Polygon vertices (x, y) of ``shape`` with circumradius ``r`` around (cx, cy), rotated by ``angle``.

    Diamonds are rhombi (taller than wide) and squares stay near axis-aligned (small rotations only),
    so that a rotated square never looks like a diamond.
    """
    return [tuple(p) for p in _outline_points(shape, cx, cy, r, angle).tolist()]


def _outline_points(shape: str, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    """``shape_outline`` as an array (V, 2)."""
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    return _unit_outline(shape) @ rot.T * r + np.array([cx, cy])  # (V, 2)


@functools.lru_cache(maxsize=None)
def _unit_outline(shape: str) -> np.ndarray:
    """The vertices (V, 2) of ``shape`` with circumradius 1 around (0, 0): the same for every sample,
    so made once (read-only: they are shared)."""
    if shape == "circle":
        return _styles.unit_circle()  # (48, 2)
    if shape == "square":
        pts = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * 0.75
    elif shape == "diamond":
        pts = np.array([[0, -1], [0.62, 0], [0, 1], [-0.62, 0]])
    elif shape == "triangle":
        t = -np.pi / 2 + np.arange(3) * 2 * np.pi / 3
        pts = np.stack([np.cos(t), np.sin(t)], axis=1) * 1.05  # (3, 2), apex up before rotation
    elif shape == "star":
        radius = np.where(np.arange(10) % 2 == 0, 1.0, 0.42)
        pts = _styles.star_directions() * radius[:, None]  # (10, 2)
    elif shape == "cross":
        a, b = 0.85, 0.3  # arm half-length, arm half-width
        pts = np.array([[-b, -a], [b, -a], [b, -b], [a, -b], [a, b], [b, b], [b, a], [-b, a], [-b, b],
                        [-a, b], [-a, -b], [-b, -b]])
    else:
        raise ValueError(f"unknown shape {shape!r}, expected one of {SHAPES}")
    pts.flags.writeable = False
    return pts


# Rotation range per shape (radians): the full turn where the shape has no preferred orientation worth
# naming, small tilts where rotating would change the name (square <-> diamond), none for circles.
_MAX_ROTATION = {"circle": 0.0, "square": math.radians(15), "diamond": math.radians(15),
                 "triangle": math.pi, "star": math.pi, "cross": math.radians(20)}


def draw_sample(seed: int, index: int, resolution: int = 48, split: str = "train",
                styles: tuple = None) -> ShapeSample:
    """Sample ``index`` of the world with ``seed``: a pure function of its arguments.

    split: "train" draws the 40 training pairs, "held_out" only ``HELD_OUT_PAIRS``, "all" all 48.
    styles: the rendering styles to pick from, uniformly, one per sample: ``WORLDS["diverse"]`` (half
    classic, half the new styles of ``styles.py``), ``("classic",)`` (one style: a filled shape on a dark
    noisy background), or a held-out style for evaluation (``"pixel"``; ``"matplotlib"``: ``plotted.py``).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
    if not isinstance(resolution, (int, np.integer)) or resolution < 8:
        raise ValueError(f"resolution must be an int >= 8 pixels, got {resolution!r}")
    styles = WORLDS["diverse"] if styles is None else tuple(styles)
    unknown = [s for s in styles if s not in STYLES]
    if not styles or unknown:
        raise ValueError(f"styles must be a non-empty tuple of {STYLES}, got {styles!r}")
    rng = np.random.default_rng([int(seed), _SPLIT_CODES[split], int(index)])
    pairs = SPLITS[split]
    color, shape = pairs[rng.integers(len(pairs))]
    size = SIZES[rng.integers(2)]
    position = POSITIONS[rng.integers(len(POSITIONS))]
    style = styles[rng.integers(len(styles))] if len(styles) > 1 else styles[0]
    if style == "matplotlib":
        from .plotted import draw_plotted  # the independent renderer: its own randomness, its own sizes
        image = draw_plotted(seed, index, color, shape, split)
        caption = _AN.sub("an ", f"a {color} {shape}")
    elif style == "classic":
        image = _draw_classic(rng, color, shape, size, position, resolution)
        caption = make_caption(rng, color, shape, size, position, "classic" if len(set(styles)) == 1 else "mixed")
    else:
        image, back = _styles.draw(style, shape, color, size, position, resolution, rng)
        caption = make_caption(rng, color, shape, size, position, style, back)
    return ShapeSample(image=image, caption=caption, color=color, shape=shape, size=size, position=position,
                       label=ALL_PAIRS.index((color, shape)), style=style)


def _draw_classic(rng, color, shape, size, position, R):
    """The classic style: a filled shape, its color near one anchor, on a dark noisy gradient."""
    # Geometry in pixels: circumradius by size; the center pushed toward the named side.
    r = R * (rng.uniform(0.12, 0.16) if size == "small" else rng.uniform(0.25, 0.30))
    margin = R * rng.uniform(0.02, 0.06)
    cx, cy = _styles.center_toward(position, R, r, margin, R * rng.uniform(-0.05, 0.05, size=2))
    angle = rng.uniform(-1, 1) * _MAX_ROTATION[shape]

    # Mask: the fraction of each pixel the polygon covers (rasterized at S*R, S x S blocks averaged).
    alpha = _styles.coverage(_outline_points(shape, cx, cy, r, angle), R)  # (R, R)

    # Colors are mixed one channel plane at a time, (3, R, R): NumPy runs each operation over whole
    # R x R planes, where a trailing axis of 3 would make it loop three numbers at a time.
    # Background: a dark gradient between two random dark colors plus Gaussian noise.
    dark = rng.uniform(0, 70, size=(2, 3, 1, 1)).astype(np.float32)  # two RGB endpoints
    background = dark[0] + (dark[1] - dark[0]) * _styles.ramp(rng, R)  # (3, R, R)

    # Shape color: base color, brightness x [0.9, 1.05], per-channel shift +-10 (more makes a dark
    # yellow closer to orange than to yellow: the caption would lie).
    base = np.array(COLORS[color], dtype=np.float32)
    fill = base * rng.uniform(0.9, 1.05) + rng.uniform(-10, 10, size=3)

    noise = rng.standard_normal((R, R, 3), dtype=np.float32) * np.float32(rng.uniform(3, 12))
    image = (background * (1 - alpha) + fill[:, None, None] * alpha).transpose(1, 2, 0) + noise  # (R, R, 3)
    return np.clip(image, 0, 255).round().astype(np.uint8)


class ShapesDataset:
    """``size`` samples of the world: item i is ``draw_sample(seed, i, resolution, split)``, drawn on access.

    Nothing is stored, so a dataset of a million samples costs nothing until read; the loader shuffles
    indices, so each epoch sees the same samples in a new order (use a larger ``size`` or a new ``seed``
    for fresh draws). Items are ``(image uint8 (R, R, 3), caption, label)``, the loader's protocol.
    """

    def __init__(self, size: int, seed: int = 0, resolution: int = 48, split: str = "train",
                 styles: tuple = None):
        if not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"size must be a positive int, got {size!r}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
        self.size, self.seed, self.resolution, self.split = int(size), int(seed), resolution, split
        self.styles = WORLDS["diverse"] if styles is None else tuple(styles)

    def __len__(self) -> int:
        return self.size

    def sample(self, index: int) -> ShapeSample:
        if not -self.size <= index < self.size:
            raise IndexError(f"index {index} out of range for ShapesDataset of size {self.size}")
        return draw_sample(self.seed, index % self.size, self.resolution, self.split, self.styles)

    def __getitem__(self, index: int):
        s = self.sample(index)
        return s.image, s.caption, s.label

    def __repr__(self) -> str:
        return (f"ShapesDataset(size={self.size}, seed={self.seed}, resolution={self.resolution}, "
                f"split={self.split!r}, styles={self.styles!r})")


def styles_named(name: str) -> tuple:
    """The styles of a world ("diverse", "classic") or the one style ``name``."""
    if name in WORLDS:
        return WORLDS[name]
    if name in STYLES:
        return (name,)
    raise ValueError(f"style must be a world {tuple(WORLDS)} or a style {STYLES}, got {name!r}")


def export_samples(out_dir, n: int, seed: int = 0, resolution: int = 48, split: str = "train",
                   style: str = "diverse") -> Path:
    """Write ``n`` samples as PNGs plus ``captions.csv`` (open_clip's columns ``filepath``, ``title``,
    with ``color``, ``shape``, ``size``, ``position``, ``label`` beside them). Returns the CSV path."""
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "captions.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["filepath", "title", "color", "shape", "size", "position", "label"])
        for i in range(n):
            s = draw_sample(seed, i, resolution, split, styles_named(style))
            rel = f"images/{i:06d}.png"
            Image.fromarray(s.image).save(out_dir / rel)
            writer.writerow([rel, s.caption, s.color, s.shape, s.size, s.position, s.label])
    return csv_path


def save_sample_grid(path, n: int = 32, seed: int = 0, resolution: int = 48, split: str = "train",
                     columns: int = 8, scale: int = 3, style: str = "diverse") -> Path:
    """Save a PNG grid of ``n`` samples (each enlarged ``scale`` x, nearest neighbour) with their captions."""
    from matplotlib.figure import Figure  # a bare Figure renders with Agg and leaves pyplot's state alone

    rows = math.ceil(n / columns)
    fig = Figure(figsize=(columns * 1.9, rows * 2.3))
    axes = fig.subplots(rows, columns, squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            s = draw_sample(seed, k, resolution, split, styles_named(style))
            ax.imshow(np.kron(s.image, np.ones((scale, scale, 1), dtype=np.uint8)), interpolation="nearest")
            ax.set_title(_wrap(s.caption, 22), fontsize=7)
    fig.suptitle(f"shapes world: {style}, split={split}, seed={seed}, {resolution}px", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    return path


def _wrap(text: str, width: int) -> str:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join(lines + [line])


GRID_FILE = "shapes_grid.png"  # the file `data grid DIR` writes inside a folder


def add_data_commands(sub):
    """Add ``grid`` and ``export`` to an argparse subparsers object (used by ``miniclip data``)."""
    grid = sub.add_parser("grid", help="save a PNG grid of samples with their captions")
    grid.add_argument("out", help=f"output PNG path, or a folder to write {GRID_FILE} into")
    grid.add_argument("--n", type=int, default=32, help="number of samples (default 32)")
    export = sub.add_parser("export", help="write N samples as PNGs plus captions.csv")
    export.add_argument("out", help="output folder (new or empty)")
    export.add_argument("--n", type=int, required=True, help="number of samples")
    for p in (grid, export):
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--resolution", type=int, default=48)
        p.add_argument("--split", choices=tuple(SPLITS), default="train",
                       help="train (never the held-out pairs), held_out, or all")
        p.add_argument("--style", choices=tuple(WORLDS) + STYLES, default="diverse",
                       help="a world (diverse: the training styles mixed; classic) or one style; "
                            f"held-out styles: {', '.join(HELD_OUT_STYLES)} (default: diverse)")


def run_data_command(args):
    """Run a parsed ``grid`` / ``export`` command; prints the path written. Refuses (ValueError,
    FileExistsError) what would write nothing or mix with earlier files: ``--n`` below 1, a grid
    file name matplotlib cannot save, an export into a folder that is not empty."""
    if args.n < 1:
        raise ValueError(f"--n: expected an integer >= 1, got {args.n}")
    out = Path(args.out)
    if args.data_command == "grid":
        if out.is_dir():  # a folder: the grid goes inside it
            out = out / GRID_FILE
        if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".pdf", ".svg"):
            raise ValueError(f"{args.out}: expected an image file name ending in .png (or .jpg, .pdf, .svg) "
                             f"or a folder, got {args.out!r}")
        print(save_sample_grid(out, n=args.n, seed=args.seed, resolution=args.resolution, split=args.split,
                               style=args.style))
    else:
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise FileExistsError(f"{args.out} is {'not empty' if out.is_dir() else 'a file'}; `data export` "
                                  f"writes into a new or empty folder, so that its CSV and PNGs always match")
        print(export_samples(out, args.n, seed=args.seed, resolution=args.resolution, split=args.split,
                             style=args.style))
    return 0


def main(argv=None) -> None:
    import argparse
    parser = argparse.ArgumentParser(prog="python -m miniclip.data", description=__doc__.split("\n")[0])
    add_data_commands(parser.add_subparsers(dest="data_command", required=True))
    run_data_command(parser.parse_args(argv))
