"""BPETokenizer: the original CLIP vocabulary id for id, training, files, the clip.tokenize contract."""

from pathlib import Path

import numpy as np
import pytest
import regex
from hypothesis import assume, given
from hypothesis import strategies as st

from miniclip.tokenizer import (EOT_TEXT, SOT_TEXT, BPETokenizer, bytes_to_unicode, clean_text,
                                pre_split)

# The original vocabulary lives beside the repository (../shared/data) in CI; never copied in here.
CLIP_VOCAB = Path(__file__).resolve().parents[2] / "shared/data/bpe_simple_vocab_16e6.txt.gz"
_WS = regex.compile(r"\s+")

CORPUS = [
    "a small red circle on the left", "a photo of a blue star", "there is a green square at the top",
    "a large white cross in the center", "a purple diamond at the bottom", "a photo of a small cyan triangle",
    "an orange circle on the right", "a yellow star", "the red square is large", "a blue cross, small.",
]


@pytest.fixture(scope="module")
def clip_tokenizer():
    if not CLIP_VOCAB.is_file():
        pytest.skip(f"original CLIP vocabulary not present at {CLIP_VOCAB}")
    return BPETokenizer.from_clip_vocab(CLIP_VOCAB)


@pytest.fixture(scope="module")
def small_tokenizer():
    return BPETokenizer.train(CORPUS, vocab_size=600)


# ---------------------------------------------------------------- the original vocabulary
def test_clip_vocab_ids_and_special_tokens(clip_tokenizer):
    tok = clip_tokenizer
    assert len(tok.merges) == 48894
    assert tok.vocab_size == 49408
    assert (tok.sot_token, tok.eot_token) == (49406, 49407)
    assert tok.encode(SOT_TEXT) == [49406] and tok.encode(EOT_TEXT) == [49407]


# Expected ids: checked against the original simple_tokenizer.py run on the original vocabulary
# (with ftfy; none of these texts is changed by ftfy).
CLIP_CASES = [
    ("a diagram", [320, 22697]),
    ("a photo of a dog.", [320, 1125, 539, 320, 1929, 269]),
    # punctuation runs and single digits
    ("Hello, World!!! It's 2024...", [3306, 267, 1002, 995, 585, 568, 273, 271, 273, 275, 678]),
    ("3.14159 and 1,000,000",
     [274, 269, 272, 275, 272, 276, 280, 537, 272, 267, 271, 271, 271, 267, 271, 271, 271]),
    # every contraction of the pre-split pattern
    ("don't we'll they've I'm you'd she's they're",
     [847, 713, 649, 1342, 889, 1200, 328, 880, 592, 1896, 1043, 568, 889, 982]),
    # accents (NFC), emoji with variation selector and skin tone modifier
    ("café naïve résumé Zürich", [15304, 1097, 35689, 563, 29106, 7054, 4166, 89, 6522, 4021]),
    ("I ❤️ 🐶 emoji 👍🏽", [328, 1752, 10631, 16327, 43722]),
    # HTML entities, unescaped twice
    ("fish &amp; chips &amp;amp; &lt;b&gt; &quot;quoted&quot; &#39;x&#39;",
     [2759, 261, 8855, 261, 283, 321, 285, 257, 27706, 257, 262, 343, 262]),
    # whitespace of every kind collapses
    ("  lots   of \t whitespace \n here  ", [2958, 539, 4699, 2138, 763]),
    # the special token written in the text is the special token, as in the original
    ("a <|endoftext|> b", [320, 49407, 321]),
]
LONG_TEXT = ("The quick brown fox jumps over the lazy dog; the dog sleeps under a big old tree near the river, "
             "while seven small birds sing songs in the early morning light of a cold winter day in 1999.")
LONG_IDS = [518, 3712, 2866, 3240, 18911, 962, 518, 10753, 1929, 282, 518, 1929, 16610, 1798, 320, 1205,
            896, 2677, 2252, 518, 2473, 267, 1519, 5757, 2442, 4337, 1197, 4641, 530, 518, 2090, 1119,
            1395, 539, 320, 3153, 2541, 575, 530, 272, 280, 280, 280, 269]


