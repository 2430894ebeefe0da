"""Images in, whatever their mode: each mode against an 8-bit twin of the same drawing, and Hypothesis
on random modes, sizes and bytes (``miniclip.data.transforms.to_rgb_image`` / ``Preprocess``)."""

import io
import re
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from miniclip.data import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, Preprocess
from miniclip.data.shapes import draw_sample
from miniclip.data.transforms import to_8bit, to_rgb_image

R = 32
PRE = Preprocess(R, dtype=np.float64)
DRAWING = draw_sample(0, 3, R).image                     # (R, R, 3) uint8: a shape on a dark background
GRAY = np.asarray(Image.fromarray(DRAWING).convert("L"))  # (R, R) uint8: its 8-bit gray twin


def png_round_trip(image):
    """``image`` saved as PNG and opened again: the path a user's file takes."""
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    buffer.seek(0)
    return Image.open(buffer)


def same_pixels(image, twin, atol=0):
    """``image`` and ``twin`` preprocess to the same array (within ``atol`` 8-bit levels)."""
    a, b = PRE(image), PRE(twin)
    np.testing.assert_allclose(a, b, rtol=0, atol=atol / 255 / min(OPENAI_CLIP_STD) + 1e-12)


# ---------------------------------------------------------------- high bit depth: scaled by their range
@pytest.mark.parametrize("make", [
    lambda: Image.fromarray(GRAY.astype(np.uint16) * 257),                                # I;16
    lambda: Image.frombytes("I;16B", GRAY.shape[::-1], (GRAY.astype(">u2") * 257).tobytes()),
    lambda: png_round_trip(Image.fromarray(GRAY.astype(np.uint16) * 257)),                # a 16-bit PNG
    lambda: Image.fromarray(GRAY.astype(np.int32) * 257),                                 # I, 16-bit values
    lambda: Image.fromarray(GRAY.astype(np.int32)),                                       # I, 8-bit values
    lambda: Image.fromarray(GRAY.astype(np.float32) / 255),                               # F, fractions
    lambda: Image.fromarray(GRAY.astype(np.float32)),                                     # F, levels
], ids=["I;16", "I;16B", "I;16 png", "I 16-bit", "I 8-bit", "F [0,1]", "F [0,255]"])
def test_high_bit_depth_matches_its_8bit_twin(make):
    image = make()
    assert image.mode in ("I;16", "I;16B", "I", "F")
    assert np.array_equal(np.asarray(to_rgb_image(image)), np.asarray(Image.fromarray(GRAY).convert("RGB")))
    same_pixels(image, Image.fromarray(GRAY))


def test_different_16bit_drawings_stay_different():
    # Pillow alone clips 16-bit values at 255: three different drawings all read as white
    images = [Image.fromarray(np.asarray(Image.fromarray(draw_sample(0, i, R).image).convert("L"))
                              .astype(np.uint16) * 257) for i in range(3)]
    assert all(np.asarray(im.convert("RGB")).min() == 255 for im in images if np.asarray(im).min() > 255)
    out = [PRE(im) for im in images]
    assert not np.array_equal(out[0], out[1]) and not np.array_equal(out[1], out[2])
    assert out[0].std() > 0.1


def test_to_8bit_ranges_and_constants():
    sixteen = ((0, 65535),)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division by zero, no overflow
        assert np.all(to_8bit(np.full((4, 5), 30000, np.uint16), sixteen) == 117)  # constant stays constant
        assert np.all(to_8bit(np.zeros((3, 3), np.uint16), sixteen) == 0)
        assert np.all(to_8bit(np.full((2, 2), -7.0), ((0, 1),)) == 0)  # no range holds it, nothing to stretch
        # outside every usual range: the values' own range [min, max]
        np.testing.assert_array_equal(to_8bit(np.array([[-100, 0, 100]]), ((0, 255),)), [[0, 128, 255]])
        np.testing.assert_array_equal(to_8bit(np.array([[0, 70000]]), ((0, 255), (0, 65535))), [[0, 255]])
        # NaN reads as the low end, infinities as the ends
        np.testing.assert_array_equal(to_8bit(np.array([[np.nan, np.inf, -np.inf, 0.5]]), ((0, 1),)),
                                      [[0, 255, 0, 128]])
        assert np.all(to_8bit(np.full((2, 2), np.nan), ((0, 1),)) == 0)
    # a dark 16-bit image stays dark (its range is the 16 bits, not its own min..max)
    assert np.asarray(to_rgb_image(Image.fromarray(np.full((4, 4), 1000, np.uint16)))).max() == 4


