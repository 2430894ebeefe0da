"""A held-out renderer: shapes drawn by matplotlib's patches, saved as PNG and read back like a user's file.

Shape legend:  W, H image width and height in pixels (any size from 40 to 200, any aspect 0.6 to 1.7).

This file is the shapes world's "ImageNet-Sketch": it shares no drawing code with the training drawer
(``styles.py``, ``shapes.py``). Another rasterizer (matplotlib's Agg instead of Pillow), its own
palette (matplotlib's named colors: "crimson", "gold", "limegreen", ...), its own geometry (patches:
``Circle``, ``RegularPolygon``, ``Rectangle``, ``Polygon``, turned by an ``Affine2D`` transform), plain
backgrounds of any brightness, images of other sizes and proportions, some with pixel noise, as a user
would make them in a paint program. The image goes through a PNG file, so evaluation reads it exactly
as ``miniclip zeroshot`` reads yours: decode, then ``preprocess`` (shorter side resized, center crop).

The shape stays inside the central square of the picture, the part the center crop keeps.
Every image is a pure function of (seed, index, color, shape, split).
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image

# Colors by matplotlib name: a different palette from the training drawer's anchors.
PALETTE = {
    "red": ("red", "crimson", "#e8312a", "tomato"),
    "orange": ("orange", "darkorange", "#ff8c1a"),
    "yellow": ("yellow", "gold", "#ffee33"),
    "green": ("green", "limegreen", "forestgreen", "#22bb44"),
    "cyan": ("cyan", "darkturquoise", "aqua", "#33dddd"),
    "blue": ("blue", "royalblue", "mediumblue", "#2255ee"),
    "purple": ("purple", "darkviolet", "mediumorchid", "#9933cc"),
    "white": ("white", "whitesmoke", "#f4f4f4"),
}
# Plain backgrounds, gray levels from black to near white (white shapes get the darker half).
BACKGROUND_LEVELS = (0.0, 0.08, 0.15, 0.25, 0.35, 0.5, 0.62, 0.75, 0.88, 0.96)


def _patch(shape, rng, cx, cy, size, color, filled, linewidth):
    """A matplotlib patch of ``shape`` centered at (cx, cy), about ``size`` pixels across its widest."""
    from matplotlib import patches

    style = dict(facecolor=color if filled else "none", edgecolor=color, linewidth=0 if filled else linewidth)
    half = size / 2
    if shape == "circle":
        return patches.Circle((cx, cy), half, **style)
    if shape == "square":
        side = size * 0.75
        return patches.Rectangle((cx - side / 2, cy - side / 2), side, side, **style)
    if shape == "diamond":  # a rhombus on a vertex
        w = half * rng.uniform(0.5, 0.95)
        return patches.Polygon([(cx, cy - half), (cx + w, cy), (cx, cy + half), (cx - w, cy)], **style)
    if shape == "triangle":
        if rng.uniform() < 0.5:
            return patches.RegularPolygon((cx, cy), 3, radius=half, orientation=rng.uniform(0, 2 * math.pi), **style)
        lean = rng.uniform(-0.4, 0.4) * half  # an isosceles or leaning triangle, apex up
        return patches.Polygon([(cx + lean, cy - half), (cx + half, cy + 0.8 * half), (cx - half, cy + 0.8 * half)],
                               **style)
    if shape == "star":
        inner, turn = rng.uniform(0.35, 0.5), rng.uniform(0, 2 * math.pi / 5)
        corners = [(cx + (half if k % 2 == 0 else inner * half) * math.sin(turn + k * math.pi / 5),
                    cy - (half if k % 2 == 0 else inner * half) * math.cos(turn + k * math.pi / 5)) for k in range(10)]
        return patches.Polygon(corners, **style)
    if shape == "cross":  # a plus sign: its twelve corners, arms of one thickness
        t = half * rng.uniform(0.22, 0.36)
        h = half
        corners = [(-t, -h), (t, -h), (t, -t), (h, -t), (h, t), (t, t), (t, h), (-t, h), (-t, t), (-h, t),
                   (-h, -t), (-t, -t)]
        return patches.Polygon([(cx + x, cy + y) for x, y in corners], **style)
    raise ValueError(f"unknown shape {shape!r}")


_SPLIT_CODE = {"train": 10, "held_out": 11, "all": 12}  # its own streams, apart from the training drawer's
_TILT = {"circle": 0, "square": 12, "diamond": 10, "triangle": 0, "star": 0, "cross": 12}  # degrees, at most


def draw_plotted(seed: int, index: int, color: str, shape: str, split: str = "all") -> np.ndarray:
    """A uint8 (H, W, 3) picture of a ``color`` ``shape``, drawn with matplotlib and decoded from PNG."""
    from matplotlib.figure import Figure
    from matplotlib.transforms import Affine2D

    rng = np.random.default_rng([int(seed), _SPLIT_CODE[split], int(index), 7])
    W = int(rng.integers(40, 201))
    H = int(np.clip(round(W / rng.uniform(0.6, 1.7)), 40, 240))
    side = min(W, H)  # the central square, what a center crop keeps
    level = BACKGROUND_LEVELS[rng.integers(len(BACKGROUND_LEVELS) // 2 if color == "white"
                                           else len(BACKGROUND_LEVELS))]
    if color in ("yellow", "cyan") and level > 0.8:
        level = 0.5  # a pale shape on near white would be invisible
    size = side * rng.uniform(0.35, 0.85)
    cx = W / 2 + rng.uniform(-0.5, 0.5) * (side - size) * 0.8
    cy = H / 2 + rng.uniform(-0.5, 0.5) * (side - size) * 0.8
    filled = rng.uniform() < 0.8
    names = PALETTE[color]
    patch = _patch(shape, rng, cx, cy, size, names[rng.integers(len(names))], filled,
                   linewidth=max(1.0, side * rng.uniform(0.03, 0.07)) * 0.72)  # points at 100 dpi

    dpi = 100
    fig = Figure(figsize=(W / dpi, H / dpi), dpi=dpi, facecolor=(level,) * 3)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, W)
    ax.set_ylim(H, 0)  # y down, as in the picture
    ax.axis("off")
    tilt = rng.uniform(-1, 1) * _TILT[shape]
    patch.set_transform(Affine2D().rotate_deg_around(cx, cy, tilt) + ax.transData)
    ax.add_patch(patch)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, facecolor=(level,) * 3)
    buffer.seek(0)
    with Image.open(buffer) as im:
        pixels = np.asarray(im.convert("RGB"))  # (H, W, 3)
    if rng.uniform() < 0.4:  # a noisy scan or photo of the drawing
        noisy = pixels + rng.normal(0, rng.uniform(4, 14), size=pixels.shape)
        buffer = io.BytesIO()
        Image.fromarray(np.clip(noisy, 0, 255).round().astype(np.uint8)).save(buffer, format="PNG")
        buffer.seek(0)
        with Image.open(buffer) as im:
            pixels = np.asarray(im.convert("RGB"))
    return pixels
