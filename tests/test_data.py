"""Preprocessing geometry and constants, CSV datasets (good and every bad input), the batch loader."""

import re
import threading

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from PIL import Image

from miniclip.data import (CsvDataError, CsvDataset, Loader, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, Preprocess,
                           ShapesDataset, export_samples)
from miniclip.data.shapes import draw_sample
from miniclip.data.transforms import center_crop_box, random_resized_crop_box, resized_size
from miniclip.tokenizer import BPETokenizer

MEAN = np.array(OPENAI_CLIP_MEAN).reshape(3, 1, 1)
STD = np.array(OPENAI_CLIP_STD).reshape(3, 1, 1)


@pytest.fixture(scope="module")
def tokenizer():
    return BPETokenizer.train([draw_sample(0, i, 8).caption for i in range(200)], vocab_size=600)


# ---------------------------------------------------------------- preprocessing
def test_normalization_constants_are_clips():
    assert OPENAI_CLIP_MEAN == (0.48145466, 0.4578275, 0.40821073)
    assert OPENAI_CLIP_STD == (0.26862954, 0.26130258, 0.27577711)


def test_constant_image_normalizes_exactly():
    rgb = np.array([200, 30, 117], dtype=np.uint8)
    image = np.broadcast_to(rgb, (40, 60, 3)).copy()  # (H, W, 3), not the model's size
    out = Preprocess(16, dtype=np.float64)(image)
    assert out.shape == (3, 16, 16) and out.dtype == np.float64
    np.testing.assert_allclose(out, np.broadcast_to((rgb.reshape(3, 1, 1) / 255 - MEAN) / STD, (3, 16, 16)),
                               rtol=0, atol=1e-12)


def test_resize_and_crop_geometry():
    # Shorter side to R (torchvision's int() rounding), longer side in proportion.
    assert resized_size(64, 32, 16) == (32, 16)
    assert resized_size(30, 45, 16) == (16, 24)
    assert resized_size(100, 33, 10) == (30, 10)  # int(10 * 100 / 33) = int(30.3)
    # Centered crop with torchvision's int(round()) offsets.
    assert center_crop_box(32, 16, 16) == (8, 0, 24, 16)
    assert center_crop_box(16, 24, 16) == (0, 4, 16, 20)
    assert center_crop_box(19, 16, 16) == (2, 0, 18, 16)  # round(1.5) = 2
    # A wide image, red on the left quarter, green in the middle half, blue on the right quarter:
    # after the shorter side becomes 16 (width 32) and the center crop, only the green middle is left.
    image = np.zeros((20, 40, 3), dtype=np.uint8)
    image[:, :10, 0] = 255
    image[:, 10:30, 1] = 255
    image[:, 30:, 2] = 255
    out = Preprocess(16, dtype=np.float64)(image) * STD + MEAN  # back to [0, 1]
    assert out.shape == (3, 16, 16)
    green = np.broadcast_to(np.array([0.0, 1.0, 0.0]).reshape(3, 1, 1), (3, 16, 12))
    np.testing.assert_allclose(out[:, :, 2:14], green, atol=1e-2)  # (edge columns: bicubic ringing)
    # and it matches Pillow doing the same steps by hand
    by_hand = np.asarray(Image.fromarray(image).resize((32, 16), Image.BICUBIC).crop((8, 0, 24, 16)))
    np.testing.assert_allclose(out, by_hand.transpose(2, 0, 1) / 255, atol=1e-12)


def test_image_kinds_agree():
    image = draw_sample(0, 1, 24).image
    pre = Preprocess(24)
    fast = pre(image)  # uint8 array already R x R: no resampling
    assert fast.dtype == np.float32
    np.testing.assert_array_equal(fast, pre(Image.fromarray(image)))
    np.testing.assert_array_equal(pre(Image.fromarray(image).convert("RGBA")), fast)
    gray = pre(Image.fromarray(image).convert("L"))
    assert gray.shape == (3, 24, 24)
    with pytest.raises(TypeError, match="uint8 array"):
        pre(image.astype(np.float32))
    with pytest.raises(TypeError, match="float32 or float64"):
        Preprocess(24, dtype=np.int32)
    with pytest.raises(ValueError, match="resolution must be a positive int"):
        Preprocess(0)


