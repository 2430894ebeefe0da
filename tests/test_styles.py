"""The diverse world's styles and the held-out renderer: determinism, silhouettes, and what training never sees."""

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import ConvexHull

from miniclip.data import plotted, shapes, styles
from miniclip.data.shapes import (HELD_OUT_LABELS, HELD_OUT_PAIRS, HELD_OUT_STYLES, SHAPES, STYLES, TRAIN_STYLES,
                                  WORLDS, draw_sample)


PAINTED_STYLES = tuple(s for s in STYLES if s not in ("classic", "matplotlib"))  # drawn by styles.paint


def test_style_lists():
    assert set(TRAIN_STYLES) | set(HELD_OUT_STYLES) == set(STYLES) and "classic" in TRAIN_STYLES
    assert not set(TRAIN_STYLES) & set(HELD_OUT_STYLES) and len(HELD_OUT_STYLES) >= 2
    assert set(WORLDS["diverse"]) == set(TRAIN_STYLES) and WORLDS["classic"] == ("classic",)
    assert WORLDS["diverse"].count("classic") == len(WORLDS["diverse"]) // 2  # half the diverse world is classic


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("split", ["train", "held_out"])
def test_every_style_is_a_pure_function_of_seed_split_index(style, split):
    a, b = draw_sample(3, 17, 32, split, (style,)), draw_sample(3, 17, 32, split, (style,))
    assert a.style == style and a.caption == b.caption and np.array_equal(a.image, b.image)
    assert a.image.dtype == np.uint8 and a.image.ndim == 3 and a.image.shape[2] == 3
    assert not np.array_equal(a.image, draw_sample(3, 18, 32, split, (style,)).image)
    assert not np.array_equal(a.image, draw_sample(4, 17, 32, split, (style,)).image)
    if style != "matplotlib":  # the held-out renderer makes pictures of its own sizes
        assert a.image.shape == (32, 32, 3)


def test_the_classic_style_is_the_one_style_world():
    s = draw_sample(0, 5, 32, "train", WORLDS["classic"])
    assert s.style == "classic" and "sketch" not in s.caption and "outline" not in s.caption


@pytest.mark.parametrize("style", PAINTED_STYLES)
@pytest.mark.parametrize("shape", SHAPES)
def test_every_style_draws_every_shape(style, shape):
    """Silhouette check: the painted shape, holes filled (an outline encloses its shape), covers the
    polygon it was asked to draw and little beyond it (a thick stroke, a wobble), and the painted pixels run along all of that polygon's edge."""
    R, r = 48, 16
    for seed in range(6):
        rng = np.random.default_rng(seed)
        angle = rng.uniform(-1, 1) * styles.MAX_ROTATION[shape]
        points = styles.place(styles.unit_polygon(shape, rng), R / 2, R / 2, r, angle)
        reference = styles.coverage(points, R) > 0.5
        alpha, _ = styles.paint(style, points, rng, R, r, styles.pick_color("red", rng))
        assert alpha.shape == (R, R, 1)
        painted = alpha[:, :, 0] > 0.5
        silhouette = ndimage.binary_fill_holes(painted)
        inside = (silhouette & reference).sum() / reference.sum()  # how much of the shape is drawn
        outside = (silhouette & ~ndimage.binary_dilation(reference, iterations=3)).sum() / silhouette.sum()
        assert inside > 0.85 and outside < 0.05, (style, shape, seed, inside, outside)
        edge = reference & ~ndimage.binary_erosion(reference)
        near_paint = ndimage.binary_dilation(painted, iterations=2)
        assert (edge & near_paint).sum() >= 0.9 * edge.sum(), (style, shape, seed)


def _plotted_silhouette(image):
    """Pixels that differ from the plain background (the median of the border), holes filled."""
    smooth = ndimage.median_filter(image.astype(np.float64), size=(3, 3, 1))
    border = np.concatenate([smooth[0], smooth[-1], smooth[:, 0], smooth[:, -1]])
    background = np.median(border, axis=0)
    foreground = np.abs(smooth - background).max(axis=2) > 50
    return ndimage.binary_fill_holes(foreground)


