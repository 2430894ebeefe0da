"""The diverse drawer: one geometry, many ways of drawing it (filled, outline, shaded, sketch, pixel).

Shape legend:  R image side in pixels,  S supersampling factor,  V polygon vertices.

A sample is drawn in three independent steps, each a function of one random generator:

    geometry  (shape, center, radius, rotation, proportions)   -> polygon vertices (V, 2)
    painting  (style: how the polygon becomes pixels)          -> coverage mask (R, R) in [0, 1] and fill
    capture   (background, blur, JPEG, noise)                  -> uint8 image (R, R, 3)

The name of a shape is kept true under every variation: a square stays upright within 15 degrees (a
square turned 45 degrees *is* a diamond), a diamond is any rhombus standing on a vertex (width from
half its height up to its height), a cross is any plus sign (arm thickness varies), a star has five
points and an inner radius between 0.3 and 0.55 of the outer one, a triangle is any of a family
(equilateral, isosceles, leaning) turned any way. Colors vary around several anchors per name (the
saturated "pure" color, a paint-program color, a softer one), never far enough to cross into a
neighbour's name. Backgrounds are grayish (a little tint at most), so the only color in the picture
is the one the caption names, and are redrawn until the shape stands out from them.

``TRAIN_STYLES`` are drawn for training; ``"pixel"`` (the shape rasterized on a coarse grid without
anti-aliasing and enlarged: blocky edges) is a held-out style that training never draws. The other
held-out style, ``"matplotlib"``, is a separate renderer (``plotted.py``) that shares no drawing
code with this file.
"""

from __future__ import annotations

import functools
import io
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

TRAIN_STYLES = ("classic", "filled", "outline", "shaded", "sketch")  # "classic" is drawn by shapes.py

# Several anchors per color name; a sample's color mixes two of them and jitters the result.
COLOR_ANCHORS = {
    "red": ((225, 35, 35), (255, 0, 0), (200, 20, 40), (235, 60, 50)),
    "orange": ((245, 135, 20), (255, 165, 0), (255, 120, 0), (240, 150, 50)),
    "yellow": ((240, 225, 40), (255, 255, 0), (250, 235, 90), (235, 215, 0)),
    "green": ((40, 190, 60), (0, 128, 0), (0, 255, 0), (50, 205, 50), (30, 150, 60)),
    "cyan": ((40, 215, 225), (0, 255, 255), (0, 200, 210), (80, 230, 240)),
    "blue": ((45, 85, 240), (0, 0, 255), (30, 60, 200), (65, 105, 225), (20, 40, 170)),
    "purple": ((160, 60, 210), (128, 0, 128), (148, 0, 211), (180, 80, 230), (120, 40, 170)),
    "white": ((240, 240, 240), (255, 255, 255), (225, 225, 225), (250, 248, 240)),
}
_ANCHOR_ARRAYS = {name: np.array(anchors, np.float32) for name, anchors in COLOR_ANCHORS.items()}
_S = 4  # S: masks are drawn at S*R pixels and averaged down (anti-aliasing)
_MIN_CONTRAST = 90.0  # least RGB distance between the shape's color and the background's mean
# Pixel noise is a window of this fixed field of N(0, 1) noise at a random offset: drawing fresh Gaussian
# numbers for every pixel cost more than the rest of the picture; a window of 32 x 32 out of 256 x 256
# is as good as fresh for a model that sees each window once in a while.
_NOISE = np.random.default_rng(20261203).standard_normal((256, 256, 3), dtype=np.float32)


# ------------------------------------------------------------------------------------------------ geometry
def unit_polygon(shape: str, rng: np.random.Generator) -> np.ndarray:
    """Vertices (V, 2) of ``shape`` around (0, 0) with circumradius about 1, y pointing down,
    its proportions drawn from ``rng`` within what the name allows."""
    if shape == "circle":
        return unit_circle()  # (48, 2)
    if shape == "square":
        return np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * 0.72
    if shape == "diamond":
        w = rng.uniform(0.5, 1.0)  # half-width / half-height: 1 is a square standing on a vertex
        return np.array([[0, -1], [w, 0], [0, 1], [-w, 0]])
    if shape == "triangle":
        apex_x, half_base, height = rng.uniform(-0.45, 0.45), rng.uniform(0.75, 1.1), rng.uniform(1.5, 1.9)
        pts = np.array([[apex_x, -height / 2], [half_base, height / 2], [-half_base, height / 2]])
        return pts - pts.mean(axis=0)  # (3, 2) centered on the centroid
    if shape == "star":
        inner = rng.uniform(0.3, 0.55)
        radius = np.where(np.arange(10) % 2 == 0, 1.0, inner)
        return star_directions() * radius[:, None]  # (10, 2)
    if shape == "cross":
        a, b = 0.9, rng.uniform(0.18, 0.36)  # arm half-length, arm half-width
        return np.array([[-b, -a], [b, -a], [b, -b], [a, -b], [a, b], [b, b], [b, a], [-b, a], [-b, b],
                         [-a, b], [-a, -b], [-b, -b]])
    raise ValueError(f"unknown shape {shape!r}")