# ---------------------------------------------------------------- transparency: composited on black
def shape_pair(mode_of_color="RGB", canvas=(255, 255, 255)):
    """(image with a transparent canvas whose hidden color is ``canvas``, its twin drawn on black)."""
    color = (225, 35, 35) if mode_of_color == "RGB" else 180
    alpha = Image.new("L", (R, R), 0)
    ImageDraw.Draw(alpha).ellipse((6, 8, 25, 27), fill=255)
    hidden = Image.new(mode_of_color, (R, R), canvas if mode_of_color == "RGB" else canvas[0])
    ImageDraw.Draw(hidden).ellipse((6, 8, 25, 27), fill=color)
    twin = Image.new(mode_of_color, (R, R), 0)
    ImageDraw.Draw(twin).ellipse((6, 8, 25, 27), fill=color)
    hidden.putalpha(alpha)
    return hidden, twin


def test_rgba_and_la_are_composited_on_black():
    for mode in ("RGB", "L"):
        image, twin = shape_pair(mode)
        assert image.mode == mode + "A"
        same_pixels(image, twin)
        same_pixels(png_round_trip(image), twin)
        assert not np.array_equal(PRE(image), PRE(image.convert(mode)))  # dropping alpha shows the white canvas
    image, twin = shape_pair()
    same_pixels(image.convert("RGBa"), twin, atol=1)  # premultiplied alpha (rounding: one level)
    same_pixels(shape_pair("L")[0].convert("La"), shape_pair("L")[1], atol=1)


def test_partial_alpha_blends_with_black():
    image = Image.new("RGBA", (R, R), (200, 100, 40, 128))
    expected = np.round(np.array([200, 100, 40]) * 128 / 255)
    np.testing.assert_allclose(np.asarray(to_rgb_image(image))[0, 0], expected, atol=1)
    assert np.asarray(to_rgb_image(Image.new("RGBA", (4, 4), (255, 255, 255, 0)))).max() == 0  # all transparent


def test_palette_with_and_without_transparency():
    image, twin = shape_pair()
    palette = twin.convert("P", palette=Image.ADAPTIVE, colors=8)  # black, red, antialiasing-free
    same_pixels(palette, twin)
    same_pixels(png_round_trip(palette), twin)
    hidden = image.convert("RGB").convert("P", palette=Image.ADAPTIVE, colors=8)  # red on white
    white = hidden.getpixel((0, 0))
    hidden.info["transparency"] = white  # the canvas's palette entry is transparent (as in a GIF or PNG)
    same_pixels(hidden, twin)
    same_pixels(png_round_trip(hidden), twin)
    pa = image.convert("PA")
    assert pa.mode == "PA"
    same_pixels(pa, twin, atol=2)  # (Pillow's own quantization of the red to the web palette)


def test_a_transparent_color_in_rgb_l_and_16bit():
    image, twin = shape_pair()
    rgb = image.convert("RGB")
    rgb.info["transparency"] = (255, 255, 255)  # PNG's tRNS chunk for truecolor images
    same_pixels(rgb, twin)
    same_pixels(png_round_trip(rgb), twin)
    gray, gray_twin = shape_pair("L")
    gray = gray.convert("L")
    gray.info["transparency"] = 255
    same_pixels(png_round_trip(gray), gray_twin)
    sixteen = Image.fromarray(np.asarray(gray).astype(np.uint16) * 257)
    sixteen.info["transparency"] = 65535
    same_pixels(sixteen, gray_twin)


def test_cmyk_ycbcr_and_bilevel():
    same_pixels(Image.fromarray(DRAWING).convert("CMYK"), Image.fromarray(DRAWING))
    same_pixels(Image.fromarray(DRAWING).convert("YCbCr"), Image.fromarray(DRAWING), atol=3)
    bilevel = Image.fromarray(GRAY).convert("1")
    same_pixels(bilevel, bilevel.convert("L"))


# ---------------------------------------------------------------- Hypothesis: any mode, any size
MODES = ("1", "L", "P", "RGB", "RGBA", "LA", "PA", "RGBa", "La", "CMYK", "YCbCr", "HSV", "LAB", "RGBX",
         "I;16", "I;16B", "I;16L", "I", "F")
LOW = (0 - np.array(OPENAI_CLIP_MEAN)) / np.array(OPENAI_CLIP_STD)
HIGH = (1 - np.array(OPENAI_CLIP_MEAN)) / np.array(OPENAI_CLIP_STD)

sizes = st.one_of(
    st.tuples(st.integers(1, 40), st.integers(1, 40)),    # small, 1x1 included
    st.tuples(st.integers(200, 1500), st.integers(1, 3)),  # very wide
    st.tuples(st.integers(1, 3), st.integers(200, 1500)),  # very tall
)