def test_random_resized_crop():
    rng = np.random.default_rng(0)
    for _ in range(200):
        W = int(rng.integers(20, 80))
        H = int(W * rng.uniform(0.85, 1.15))  # near square: a crop is always found
        left, top, right, bottom = random_resized_crop_box(W, H, rng)
        assert 0 <= left < right <= W and 0 <= top < bottom <= H
        w, h = right - left, bottom - top
        assert 0.9 * W * H - (w + h + 1) <= w * h <= W * H  # area fraction in [0.9, 1], up to rounding
        assert 3 / 4 - 0.1 <= w / h <= 4 / 3 + 0.1
    # Too wide for any crop with area >= 0.9 and aspect <= 4/3: the centered fallback, width 21 * 4/3
    assert random_resized_crop_box(44, 21, rng) == (8, 0, 36, 21)
    image = draw_sample(0, 2, 32).image
    train = Preprocess(32, train=True)
    a = train(image, np.random.default_rng(5))
    np.testing.assert_array_equal(a, train(image, np.random.default_rng(5)))  # seeded: reproducible
    assert not np.array_equal(a, train(image, np.random.default_rng(6)))
    assert a.shape == (3, 32, 32)
    # the own generator is seeded too
    np.testing.assert_array_equal(Preprocess(32, train=True, seed=3)(image), Preprocess(32, train=True, seed=3)(image))
    # the crop is cut out first and then resized (torchvision's resized_crop)
    box = random_resized_crop_box(32, 32, np.random.default_rng(5))
    by_hand = np.asarray(Image.fromarray(image).crop(box).resize((32, 32), Image.BICUBIC))
    np.testing.assert_allclose(a, (by_hand.transpose(2, 0, 1) / 255 - MEAN) / STD, atol=1e-5)
    # batch() stacks the same results
    batch = train.batch([image, image], [np.random.default_rng(5), np.random.default_rng(6)])
    assert batch.shape == (2, 3, 32, 32)
    np.testing.assert_array_equal(batch[0], a)
    # scale 1 and ratio 1 on a square image: the crop is the whole image, the same as evaluation
    whole = Preprocess(32, train=True, scale=(1.0, 1.0), ratio=(1.0, 1.0))(image)
    np.testing.assert_allclose(whole, Preprocess(32)(image), atol=1e-6)


# ---------------------------------------------------------------- CSV datasets
def _write_images(folder, n, size=(20, 12)):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", size, (10 * i, 100, 200)).save(folder / f"{i}.png")