@functools.lru_cache(maxsize=None)
def unit_circle(V: int = 48) -> np.ndarray:
    """``V`` points evenly spaced on the unit circle (V, 2), from (1, 0) turning toward +y: a circle's
    polygon, the same for every sample, so made once (read-only: it is shared)."""
    circle = np.stack([np.cos(angles(V)), np.sin(angles(V))], axis=1)  # (V, 2)
    circle.flags.writeable = False
    return circle


@functools.lru_cache(maxsize=None)
def star_directions() -> np.ndarray:
    """The directions (10, 2) of a five-pointed star's points and notches, the first straight up (-y),
    alternating; made once (read-only)."""
    t = -np.pi / 2 + np.arange(10) * np.pi / 5
    directions = np.stack([np.cos(t), np.sin(t)], axis=1)  # (10, 2)
    directions.flags.writeable = False
    return directions


@functools.lru_cache(maxsize=None)
def angles(n: int) -> np.ndarray:
    """``n`` angles evenly spaced over a turn, 0 first, 2 pi excluded (n,): made once per n (read-only)."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    t.flags.writeable = False
    return t


# Rotation range per shape (radians): a full turn where the name does not care, small tilts where a
# turn would change the name (square <-> diamond, plus sign <-> x), none for circles.
MAX_ROTATION = {"circle": 0.0, "square": math.radians(15), "diamond": math.radians(15),
                "triangle": math.pi, "star": math.pi, "cross": math.radians(15)}


def place(unit: np.ndarray, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    """``unit`` (V, 2) rotated by ``angle``, scaled by ``r`` and moved to (cx, cy)."""
    c, s = math.cos(angle), math.sin(angle)
    return unit @ np.array([[c, -s], [s, c]]).T * r + np.array([cx, cy])  # (V, 2)


def center_toward(position: str, R: int, r: float, margin: float, jitter) -> tuple[float, float]:
    """The center (cx, cy) of a shape of circumradius ``r`` at ``position``: ``margin`` pixels from the
    named side (the other coordinate near the middle, off by ``jitter``), or near the middle for "center"."""
    near, far = r + margin, R - r - margin  # centre coordinate hugging one side or the other
    cx, cy = R / 2 + jitter[0], R / 2 + jitter[1]
    if position == "left":
        cx = near
    elif position == "right":
        cx = far
    elif position == "top":
        cy = near
    elif position == "bottom":
        cy = far
    return cx, cy


def wobble(points: np.ndarray, rng: np.random.Generator, r: float) -> np.ndarray:
    """A hand-drawn version of a closed polygon: each corner moved a little, each edge split into
    short segments that drift sideways along a smooth random curve."""
    pts = points + rng.normal(0, 0.06 * r, size=points.shape)  # jittered corners
    n = max(1, 40 // len(points))  # segments per edge: about 40 points around (a circle has 48 already)
    t = np.arange(n)[:, None] / n  # (n, 1)
    following = np.concatenate((pts[1:], pts[:1]))  # (V, 2) each corner's successor: np.roll(pts, -1, axis=0)
    dense = (pts[:, None, :] * (1 - t) + following[:, None, :] * t).reshape(-1, 2)  # (V*n, 2)
    center = points.mean(axis=0)
    u = angles(len(dense))  # (V*n,) the angle along the outline
    k = rng.integers(2, 5)
    bend = 1 + rng.uniform(0.02, 0.06) * np.sin(k * u + rng.uniform(0, 2 * np.pi)) \
        + rng.uniform(0.01, 0.03) * np.sin((k + 3) * u + rng.uniform(0, 2 * np.pi))
    return center + (dense - center) * bend[:, None]


# ------------------------------------------------------------------------------------------------ painting
def coverage(points: np.ndarray, R: int, stroke: float = 0.0, grid: int = 0) -> np.ndarray:
    """Fraction of each of the R x R pixels covered by the polygon ``points`` (pixel units), (R, R).

    stroke > 0: only its outline, ``stroke`` pixels wide. grid > 0: rasterized without anti-aliasing
    on a ``grid`` x ``grid`` board and enlarged to R with nearest-neighbour (pixel art).
    """
    if grid:
        img = Image.new("L", (grid, grid), 0)
        ImageDraw.Draw(img).polygon([tuple(p) for p in points * (grid / R)], fill=255)
        return np.asarray(img.resize((R, R), Image.NEAREST), dtype=np.float32) / 255.0
    img = Image.new("L", (_S * R, _S * R), 0)
    draw = ImageDraw.Draw(img)
    scaled = points * _S  # (V, 2)
    xy = scaled.ravel().tolist()  # Pillow's polygon and line take x0, y0, x1, y1, ... as Python floats
    if stroke > 0:
        width = max(1, round(_S * stroke))
        draw.line(xy + xy[:2], fill=255, width=width)
        # round off the corners (where the outline turns by more than 30 degrees) with a dot each:
        # cheaper than Pillow's joint="curve", which draws one at every vertex
        into = scaled - np.concatenate((scaled[-1:], scaled[:-1]))  # (V, 2) the edge into each vertex
        out = np.concatenate((into[1:], into[:1]))  # (V, 2) the edge out of it (np.roll, cheaper)
        cos_turn = (into * out).sum(1) / (np.linalg.norm(into, axis=1) * np.linalg.norm(out, axis=1) + 1e-9)
        for x, y in scaled[cos_turn < 0.87].tolist():
            draw.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=255)
    else:
        draw.polygon(xy, fill=255)
    return pixels(img.reduce(_S)) / np.float32(255)  # (R, R) float32


def pixels(image: Image.Image) -> np.ndarray:
    """The pixels of a Pillow ``image`` as a read-only uint8 array (H, W) ("L") or (H, W, 3) ("RGB").

    Read through its raw bytes: ``np.asarray(image)`` gives the same array through Pillow's array
    interface, at twice the cost on pictures this small."""
    shape = (image.height, image.width) if image.mode == "L" else (image.height, image.width, 3)
    return np.frombuffer(image.tobytes(), np.uint8).reshape(shape)


def pick_color(name: str, rng: np.random.Generator) -> np.ndarray:
    """An RGB (3,) float color for ``name``: a mix of two of its anchors, jittered a little."""
    anchors = _ANCHOR_ARRAYS[name]  # (A, 3) float32
    a, b = rng.integers(len(anchors), size=2)
    t = rng.uniform()
    rgb = anchors[a] * (1 - t) + anchors[b] * t
    return np.clip(rgb * rng.uniform(0.92, 1.04) + rng.uniform(-8, 8, size=3), 0, 255).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _centered_line(R):
    line = np.linspace(-0.5, 0.5, R, dtype=np.float32)
    return line[None, :], line[:, None]  # (1, R) across, (R, 1) down


def ramp(rng: np.random.Generator, R: int) -> np.ndarray:
    """A linear ramp (R, R) from 0 to 1 in a random direction."""
    direction = rng.uniform(0, 2 * np.pi)
    across, down = _centered_line(R)
    return math.cos(direction) * across + math.sin(direction) * down + 0.5


def _smooth_noise(rng, R, cells):
    """Low-frequency noise (R, R) in about [-1, 1]: a ``cells`` x ``cells`` random board, bicubic-enlarged."""
    board = Image.fromarray(rng.uniform(0, 255, size=(cells, cells)).astype(np.uint8))
    return pixels(board.resize((R, R), Image.BICUBIC)) / np.float32(127.5) - 1


_BACKGROUNDS = ("dark", "light", "gray", "gradient", "noisy")
_LEVELS = {"dark": (0, 70), "light": (185, 255), "gray": (60, 200), "gradient": (0, 255), "noisy": (20, 220)}


def background(rng: np.random.Generator, R: int, fill: np.ndarray) -> tuple[np.ndarray, str]:
    """A grayish background (3, R, R) float32, one plane per channel, that the color ``fill`` stands
    out from, and its kind ("dark", "light", "gray", "gradient" or "noisy")."""
    for _ in range(8):
        kind = _BACKGROUNDS[rng.integers(5)]
        ends = rng.uniform(*_LEVELS[kind], size=(2, 1)) + rng.uniform(-12, 12, size=(2, 3))  # two tinted grays
        if kind in ("gray", "noisy"):
            ends[1] = ends[0]
        mean = (ends[0] + ends[1]) / 2
        if np.linalg.norm(mean - fill) >= _MIN_CONTRAST:
            break
    else:  # nothing stood out in 8 draws (rare): a dark background always does for these colors
        kind, ends = "dark", rng.uniform(0, 50, size=(2, 3))
    ends = ends.astype(np.float32)[:, :, None, None]  # (2, 3, 1, 1)
    image = ends[0] + (ends[1] - ends[0]) * ramp(rng, R)  # (3, R, R)
    if kind == "noisy":
        image = image + _smooth_noise(rng, R, rng.integers(3, 9)) * rng.uniform(15, 35)
    return image, kind


def paint(style: str, points: np.ndarray, rng: np.random.Generator, R: int, r: float, fill: np.ndarray):
    """The shape's coverage (R, R, 1) and its color per pixel (R, R, 3) or (3,) in ``style``."""
    if style == "filled":
        return coverage(points, R)[:, :, None], fill
    if style == "outline":
        return coverage(points, R, stroke=max(0.9, r * rng.uniform(0.12, 0.3)))[:, :, None], fill
    if style == "shaded":  # a gradient across the shape, sometimes a blotchy texture on top
        lo, hi = rng.uniform(0.65, 0.9), rng.uniform(1.0, 1.12)
        shade = lo + (hi - lo) * ramp(rng, R)
        if rng.uniform() < 0.5:
            shade = shade + 0.12 * _smooth_noise(rng, R, rng.integers(4, 10))
        return coverage(points, R)[:, :, None], np.clip(fill * shade[:, :, None], 0, 255)
    if style == "sketch":  # wobbly lines, drawn as an outline (often twice, slightly apart) or filled
        drawn = wobble(points, rng, r)
        if rng.uniform() < 0.35:
            return coverage(drawn, R)[:, :, None], fill
        stroke = max(0.9, r * rng.uniform(0.1, 0.25))
        mask = coverage(drawn, R, stroke=stroke)
        if rng.uniform() < 0.5:
            mask = np.maximum(mask, coverage(wobble(points, rng, r), R, stroke=stroke))
        return mask[:, :, None], fill
    if style == "pixel":  # held out: hard-edged pixel art on a coarse grid
        return coverage(points, R, grid=int(round(R * rng.uniform(0.45, 0.65))))[:, :, None], fill
    raise ValueError(f"unknown style {style!r}")


