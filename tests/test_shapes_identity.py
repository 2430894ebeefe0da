"""The shapes world is a fixed dataset: every pixel, caption and label of it is pinned by a SHA-256.

The accuracies quoted in the README and the tutorials were measured on these very pictures, so a
change to the drawing code (a faster one, say) must draw them again bit for bit. A floating-point
sum taken in another order can move a value by one unit in the last place and a pixel by one level
after rounding: only an exact digest catches that.

Each case hashes consecutive samples of one world (or style), seed, resolution and split: the image
bytes and shape, the caption, the label and the style. Together they draw every training style,
every shape, every background kind, blur, JPEG and noise, at 32 (the default run), 48 (exports,
the README) and 64 pixels. (One branch is too rare to reach here: ``styles.background``'s fallback
after 8 low-contrast draws, which no sample among the first 60,000 of seeds 0-2 takes.)

A change that is meant to draw another world (new styles, other ranges) records new digests here, and
the accuracies the docs quote are measured again. The digests were recorded with NumPy 2.4 and Pillow 13: another NumPy or Pillow may round or
rasterize differently (and draw a slightly different world), so elsewhere the test is skipped.
"""

import hashlib
from collections import Counter

import numpy as np
import PIL
import pytest

from miniclip.data.shapes import SHAPES, WORLDS, draw_sample

RECORDED_WITH = {"numpy": "2.4", "Pillow": "13"}

# (styles, seed, resolution, split, samples, SHA-256)
CASES = [
    ("diverse", 0, 32, "train", 2000, "dc1d9e2a1bf23a001c229c5618d42b18a3920109d838693f403f85e2e11438b3"),
    ("diverse", 1, 32, "train", 2000, "1d4588d22bbda88ed3e5c2a2c60540b0028164f807f79f1bf95010e66d1c3d25"),
    ("classic", 0, 32, "train", 1500, "8abbc697cfd2bffa48e2e52ffe37c272574169e35064c640a9cd97b7ab113380"),
    ("diverse", 2, 48, "train", 300, "7d884d916e8edd18200639311fc93242f8bbf034a8d513a635db428a874c77fd"),
    ("classic", 2, 48, "train", 200, "94a8c37747679021d91dd10c2eafeaeb104f9bd8edf80bafe555d6b20e34f78a"),
    ("diverse", 3, 64, "train", 300, "dc80db0b587b72e69ca64c0232fd661086fb9cf3011426fbb0fba0771ccab6f9"),
    ("classic", 3, 64, "train", 200, "ca06537a7a8964b3b96b7653bf8685180fa648c7b2846df2a6342afdc3fe5971"),
    ("diverse", 4, 32, "held_out", 300, "eaa86d7caea23be3453e3382860755fd04f7a835167625b6f948a80addbb9734"),
    ("diverse", 5, 32, "all", 300, "8fec5bb23fbf8ba2be1449d0af661032d224cc7681fbdf92e1e21fbe8107035f"),
    ("pixel", 6, 32, "train", 200, "ad9025b9bbdf614228da8d088f33fc89ccc6dc16e1147c183d4a06877f7574fc"),
]


def _major_minor(version: str, parts: int) -> str:
    return ".".join(version.split(".")[:parts])


def _digest(styles, seed, resolution, split, n):
    """SHA-256 over samples 0..n-1, and what they drew: Counter of (style, shape)."""
    digest, seen = hashlib.sha256(), Counter()
    for index in range(n):
        s = draw_sample(seed, index, resolution, split, styles)
        digest.update(s.image.tobytes())
        digest.update(f"{s.image.shape}|{s.caption}|{s.label}|{s.style}\n".encode())
        seen[s.style, s.shape] += 1
    return digest.hexdigest(), seen


@pytest.mark.skipif(_major_minor(np.__version__, 2) != RECORDED_WITH["numpy"]
                    or _major_minor(PIL.__version__, 1) != RECORDED_WITH["Pillow"],
                    reason=f"digests recorded with {RECORDED_WITH}, here numpy {np.__version__}, "
                           f"Pillow {PIL.__version__}")
@pytest.mark.parametrize("world, seed, resolution, split, n, expected", CASES,
                         ids=[f"{c[0]}-seed{c[1]}-{c[2]}px-{c[3]}" for c in CASES])
def test_the_world_draws_the_same_pictures(world, seed, resolution, split, n, expected):
    styles = WORLDS.get(world, (world,))
    digest, seen = _digest(styles, seed, resolution, split, n)
    if n >= 1000:  # the long cases reach every style with every shape
        assert set(seen) == {(style, shape) for style in styles for shape in SHAPES}
    assert digest == expected, (f"{world} seed {seed} at {resolution} px ({split}, {n} samples) no longer draws "
                                f"the recorded pictures (SHA-256 {digest}): the dataset changed; if that is "
                                f"meant, record the new digest and re-measure the accuracies the docs quote")