def _write_csv(path, rows, header="filepath,title", sep=","):
    lines = [header] + [sep.join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_csv_good(tmp_path):
    _write_images(tmp_path / "imgs", 3)
    Image.new("L", (8, 8), 50).save(tmp_path / "imgs" / "gray.png")
    (tmp_path / "meta").mkdir()
    path = _write_csv(tmp_path / "meta" / "data.csv", [
        ("../imgs/0.png", "a blue thing"),  # relative to the CSV's folder
        (str(tmp_path / "imgs" / "1.png"), '"a caption, with a comma"'),  # absolute path, quoted field
        ("../imgs/gray.png", "a gray square"),
    ])
    ds = CsvDataset(path)
    assert len(ds) == 3
    image, caption, label = ds[1]
    assert image.mode == "RGB" and image.size == (20, 12) and caption == "a caption, with a comma" and label == -1
    assert ds[2][0].mode == "RGB"  # grayscale converted


def test_csv_other_keys_and_separator(tmp_path):
    _write_images(tmp_path, 2)
    path = _write_csv(tmp_path / "d.tsv", [("x", "0.png", "a b"), ("y", "1.png", "c d")],
                      header="id\timage\tcaption", sep="\t")
    ds = CsvDataset(path, img_key="image", caption_key="caption", sep="\t")
    assert ds.captions == ["a b", "c d"]


def test_csv_missing_column(tmp_path):
    path = _write_csv(tmp_path / "d.csv", [("0.png", "a")], header="path,title")
    with pytest.raises(CsvDataError, match=r"no image path column 'filepath'.*columns \['path', 'title'\]"):
        CsvDataset(path)
    with pytest.raises(FileNotFoundError, match="nothere.csv"):
        CsvDataset(tmp_path / "nothere.csv")


@pytest.fixture
def bad_csv(tmp_path):
    _write_images(tmp_path, 2)
    (tmp_path / "corrupt.png").write_bytes(b"this is not a png")
    (tmp_path / "notes.txt").write_text("hello")
    rows = [
        ("0.png", "a fine caption"),                   # line 2
        ("missing.png", "a caption"),                  # line 3: no such file
        ("corrupt.png", "a caption"),                  # line 4: not an image
        ("notes.txt", "a caption"),                    # line 5: not an image either
        ("1.png", "  "),                               # line 6: empty caption
        ("1.png", " ".join(["red circle"] * 50)),      # line 7: too long for 77 tokens
        ("1.png", "another fine caption"),             # line 8
    ]
    return _write_csv(tmp_path / "d.csv", rows)


@pytest.mark.parametrize("line, message", [
    (3, r"image file 'missing.png' not found"),
    (4, r"image file 'corrupt.png' is not a readable image"),
    (5, r"image file 'notes.txt' is not a readable image"),
    (6, r"empty caption in column 'title' for image '1.png'"),
    (7, r"caption 'red circle red circle .*' is too long: \d+ tokens .* context length is 77"),
])
def test_csv_each_bad_row_is_named(tmp_path, bad_csv, tokenizer, line, message):
    lines = bad_csv.read_text().splitlines()
    keep = [lines[0], lines[1], lines[line - 1]]  # header, a good row, the bad one (now line 3)
    path = tmp_path / f"only{line}.csv"
    path.write_text("\n".join(keep) + "\n")
    with pytest.raises(CsvDataError, match=rf"only{line}.csv line 3: {message}.*skip_bad_rows"):
        CsvDataset(path, tokenizer=tokenizer)


def test_csv_skip_bad_rows_reports_one_summary_line(bad_csv, tokenizer, capsys):
    lines = []
    ds = CsvDataset(bad_csv, tokenizer=tokenizer, skip_bad_rows=True, log=lines.append)
    assert len(ds) == 2 and ds.captions == ["a fine caption", "another fine caption"]
    assert [s.split(":")[0] for s in ds.skipped] == ["line 3", "line 4", "line 5", "line 6", "line 7"]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert re.fullmatch(r".*d.csv: skipped 5 bad row\(s\) of 7 \(--skip-bad-rows\): line 3: image file "
                        r"'missing.png' not found \(looked for .*\); line 4: image file 'corrupt.png' is not a "
                        r"readable image \(no format Pillow knows\); line 5: .*'notes.txt'.*; and 2 more", lines[0])
    CsvDataset(bad_csv, tokenizer=tokenizer, skip_bad_rows=True)  # by default: the same line on stderr
    out, err = capsys.readouterr()
    assert out == "" and err == lines[0] + "\n"


def test_csv_without_tokenizer_does_not_check_length(bad_csv):
    lines = []
    assert len(CsvDataset(bad_csv, skip_bad_rows=True, log=lines.append)) == 3
    assert "skipped 4 bad row(s) of 7" in lines[0]


def test_csv_short_row(tmp_path):
    _write_images(tmp_path, 1)
    path = tmp_path / "d.csv"
    path.write_text("filepath,title\n0.png,a\n0.png\n")
    with pytest.raises(CsvDataError, match=r"d.csv line 3: row has too few fields"):
        CsvDataset(path)


def test_csv_image_broken_after_loading(tmp_path):
    _write_images(tmp_path, 1)
    ds = CsvDataset(_write_csv(tmp_path / "d.csv", [("0.png", "a")]))
    (tmp_path / "0.png").write_bytes(b"garbage")
    with pytest.raises(CsvDataError, match=r"d.csv line 2: cannot read image .*0.png"):
        ds[0]


def test_csv_all_rows_bad(tmp_path):
    path = _write_csv(tmp_path / "d.csv", [("nope.png", "a")])
    lines = []
    with pytest.raises(CsvDataError, match=r"no usable rows \(1 skipped\)"):
        CsvDataset(path, skip_bad_rows=True, log=lines.append)
    assert "skipped 1 bad row(s) of 1" in lines[0]


def test_csv_not_utf8_names_line_byte_and_column(tmp_path):
    _write_images(tmp_path, 3)
    rows = ["filepath,title", "0.png,a fine caption", "1.png,a caf\u00e9 in Paris", "2.png,another one"]
    latin1 = ("\r\n".join(rows) + "\r\n").encode("latin-1")  # \u00e9 is the single byte 0xe9, not UTF-8
    path = tmp_path / "pairs.csv"
    path.write_bytes(latin1)
    with pytest.raises(CsvDataError, match=r"pairs.csv line 3: not UTF-8 \(byte 0xe9 at column 12\) "
                                           r"\(--skip-bad-rows"):
        CsvDataset(path)
    lines = []
    ds = CsvDataset(path, skip_bad_rows=True, log=lines.append)  # skipped like any bad row
    assert ds.captions == ["a fine caption", "another one"] and ds.lines == [2, 4]
    assert "line 3: not UTF-8 (byte 0xe9 at column 12)" in lines[0]
    # the same text in UTF-8, with a byte-order mark, is fine
    path.write_bytes(b"\xef\xbb\xbf" + latin1.decode("latin-1").encode("utf-8"))
    assert CsvDataset(path).captions[1] == "a caf\u00e9 in Paris"
    # a header that is not UTF-8 cannot be skipped
    path.write_bytes(b"filepath,t\xeftle\n0.png,a\n")
    with pytest.raises(CsvDataError, match=r"pairs.csv header: not UTF-8 \(byte 0xef at column 11\)"):
        CsvDataset(path, skip_bad_rows=True)
    # a quoted caption over two lines: the row is named by its first line, the bad byte by its own
    path.write_bytes(b'filepath,title\n0.png,"two\nlines"\n1.png,"one\n\xe9"\n')
    with pytest.raises(CsvDataError, match=r"pairs.csv line 4: not UTF-8 \(byte 0xe9 at column 1\)"):
        CsvDataset(path)


def test_csv_directories_and_empty_files(tmp_path):
    _write_images(tmp_path, 1)
    (tmp_path / "images").mkdir()
    path = _write_csv(tmp_path / "d.csv", [("0.png", "a"), ("images", "a folder")])
    with pytest.raises(CsvDataError, match=r"d.csv line 3: image path 'images' is a directory \(.*images\), "
                                           r"not an image file"):
        CsvDataset(path)
    with pytest.raises(CsvDataError, match=r"is a directory, not a CSV file"):
        CsvDataset(tmp_path / "images")
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(CsvDataError, match=r"empty.csv is empty: expected a header row such as 'filepath,title'"):
        CsvDataset(tmp_path / "empty.csv")
    with pytest.raises(CsvDataError, match=r"separator ';;': expected one character"):
        CsvDataset(path, sep=";;")
    long_name = "x" * 300 + ".png"  # longer than a file name may be
    path = _write_csv(tmp_path / "long.csv", [("0.png", "a"), (long_name, "b")])
    with pytest.raises(CsvDataError, match=r"long.csv line 3: image (file|path) 'x+.png' (not found|cannot be)"):
        CsvDataset(path)


def test_csv_parser_errors_name_the_line(tmp_path):
    _write_images(tmp_path, 1)
    path = tmp_path / "d.csv"
    path.write_text("filepath,title\n0.png,a\n0.png," + "x" * 200_000 + "\n")
    with pytest.raises(CsvDataError, match=r"d.csv line 3: not readable as CSV \(field larger than field limit"):
        CsvDataset(path, skip_bad_rows=True)


# ---------------------------------------------------------------- loader
def _collect(iterable):
    return [(b.indices.copy(), b.images.copy(), b.tokens.copy()) for b in iterable]


def test_loader_batches(tokenizer):
    ds = ShapesDataset(10, seed=1, resolution=16)
    loader = Loader(ds, 4, Preprocess(16), tokenizer, context_length=20, seed=0)
    assert len(loader) == 3
    batches = list(loader)
    assert [len(b.indices) for b in batches] == [4, 4, 2]
    assert sorted(np.concatenate([b.indices for b in batches])) == list(range(10))  # a permutation
    b = batches[0]
    assert b.images.shape == (4, 3, 16, 16) and b.images.dtype == np.float32
    assert b.tokens.shape == (4, 20) and b.tokens.dtype == np.int64
    assert (b.tokens.argmax(-1) == (b.tokens != 0).sum(-1) - 1).all()  # EOT is the last nonzero and the max
    for k, i in enumerate(b.indices):
        image, caption, label = ds[int(i)]
        np.testing.assert_array_equal(b.images[k], Preprocess(16)(image))
        assert b.captions[k] == caption and b.labels[k] == label
    images, tokens, *_ = b  # the (images, tokens) unpacking
    assert images is b.images


def test_loader_reshuffles_each_epoch_and_is_deterministic(tokenizer):
    ds = ShapesDataset(12, seed=1, resolution=16)

    def make(seed):
        return Loader(ds, 5, Preprocess(16, train=True), tokenizer, seed=seed, drop_last=True)

    a, b = make(0), make(0)
    a0, a1 = _collect(a), _collect(a)  # iterating again runs the next epoch
    b0, b1 = _collect(b), _collect(b)
    for x, y in zip(a0 + a1, b0 + b1):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)
    assert not np.array_equal(np.concatenate([x[0] for x in a0]), np.concatenate([x[0] for x in a1]))
    assert not np.array_equal(a0[0][0], _collect(make(1))[0][0])  # another seed, another order
    # epoch by number (resuming) replays the same batches, threaded or not
    inline = Loader(ds, 5, Preprocess(16, train=True), tokenizer, seed=0, drop_last=True, prefetch=0)
    for x, y in zip(_collect(inline.epoch(1)), a1):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)
    # the same item in two epochs gets a different augmentation
    i = int(a0[0][0][0])
    k1 = [(bi, k) for bi, batch in enumerate(a1) for k, j in enumerate(batch[0]) if j == i]
    if k1:
        bi, k = k1[0]
        assert not np.array_equal(a0[0][1][0], a1[bi][1][k])