@pytest.mark.parametrize("text, ids", CLIP_CASES + [(LONG_TEXT, LONG_IDS)])
def test_clip_vocab_matches_original(clip_tokenizer, text, ids):
    assert clip_tokenizer.encode(text) == ids


def test_clip_decode(clip_tokenizer):
    tok = clip_tokenizer
    assert tok.decode([320, 1125, 539, 320, 1929, 269]) == "a photo of a dog . "
    assert tok.decode(tok.encode("café ❤️ &amp; 42")) == "café ❤️ & 4 2 "


def test_clip_tokenize_contract(clip_tokenizer):
    tok = clip_tokenizer
    out = tok(["a diagram", "a photo of a dog."])
    assert out.dtype == np.int64 and out.shape == (2, 77)
    np.testing.assert_array_equal(out[0, :4], [49406, 320, 22697, 49407])
    assert not out[0, 4:].any()
    assert (out.argmax(-1) == [3, 7]).all()  # end-of-text is the largest id in each row
    # 44 ids + SOT + EOT = 46 tokens: fits in 77 but not in 40
    with pytest.raises(ValueError, match=r"too long for context length 40.*46 tokens"):
        tok([LONG_TEXT], context_length=40)
    cut = tok([LONG_TEXT], context_length=40, truncate=True)
    np.testing.assert_array_equal(cut[0], [49406] + LONG_IDS[:38] + [49407])


# ---------------------------------------------------------------- the pieces
def test_bytes_to_unicode_table():
    table = bytes_to_unicode()
    assert list(table) [:3] == [ord("!"), ord('"'), ord("#")]  # printable bytes first, in order
    assert sorted(table) == list(range(256))
    assert len(set(table.values())) == 256
    assert table[ord("a")] == "a" and table[ord(" ")] == chr(256 + 32)  # space is the 33rd shifted byte
    assert not any(c.isspace() for c in table.values())


def test_clean_and_pre_split():
    assert clean_text("  A&amp;amp;B \n\t C ") == "a&b c"
    assert pre_split(clean_text("A dog's 42 toys!!")) == ["a", "dog", "'s", "4", "2", "toys", "!!"]


def test_trained_ids_layout(small_tokenizer):
    tok = small_tokenizer
    assert tok.vocab_size == 600 == 512 + len(tok.merges) + 2
    assert (tok.sot_token, tok.eot_token) == (598, 599)
    assert tok.encode("a") == [256 + list(bytes_to_unicode()).index(ord("a"))]  # "a</w>"
    ids = tok.encode("a small red circle")
    assert len(ids) == 4 and all(i >= 512 for i in ids[1:])  # frequent words became single tokens
    assert tok.decode(ids) == "a small red circle "


def test_train_stops_when_corpus_runs_out_of_pairs():
    tok = BPETokenizer.train(["ab ab ab"], vocab_size=1000)
    assert tok.merges == [("a", "b</w>")]
    assert tok.vocab_size == 515


def test_train_learns_frequent_pairs_first():
    tok = BPETokenizer.train(["aab", "ab", "ab"], vocab_size=516)
    assert tok.merges == [("a", "b</w>"), ("a", "ab</w>")]  # "ab</w>" occurs 3 times, "aa" once


def test_save_load_roundtrip(tmp_path, small_tokenizer):
    for name in ("vocab.txt", "vocab.txt.gz"):
        path = tmp_path / name
        small_tokenizer.save(path)
        loaded = BPETokenizer.load(path)
        assert loaded.merges == small_tokenizer.merges
        assert loaded.vocab_size == small_tokenizer.vocab_size
        assert loaded.encode("there is a red star") == small_tokenizer.encode("there is a red star")
    first = (tmp_path / "vocab.txt").read_text().split("\n")
    assert first[0].startswith("#version") and first[1] == " ".join(small_tokenizer.merges[0])
    # the same format as a string (checkpoints store it): one writer, one parser
    assert (tmp_path / "vocab.txt").read_text() == small_tokenizer.merges_text()
    assert BPETokenizer.from_merges_text(small_tokenizer.merges_text()).merges == small_tokenizer.merges
    with pytest.raises(ValueError, match="ckpt, line 3: expected a merge 'left right'"):
        BPETokenizer.from_merges_text("#version: 0.2\na b\na b c\n", "ckpt")