# ------------------------------------------------------------------------------------------------ capture
def capture(image: np.ndarray, rng: np.random.Generator, effects: bool = True) -> np.ndarray:
    """Clip to uint8 after the camera's faults: sometimes blur, always some pixel noise, sometimes
    JPEG compression. ``effects=False``: only a little noise."""
    R = image.shape[0]
    sigma = rng.uniform(0, 16) if effects else rng.uniform(0, 6)
    if R <= _NOISE.shape[0]:
        y, x = rng.integers(0, _NOISE.shape[0] - R + 1, size=2)
        image += _NOISE[y:y + R, x:x + R] * np.float32(sigma)  # a random window of fixed Gaussian noise
    else:
        image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(sigma)
    np.clip(image, 0, 255, out=image)
    image += 0.5
    out = image.astype(np.uint8)  # rounded: +0.5, then truncated
    if not effects:
        return out
    picture = None  # the picture as a Pillow image, once an effect needs one
    if rng.uniform() < 0.3:
        picture = Image.fromarray(out).filter(ImageFilter.GaussianBlur(R / 32 * rng.uniform(0.3, 1.0)))
    if rng.uniform() < 0.15:
        buffer = io.BytesIO()
        picture = Image.fromarray(out) if picture is None else picture
        picture.save(buffer, format="JPEG", quality=int(rng.integers(15, 80)))
        # decoded as Image.open would, by the same JPEG decoder, without reading the file's headers again
        picture = Image.frombytes("RGB", (R, R), buffer.getvalue(), "jpeg", "RGB", "")
    return out if picture is None else pixels(picture)