def test_loader_drop_last_and_order(tokenizer):
    ds = ShapesDataset(10, resolution=8)
    kept = Loader(ds, 4, Preprocess(8), tokenizer, drop_last=True)
    assert len(kept) == 2 and [len(b.indices) for b in kept] == [4, 4]
    ordered = Loader(ds, 4, Preprocess(8), tokenizer, shuffle=False)
    assert [b.indices.tolist() for b in ordered] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    with pytest.raises(ValueError, match="would give no batch"):
        Loader(ds, 11, Preprocess(8), tokenizer, drop_last=True)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        Loader(ds, 0, Preprocess(8), tokenizer)


def _loader_threads():
    return [t for t in threading.enumerate() if t.name.startswith("miniclip-loader")]


def test_loader_thread_prefetches_and_stops(tokenizer):
    ds = ShapesDataset(64, resolution=8)
    loader = Loader(ds, 4, Preprocess(8), tokenizer, prefetch=2)
    it = iter(loader)
    next(it)
    assert len(_loader_threads()) == 1  # preparing the next batches in the background
    it.close()  # leaving early joins the thread
    assert _loader_threads() == []
    for _ in loader:
        break  # a for loop that breaks closes the iterator too
    assert _loader_threads() == []
    assert len(list(loader)) == 16 and _loader_threads() == []