@settings(max_examples=60, deadline=None)
@given(mode=st.sampled_from(MODES), size=sizes, resolution=st.integers(1, 16), train=st.booleans(),
       transparent=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_preprocess_any_mode_and_size(mode, size, resolution, train, transparent, seed):
    rng = np.random.default_rng(seed)
    n_bytes = len(Image.new(mode, size).tobytes())
    image = Image.frombytes(mode, size, rng.bytes(n_bytes))  # random pixels: NaN and Inf too, for F
    if transparent and mode in ("L", "P", "RGB", "I;16", "I"):
        image.info["transparency"] = image.getpixel((0, 0))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        rgb = to_rgb_image(image)
        out = Preprocess(resolution, train=train, seed=seed)(image)
    assert rgb.mode == "RGB" and rgb.size == size
    assert out.shape == (3, resolution, resolution) and out.dtype == np.float32
    assert np.isfinite(out).all()
    assert (out >= LOW.reshape(3, 1, 1) - 1e-5).all() and (out <= HIGH.reshape(3, 1, 1) + 1e-5).all()


# ---------------------------------------------------------------- through `miniclip zeroshot`, like a user
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from miniclip.training import TrainConfig, train
    out = tmp_path_factory.mktemp("image_modes") / "run"
    config = TrainConfig(out=str(out), steps=2, batch_size=8, image_resolution=R, vision_patch_size=16,
                         vision_width=32, vision_layers=1, vision_heads=1, transformer_width=32, transformer_layers=1,
                         transformer_heads=1, embed_dim=32, context_length=16, vocab_size=600, warmup_steps=0,
                         eval_every=2, eval_images=8, eval_heldout_images=8, final_eval_images=8,
                         final_eval_heldout_images=8, threads=1, progress=False, plots=False)
    train(config, log=lambda *args: None)
    return str(out)


def test_zeroshot_gives_every_twin_the_same_answer(tiny_run, tmp_path, capsys):
    from miniclip.cli import main
    image, twin = shape_pair()
    files = {"twin.png": twin, "transparent.png": image, "gray.png": Image.fromarray(GRAY),
             "gray16.png": Image.fromarray(GRAY.astype(np.uint16) * 257)}
    for name, im in files.items():
        im.save(tmp_path / name)
    with Image.open(tmp_path / "gray16.png") as sixteen:
        assert sixteen.mode == "I;16"
    argv = ["zeroshot", tiny_run, *(str(tmp_path / name) for name in files), "--labels", "red circle,white circle",
            "--top", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    blocks = out.split(str(tmp_path))[1:]  # one per image: its name, then its labels
    answers = {block.splitlines()[0].lstrip("/"): block.splitlines()[1:] for block in blocks}
    assert answers["transparent.png"] == answers["twin.png"] and answers["gray16.png"] == answers["gray.png"]
    Image.new("RGBA", (R, R), (255, 0, 0, 0)).save(tmp_path / "empty.png")
    assert main(["zeroshot", tiny_run, str(tmp_path / "empty.png"), "--labels", "a,b"]) == 1
    assert re.search(r"image '.*empty.png' is fully transparent: nothing to classify", capsys.readouterr().err)


def test_fully_transparent():
    from miniclip.data.transforms import fully_transparent
    assert fully_transparent(Image.new("RGBA", (3, 3), (9, 9, 9, 0)))
    assert not fully_transparent(shape_pair()[0]) and not fully_transparent(Image.fromarray(DRAWING))
    sixteen = Image.fromarray(np.full((2, 2), 7, np.uint16))
    sixteen.info["transparency"] = 7
    assert fully_transparent(sixteen)
    palette = Image.new("P", (2, 2), 3)
    palette.info["transparency"] = 3
    assert fully_transparent(palette) and fully_transparent(Image.new("La", (2, 2)))


@given(shape=st.one_of(st.tuples(st.integers(1, 30), st.integers(1, 30)),
                       st.tuples(st.integers(1, 30), st.integers(1, 30), st.sampled_from([3, 4])),
                       st.tuples(st.integers(1, 2), st.integers(300, 900))),
       dtype=st.sampled_from([np.uint8, np.uint16]), transposed=st.booleans(), resolution=st.integers(1, 16),
       seed=st.integers(0, 2**32 - 1))
def test_preprocess_any_array(shape, dtype, transposed, resolution, seed):
    rng = np.random.default_rng(seed)
    if transposed:  # a non-contiguous view
        array = rng.integers(0, np.iinfo(dtype).max, size=(shape[1], shape[0]) + shape[2:], endpoint=True,
                             dtype=dtype).swapaxes(0, 1)
    else:
        array = rng.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True, dtype=dtype)
    if dtype == np.uint16 and len(shape) == 3:
        with pytest.raises(TypeError, match="uint16 array \\(H, W\\)"):
            Preprocess(resolution)(array)
        return
    out = Preprocess(resolution)(array)
    assert out.shape == (3, resolution, resolution) and np.isfinite(out).all()
    as_file = Image.fromarray(np.ascontiguousarray(array))  # L, RGB, RGBA or I;16
    assert as_file.mode == ("I;16" if dtype == np.uint16 else {1: "L", 3: "RGB", 4: "RGBA"}[(shape + (1,))[2]])
    assert np.array_equal(np.asarray(to_rgb_image(array)), np.asarray(to_rgb_image(as_file)))