def draw(style: str, shape: str, color: str, size: str, position: str, R: int,
         rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A uint8 (R, R, 3) image of a ``size`` ``color`` ``shape`` at ``position`` drawn in ``style``,
    and the background's kind."""
    # A small shape's circumradius is 15 to 20% of the picture (4.8 to 6.4 pixels at 32): below that an outline or
    # a sketch of a star or a cross is a blob at 32 px, and learning to name it mostly learns noise (chapter 10)
    r = R * (rng.uniform(0.15, 0.20) if size == "small" else rng.uniform(0.24, 0.36))
    if size == "large" and position == "center":
        r = R * rng.uniform(0.24, 0.44)  # large and central: up to nearly filling the picture
    margin = R * rng.uniform(0.02, 0.06)
    cx, cy = center_toward(position, R, r, margin, R * rng.uniform(-0.07, 0.07, size=2))
    points = place(unit_polygon(shape, rng), cx, cy, r, rng.uniform(-1, 1) * MAX_ROTATION[shape])
    fill = pick_color(color, rng)
    back, kind = background(rng, R, fill)
    alpha, color_map = paint(style, points, rng, R, r, fill)  # (R, R, 1), (3,) or (R, R, 3)
    # The shape over the background, mixed one channel plane at a time: NumPy runs each operation over
    # whole R x R planes, where a trailing axis of 3 would make it loop three numbers at a time.
    color_map = color_map[:, None, None] if color_map.ndim == 1 else color_map.transpose(2, 0, 1)  # (3, ., .)
    image = back + (color_map - back) * alpha[:, :, 0]  # (3, R, R) float32
    return capture(np.ascontiguousarray(image.transpose(1, 2, 0)), rng, effects=style != "pixel"), kind