class _Exploding:
    def __len__(self):
        return 8

    def __getitem__(self, i):
        if i == 5:
            raise OSError(f"disk on fire at item {i}")
        return np.zeros((8, 8, 3), np.uint8), "a red circle", 0


def test_loader_thread_errors_reach_the_caller(tokenizer):
    loader = Loader(_Exploding(), 2, Preprocess(8), tokenizer, shuffle=False)
    with pytest.raises(OSError, match="disk on fire at item 5"):
        list(loader)
    assert _loader_threads() == []


def test_csv_export_round_trip_through_loader(tmp_path, tokenizer):
    csv_path = export_samples(tmp_path, 6, seed=4, resolution=16)
    csv_ds, shapes_ds = CsvDataset(csv_path, tokenizer=tokenizer), ShapesDataset(6, seed=4, resolution=16)
    a = next(iter(Loader(csv_ds, 6, Preprocess(16), tokenizer, shuffle=False)))
    b = next(iter(Loader(shapes_ds, 6, Preprocess(16), tokenizer, shuffle=False)))
    np.testing.assert_array_equal(a.images, b.images)  # PNG is lossless
    np.testing.assert_array_equal(a.tokens, b.tokens)


# ---------------------------------------------------------------- Hypothesis: the CSV reader on any bytes
@st.composite
def csv_bytes(draw):
    """(file bytes, separator): mostly a header and rows that parse, with awkward bytes mixed in."""
    sep = draw(st.sampled_from([",", "\t", ";"])).encode()
    header = draw(st.sampled_from([b"filepath%stitle\n", b"\xef\xbb\xbftitle%sfilepath\r\n", b"filepath%stitle\r",
                                   b""])).replace(b"%s", sep)
    pieces = [b"0.png" + sep + b"a red circle\n", b"images" + sep + b"a folder\r\n", b"missing.png" + sep,
              b"0.png" + sep, sep, b"a red circle\n", b"\n", b"\r", b"\r\n", b'"', b'""', b"\xe9", b"\x00",
              b"\xc3\xa9", b" ", b"/", b"..", b"\\"]
    body = draw(st.lists(st.one_of(st.sampled_from(pieces), st.binary(max_size=6)), max_size=30))
    return header + b"".join(body), sep.decode()


