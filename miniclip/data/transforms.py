"""CLIP's image preprocessing: one callable shared by training, evaluation and loading.

Shape legend:  R resolution (model input side),  H, W input image height and width,  B batch.

Evaluation (the original ``clip._transform``)::

    resize the shorter side to R (bicubic) -> center crop R x R -> RGB -> [0, 1] -> (x - mean) / std

Training (open_clip's ``image_transform(is_train=True)``): ``RandomResizedCrop(R, scale=(0.9, 1.0))``
with bicubic interpolation -- a random crop covering 90-100% of the area, aspect ratio in [3/4, 4/3],
resized to R x R -- then the same normalization. Geometry follows torchvision exactly (its integer
rounding included) and both resample with Pillow's bicubic filter, so the results agree. One deliberate
difference: images are converted to RGB *first* (the original resizes in the image's own mode and converts
after, so a palette image would be resized with nearest neighbour), and the conversion takes any mode:
16-bit and float images are scaled to 8 bits by their range, transparent pixels are composited on black
(``to_rgb_image``).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


# Transparent pixels become this color: black, the nearest to the shapes world's dark backgrounds. A
# transparent PNG of a shape (the shape opaque, the canvas transparent) then looks like the images the
# model was trained on; on white it would sit on a background brighter than any training image, and a
# white shape would vanish into it. (The original ``convert("RGB")`` drops alpha and shows whatever color
# the transparent pixels happen to store.)
BACKGROUND = (0, 0, 0)

# Single-channel modes with more than 8 bits per pixel, and the ranges their values may be read in (see
# ``to_8bit``): 16-bit integers hold [0, 65535]; "I" (32-bit integers) and "F" (32-bit floats) have no
# bit depth of their own, so the first usual range that holds every value is taken.
HIGH_BIT_DEPTH_RANGES = {
    "I;16": ((0, 65535),), "I;16L": ((0, 65535),), "I;16B": ((0, 65535),), "I;16N": ((0, 65535),),
    "I": ((0, 255), (0, 65535)),
    "F": ((0, 1), (0, 255), (0, 65535)),
}
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def to_8bit(values: np.ndarray, ranges) -> np.ndarray:
    """uint8 levels of a single-channel high-bit-depth image: ``round(255 (v - low) / (high - low))``.

    [low, high] is the first of ``ranges`` that holds every finite value (so a 16-bit image saved from
    8-bit levels as ``257 x level`` gives those levels back, and a dark image stays dark), else the values'
    own [min, max]. A constant image stays constant (when low == high, every level is 0); NaN reads as
    ``low``, +-Inf as the ends of the range.
    """
    with np.errstate(invalid="ignore"):  # a signaling NaN (any bit pattern is a valid "F" pixel) warns on the cast
        v = np.asarray(values, dtype=np.float64)  # (H, W)
    finite = v[np.isfinite(v)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    low, high = next(((a, b) for a, b in ranges if a <= lo and hi <= b), (lo, hi))
    v = np.clip(np.nan_to_num(v, nan=low), low, high)
    return np.round(255 * (v - low) / ((high - low) or 1)).astype(np.uint8)


def to_rgb_image(image) -> Image.Image:
    """A Pillow RGB image from a Pillow image of any mode, or an array: uint8 (H, W), (H, W, 3) or (H, W, 4)
    (RGBA), or uint16 (H, W) (a 16-bit grayscale image as imageio reads it).

    Central case: ``image.convert("RGB")`` (L, 1, P, CMYK, YCbCr, ...). Special cases, which Pillow's
    conversion gets wrong for a model: high-bit-depth modes (I;16, I;16B, I, F) are scaled to 8 bits
    by their range (``to_8bit``; Pillow clips them at 255, so a 16-bit image reads as white), and
    images with transparency (alpha modes, or a transparent color or palette entry) are composited on
    ``BACKGROUND`` (black) instead of losing their alpha.
    """
    if not isinstance(image, Image.Image):
        array = np.asarray(image)
        if not ((array.dtype == np.uint8 and (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))))
                or (array.dtype == np.uint16 and array.ndim == 2)):
            raise TypeError(f"image must be a PIL image, a uint8 array (H, W), (H, W, 3) or (H, W, 4), or a "
                            f"uint16 array (H, W); got {type(image).__name__} dtype={array.dtype} shape={array.shape}")
        image = Image.fromarray(np.ascontiguousarray(array))  # L, RGB, RGBA or I;16: converted as a file would be
    if image.mode in HIGH_BIT_DEPTH_RANGES:
        values = np.asarray(image)  # (H, W)
        gray = Image.fromarray(to_8bit(values, HIGH_BIT_DEPTH_RANGES[image.mode]), "L")
        if "transparency" in image.info:  # one transparent value: a 0/255 alpha channel
            gray.putalpha(Image.fromarray(np.where(values == image.info["transparency"], 0, 255).astype(np.uint8)))
        image = gray
    if _has_alpha(image):
        rgba = _rgba(image)
        return Image.alpha_composite(Image.new("RGBA", rgba.size, BACKGROUND + (255,)), rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def fully_transparent(image) -> bool:
    """True when every pixel of a Pillow ``image`` is transparent: there is nothing in it to classify."""
    if image.mode in HIGH_BIT_DEPTH_RANGES:
        return "transparency" in image.info and bool(np.all(np.asarray(image) == image.info["transparency"]))
    return _has_alpha(image) and _rgba(image).getextrema()[3][1] == 0


def _has_alpha(image) -> bool:
    return image.mode in ALPHA_MODES or "transparency" in image.info


def _rgba(image) -> Image.Image:
    if image.mode == "La":  # premultiplied gray + alpha: Pillow reaches RGBA only by way of LA
        image = image.convert("LA")
    return image.convert("RGBA")


def resized_size(width: int, height: int, resolution: int) -> tuple[int, int]:
    """(width, height) after scaling the shorter side to ``resolution`` (torchvision's Resize(int) rounding)."""
    if width <= height:
        return resolution, int(resolution * height / width)
    return int(resolution * width / height), resolution


def center_crop_box(width: int, height: int, resolution: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the centered R x R crop (torchvision's CenterCrop rounding)."""
    top = int(round((height - resolution) / 2.0))
    left = int(round((width - resolution) / 2.0))
    return left, top, left + resolution, top + resolution


def random_resized_crop_box(width: int, height: int, rng: np.random.Generator, scale=(0.9, 1.0),
                            ratio=(3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of a random crop with area fraction in ``scale`` and aspect ratio
    (w / h) in ``ratio``, log-uniform; 10 tries, then the largest centered crop in the ratio range
    (torchvision's ``RandomResizedCrop.get_params``)."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return left, top, left + w, top + h
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        w, h = int(round(height * max(ratio))), height
    else:
        w, h = width, height
    top, left = (height - h) // 2, (width - w) // 2
    return left, top, left + w, top + h


class Preprocess:
    """``Preprocess(R)(image) -> (3, R, R)`` normalized array; ``train=True`` adds the random resized crop.

    image: a Pillow image of any mode or an array (see ``to_rgb_image``). The training crop draws from
    ``rng`` when one is passed (the loader passes one per (seed, epoch, index), so batches are reproducible
    whatever thread runs them), else from the preprocessor's own generator seeded with ``seed``.
    """

    def __init__(self, resolution: int, train: bool = False, dtype=np.float32, seed: int = 0,
                 scale=(0.9, 1.0), ratio=(3 / 4, 4 / 3)):
        if not isinstance(resolution, (int, np.integer)) or resolution < 1:
            raise ValueError(f"resolution must be a positive int, got {resolution!r}")
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {np.dtype(dtype)}")
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"scale must satisfy 0 < low <= high <= 1, got {scale!r}")
        self.resolution, self.train, self.dtype = int(resolution), bool(train), np.dtype(dtype)
        self.scale, self.ratio = tuple(scale), tuple(ratio)
        self.rng = np.random.default_rng(seed)
        self.mean = np.array(OPENAI_CLIP_MEAN, dtype=self.dtype).reshape(3, 1, 1)  # (3, 1, 1)
        self.std = np.array(OPENAI_CLIP_STD, dtype=self.dtype).reshape(3, 1, 1)  # (3, 1, 1)

    def __call__(self, image, rng: np.random.Generator | None = None) -> np.ndarray:
        R = self.resolution
        if (not self.train and isinstance(image, np.ndarray) and image.dtype == np.uint8
                and image.shape == (R, R, 3)):
            pixels = image  # already R x R RGB: resize and crop are the identity (the shapes world)
        else:
            img = to_rgb_image(image)
            W, H = img.size
            if self.train:
                box = random_resized_crop_box(W, H, rng if rng is not None else self.rng, self.scale, self.ratio)
                # Crop, then resize: as torchvision's resized_crop. (Pillow's resize(box=...) would let the
                # bicubic kernel read pixels outside the crop and differ at its edges.)
                img = img.crop(box).resize((R, R), Image.BICUBIC)
            else:
                if min(W, H) != R:
                    img = img.resize(resized_size(W, H, R), Image.BICUBIC)
                if img.size != (R, R):
                    img = img.crop(center_crop_box(*img.size, R))
            pixels = np.asarray(img)  # (R, R, 3) uint8
        x = pixels.transpose(2, 0, 1).astype(self.dtype) / self.dtype.type(255)  # (R, R, 3) -> (3, R, R)
        return (x - self.mean) / self.std

    def batch(self, images, rngs=None) -> np.ndarray:
        """Stack of ``self(image)`` for each image: (B, 3, R, R)."""
        rngs = [None] * len(images) if rngs is None else rngs
        out = np.empty((len(images), 3, self.resolution, self.resolution), dtype=self.dtype)  # (B, 3, R, R)
        for k, (image, rng) in enumerate(zip(images, rngs)):
            out[k] = self(image, rng)
        return out

    def __repr__(self) -> str:
        extra = f", scale={self.scale}" if self.train else ""
        return f"Preprocess(resolution={self.resolution}, train={self.train}, dtype={self.dtype}{extra})"