@pytest.mark.parametrize("shape", SHAPES)
def test_the_held_out_renderer_draws_every_shape(shape):
    """matplotlib's pictures: the silhouette is convex exactly for the convex shapes, and fills its
    bounding box as the shape does (a circle pi/4, a square nearly all, a star or cross much less)."""
    extent_range = {"circle": (0.72, 0.86), "square": (0.68, 1.0), "triangle": (0.35, 0.62),
                    "diamond": (0.38, 0.62), "star": (0.2, 0.55), "cross": (0.35, 0.75)}
    sizes = set()
    for index in range(8):
        image = plotted.draw_plotted(0, index, "red" if index % 2 else "white", shape)
        sizes.add(image.shape[:2])
        silhouette = _plotted_silhouette(image)
        ys, xs = np.nonzero(silhouette)
        assert len(ys) > 50, (shape, index)
        area = silhouette.sum()
        extent = area / ((np.ptp(ys) + 1) * (np.ptp(xs) + 1))
        corners = np.concatenate([np.stack([xs + dx, ys + dy], 1) for dx in (0, 1) for dy in (0, 1)])
        solidity = area / ConvexHull(corners).volume
        lo, hi = extent_range[shape]
        assert lo <= extent <= hi, (shape, index, extent)
        if shape in ("star", "cross"):
            assert solidity < 0.85, (shape, index, solidity)
        else:
            assert solidity > 0.85, (shape, index, solidity)
    assert len(sizes) > 4  # pictures of many sizes and proportions


def test_the_held_out_renderer_shares_no_drawing_code():
    source = Path(plotted.__file__).read_text(encoding="utf-8")
    assert "import styles" not in source and "from .styles" not in source and "from .shapes" not in source
    assert "ImageDraw" not in source


def test_held_out_styles_and_pairs_never_reach_a_training_batch(monkeypatch):
    """Build the training batches exactly as ``train`` does, with the held-out renderers booby-trapped."""
    from miniclip.training import TrainConfig
    from miniclip.training.batches import StepBatches
    from miniclip.training.run import shapes_train_dataset, train_tokenizer
    from miniclip.data import Loader, Preprocess

    drawn = []
    real_draw = styles.draw

    def recording_draw(style, *args):
        assert style not in HELD_OUT_STYLES, f"training drew the held-out style {style}"
        drawn.append(style)
        return real_draw(style, *args)

    def trap(*args, **kwargs):
        raise AssertionError("training drew with the held-out matplotlib renderer")

    monkeypatch.setattr(styles, "draw", recording_draw)
    monkeypatch.setattr(plotted, "draw_plotted", trap)
    for world in WORLDS:
        config = TrainConfig(steps=12, batch_size=64, world=world, vocab_size=700, progress=False, plots=False)
        tokenizer = train_tokenizer(config)
        dataset = shapes_train_dataset(config)
        loader = Loader(dataset, config.batch_size, Preprocess(config.image_resolution), tokenizer,
                        context_length=config.context_length, shuffle=False, prefetch=0)
        labels, captions = [], []
        for _, batch in StepBatches(loader, config.steps, shuffled_epochs=False).iterate(0, workers=0):
            labels += list(batch.labels)
            captions += batch.captions
        assert len(labels) == 12 * 64 and not set(labels) & set(HELD_OUT_LABELS)
        assert not [c for c in captions if any(f"{color} {shape}" in c for color, shape in HELD_OUT_PAIRS)]
        assert not [c for c in captions for word in HELD_OUT_STYLES if word in c]
        assert {dataset.sample(i).style for i in range(len(labels))} <= set(WORLDS[world])
    assert set(drawn) == set(PAINTED_STYLES) - set(HELD_OUT_STYLES)  # every training style that styles.py paints