@pytest.fixture(scope="module")
def csv_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("random_csv")
    _write_images(folder, 1)
    (folder / "images").mkdir()
    return folder


@given(case=st.one_of(csv_bytes(), st.tuples(st.binary(max_size=200), st.sampled_from([",", "\t"]))),
       skip=st.booleans(), use_tokenizer=st.booleans())
def test_csv_reader_on_random_bytes(csv_folder, tokenizer, case, skip, use_tokenizer):
    data, sep = case
    path = csv_folder / "random.csv"
    path.write_bytes(data)
    lines = []
    try:
        ds = CsvDataset(path, sep=sep, skip_bad_rows=skip, tokenizer=tokenizer if use_tokenizer else None,
                        context_length=16, log=lines.append)
    except CsvDataError as error:
        message = str(error)
        event(message.replace(str(path), "CSV").split(":")[0][:40])  # --hypothesis-show-statistics
        assert "\n" not in message and "\r" not in message and str(path) in message
        return
    event(f"a dataset{' (rows skipped)' if ds.skipped else ''}")
    assert len(ds) >= 1 and len(ds.captions) == len(ds.paths) == len(ds.lines)
    assert all(p.is_file() for p in ds.paths)
    assert len(lines) == (1 if ds.skipped else 0) and all("\n" not in line for line in lines)