def test_save_load_clip_vocab(tmp_path, clip_tokenizer):
    path = tmp_path / "clip.txt.gz"
    clip_tokenizer.save(path)
    loaded = BPETokenizer.load(path)
    assert loaded.vocab_size == 49408
    assert loaded.encode("a photo of a dog.") == [320, 1125, 539, 320, 1929, 269]


def test_bad_inputs(tmp_path, small_tokenizer):
    with pytest.raises(ValueError, match="vocab_size must be an int >= 514"):
        BPETokenizer.train(CORPUS, vocab_size=100)
    with pytest.raises(TypeError, match="single str"):
        BPETokenizer.train("a red circle", vocab_size=600)
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        BPETokenizer.load(tmp_path / "nope.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("#version: 0.2\na b\nc d e\n")
    with pytest.raises(ValueError, match=r"line 3: expected a merge 'left right', got 'c d e'"):
        BPETokenizer.load(bad)
    with pytest.raises(ValueError, match=r"id 600 at position 1 is outside the vocabulary"):
        small_tokenizer.decode([0, 600])
    with pytest.raises(ValueError, match="context_length must be an int >= 2"):
        small_tokenizer("a", context_length=1)
    with pytest.raises(ValueError, match="lone surrogate"):
        small_tokenizer.encode("a \ud800 b")
    with pytest.raises(ValueError, match="merge 1 must be a pair of non-empty strings without whitespace"):
        BPETokenizer([("a", "b"), ("a b", "c")])
    with pytest.raises(TypeError, match="text must be a str"):
        small_tokenizer.encode(3)


def test_tokenize_padding_and_truncation(small_tokenizer):
    tok = small_tokenizer
    out = tok("a red star", context_length=8)
    assert out.shape == (1, 8) and out.dtype == np.int64
    n = len(tok.encode("a red star"))
    assert out[0, 0] == tok.sot_token and out[0, n + 1] == tok.eot_token and not out[0, n + 2:].any()
    with pytest.raises(ValueError, match=r"Input 'a red star' is too long for context length 3"):
        tok(["a red star"], context_length=3)
    cut = tok(["a red star"], context_length=3, truncate=True)
    np.testing.assert_array_equal(cut[0], [tok.sot_token, tok.encode("a red star")[0], tok.eot_token])
    assert tok([], context_length=5).shape == (0, 5)


# ---------------------------------------------------------------- properties
def _roundtrip_holds(tok, text):
    decoded = tok.decode(tok.encode(text))
    cleaned = clean_text(text)
    # Equal once whitespace is removed: nothing is lost or invented.
    assert _WS.sub("", decoded) == _WS.sub("", cleaned)
    # Exactly: every pre-split piece followed by one space (the special tokens carry no </w>).
    assume(SOT_TEXT not in cleaned and EOT_TEXT not in cleaned)
    assert decoded == "".join(piece + " " for piece in pre_split(cleaned))


@given(st.text(max_size=60))
def test_roundtrip_trained(small_tokenizer, text):
    _roundtrip_holds(small_tokenizer, text)


@given(st.text(max_size=60))
def test_roundtrip_clip(clip_tokenizer, text):
    _roundtrip_holds(clip_tokenizer, text)


@given(st.lists(st.text(alphabet="abcdé xyz.!'0123", max_size=20), max_size=12),
       st.integers(514, 560))
def test_training_is_deterministic_and_order_free(texts, vocab_size):
    a = BPETokenizer.train(texts, vocab_size)
    b = BPETokenizer.train(texts, vocab_size)
    c = BPETokenizer.train(list(reversed(texts)), vocab_size)
    assert a.merges == b.merges == c.merges
    for text in texts:
        _roundtrip_holds(a, text)
