"""The shapes world: constants, held-out pairs, determinism, captions that tell the truth, exports."""

import csv

import numpy as np
import pytest
from PIL import Image

from miniclip.data import shapes
from miniclip.data.shapes import (ALL_PAIRS, CLASS_NAMES, COLOR_NAMES, COLORS, HELD_OUT_LABELS, HELD_OUT_PAIRS,
                                  SHAPES, TRAIN_PAIRS, WHERE, ZERO_SHOT_TEMPLATES, ShapesDataset, draw_sample,
                                  export_samples, save_sample_grid)
from miniclip.tokenizer import BPETokenizer


def test_constants():
    assert COLOR_NAMES == ("red", "orange", "yellow", "green", "cyan", "blue", "purple", "white")
    assert SHAPES == ("circle", "square", "triangle", "diamond", "star", "cross")
    assert len(CLASS_NAMES) == 48 and CLASS_NAMES[0] == "red circle" and len(set(CLASS_NAMES)) == 48
    assert HELD_OUT_PAIRS == (("red", "triangle"), ("orange", "star"), ("yellow", "cross"), ("green", "circle"),
                              ("cyan", "square"), ("blue", "diamond"), ("purple", "star"), ("white", "triangle"))
    assert len(TRAIN_PAIRS) == 40 and not set(TRAIN_PAIRS) & set(HELD_OUT_PAIRS)
    # every color and every shape of a held-out pair is still seen in training, only not together
    assert {c for c, _ in TRAIN_PAIRS} == set(COLOR_NAMES) and {s for _, s in TRAIN_PAIRS} == set(SHAPES)
    assert [CLASS_NAMES[i] for i in HELD_OUT_LABELS] == [f"{c} {s}" for c, s in HELD_OUT_PAIRS]
    assert all("{}" in t for t in ZERO_SHOT_TEMPLATES)


def test_deterministic_by_seed_and_index():
    a, b = draw_sample(3, 17, 32), draw_sample(3, 17, 32)
    assert a.caption == b.caption and np.array_equal(a.image, b.image)
    assert not np.array_equal(a.image, draw_sample(4, 17, 32).image)
    assert not np.array_equal(a.image, draw_sample(3, 18, 32).image)
    assert a.image.shape == (32, 32, 3) and a.image.dtype == np.uint8
    assert draw_sample(0, 0, 48).image.shape == (48, 48, 3)


def test_splits_respect_held_out_pairs():
    train = {(s.color, s.shape) for s in map(lambda i: draw_sample(0, i, 16), range(400))}
    assert not train & set(HELD_OUT_PAIRS) and len(train) == 40  # all 40 training pairs show up
    held = {(s.color, s.shape) for s in map(lambda i: draw_sample(0, i, 16, "held_out"), range(80))}
    assert held == set(HELD_OUT_PAIRS)
    assert {draw_sample(0, i, 16, "all").label for i in range(600)} == set(range(48))


def _nearest_color(rgb):
    return min(COLORS, key=lambda c: np.sum((np.array(COLORS[c]) - rgb) ** 2))


@pytest.mark.parametrize("split", ["train", "held_out"])
def test_captions_and_pixels_tell_the_truth(split):
    """The classic style (a filled shape on dark noise): the bright pixels are the named shape's."""
    R = 48
    areas = {(size, shape): [] for size in ("small", "large") for shape in SHAPES}
    for i in range(150):
        s = draw_sample(1, i, R, split, ("classic",))
        words = s.caption.split()
        assert s.color in words and s.shape in words, s.caption
        assert CLASS_NAMES[s.label] == f"{s.color} {s.shape}"
        other_sizes = {"small", "large"} - {s.size}
        assert not other_sizes & set(words), s.caption
        assert all(phrase not in s.caption for p, phrase in WHERE.items() if p != s.position), s.caption
        assert " a orange" not in f" {s.caption}" and " a a" not in f" {s.caption}"  # articles
        # The shape is the set of bright pixels: its mean color is nearest its named color ...
        img = s.image.astype(np.float64)
        mask = img.max(axis=2) > 120
        assert mask.sum() > 10, s
        assert _nearest_color(img[mask].mean(axis=0)) == s.color, (s.caption, img[mask].mean(axis=0))
        # ... and it sits on the named side.
        ys, xs = np.nonzero(mask)
        cx, cy = xs.mean(), ys.mean()
        side = {"left": cx < R / 2 - 3, "right": cx > R / 2 + 3, "top": cy < R / 2 - 3,
                "bottom": cy > R / 2 + 3, "center": abs(cx - R / 2) < 6 and abs(cy - R / 2) < 6}
        assert side[s.position], (s.caption, s.position, cx, cy)
        areas[s.size, s.shape].append(mask.sum())
    for shape in SHAPES:  # a small one of a shape is always smaller than any large one
        if areas["small", shape] and areas["large", shape]:
            assert max(areas["small", shape]) < min(areas["large", shape]), shape


def test_dataset_protocol():
    ds = ShapesDataset(10, seed=5, resolution=32)
    assert len(ds) == 10
    image, caption, label = ds[3]
    s = draw_sample(5, 3, 32)
    assert np.array_equal(image, s.image) and caption == s.caption and label == s.label
    assert ds[-1][1] == ds[9][1]
    with pytest.raises(IndexError, match="index 10 out of range"):
        ds[10]
    with pytest.raises(ValueError, match="split must be one of"):
        ShapesDataset(10, split="test")
    with pytest.raises(ValueError, match="size must be a positive int"):
        ShapesDataset(0)
    with pytest.raises(ValueError, match="resolution must be an int >= 8"):
        draw_sample(0, 0, resolution=4)


def test_captions_train_a_tokenizer_quickly():
    captions = [draw_sample(0, i, 8).caption for i in range(300)]
    tok = BPETokenizer.train(captions, vocab_size=700)
    tokens = tok(captions)  # every caption fits the default context
    assert tokens.shape == (300, 77)
    for name in CLASS_NAMES:
        assert len(tok.encode(name)) <= 4, name


def test_export_samples(tmp_path):
    csv_path = export_samples(tmp_path / "out", 5, seed=2, resolution=32)
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5 and rows[0]["filepath"] == "images/000000.png"
    s = draw_sample(2, 4, 32)
    assert rows[4]["title"] == s.caption and int(rows[4]["label"]) == s.label
    assert np.array_equal(np.asarray(Image.open(csv_path.parent / rows[4]["filepath"])), s.image)


def test_sample_grid_and_cli(tmp_path):
    path = save_sample_grid(tmp_path / "grid.png", n=6, seed=0, resolution=32, columns=3)
    with Image.open(path) as im:
        assert im.size[0] > 3 * 32
    shapes.main(["export", str(tmp_path / "cli"), "--n", "2", "--resolution", "16", "--split", "held_out"])
    assert (tmp_path / "cli" / "images" / "000001.png").is_file()
