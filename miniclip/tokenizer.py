"""BPETokenizer: CLIP's byte-level byte-pair encoding, trainable and compatible with the original vocabulary.

Shape legend:  N texts,  L context length (77 in CLIP).

The pipeline of the original ``clip/simple_tokenizer.py``, step by step:

1. clean      ``html.unescape`` twice, collapse runs of whitespace to one space, strip, lowercase.
              (The original first runs ``ftfy.fix_text``, which also repairs mojibake, straightens curly
              quotes and folds full-width forms; miniclip does not depend on ftfy, so text that ftfy
              would change can tokenize differently. Plain text, as in every test here, does not.)
2. pre-split  the cleaned text into pieces with ``PRE_SPLIT_PATTERN`` (``regex`` package, for ``\\p{L}`` /
              ``\\p{N}``): the special tokens, English contractions, runs of letters, *single* digits,
              runs of anything else that is not whitespace. Whitespace itself is dropped.
3. bytes      each piece's UTF-8 bytes become printable characters through ``bytes_to_unicode`` (so every
              string is encodable and no symbol is whitespace or a control character).
4. BPE        the piece is split into characters, ``</w>`` is glued to the last one (end of word), and the
              adjacent pair with the lowest merge rank is merged, everywhere, until no ranked pair is left.
5. ids        0..255 the 256 byte characters, 256..511 the same with ``</w>``, then one id per merge in
              rank order, then ``<|startoftext|>`` and ``<|endoftext|>`` as the last two ids
              (49406 and 49407 for the original's 48,894 merges). End-of-text is the largest id, which
              is why the text tower can find it with ``argmax``.

Decoding joins the symbols, maps characters back to bytes, decodes UTF-8 and turns every ``</w>`` into
a space. So the exact round trip is::

    decode(encode(t)) == "".join(piece + " " for piece in pre_split(clean_text(t)))

i.e. the cleaned text with whitespace only *between pieces* ("a dog." -> "a dog . "). In particular the
two agree once whitespace is removed from both, for any Unicode text (lone surrogates excepted: they are
not text and raise ``ValueError``). A literal ``<|startoftext|>`` / ``<|endoftext|>`` in the input
becomes the special token, as in the original.

File format (``from_clip_vocab``, ``save``, ``load``; as a string ``merges_text`` and ``from_merges_text``,
which checkpoints store): optionally gzipped UTF-8 text; the first line is
a header, every following non-empty line one merge "left right" in rank order. ``from_clip_vocab``
keeps the first 48,894 merges as the original does (the file holds more); ``load`` keeps all of them,
so a tokenizer with M merges has ``vocab_size = 512 + M + 2``.
"""

from __future__ import annotations

import gzip
import html
from collections import Counter
from functools import lru_cache
from pathlib import Path

import numpy as np
import regex

SOT_TEXT = "<|startoftext|>"
EOT_TEXT = "<|endoftext|>"
END_OF_WORD = "</w>"
CLIP_NUM_MERGES = 49152 - 256 - 2  # = 48894, the slice the original takes from its vocabulary file

PRE_SPLIT_PATTERN = (r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|"""
                     r"""[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""")
_PRE_SPLIT = regex.compile(PRE_SPLIT_PATTERN, regex.IGNORECASE)
_WHITESPACE = regex.compile(r"\s+")
_HAS_SPACE = regex.compile(r"\s")
_HEADER = "#version: 0.2"  # the original file's header line; miniclip writes the same


@lru_cache()
def bytes_to_unicode() -> dict[int, str]:
    """The reversible byte -> printable character table of GPT-2 / CLIP.

    The 188 bytes that are already printable (``!``..``~``, ``¡``..``¬``, ``®``..``ÿ``) map to
    themselves; the other 68 (whitespace, control characters, ...) map to chr(256), chr(257), ... in
    byte order. Dict order is the vocabulary order of ids 0..255.
    """
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    table = {b: chr(b) for b in printable}
    shifted = [b for b in range(256) if b not in table]
    table.update({b: chr(256 + n) for n, b in enumerate(shifted)})
    return table


def clean_text(text: str) -> str:
    """HTML-unescape twice ("&amp;amp;" -> "&"), collapse whitespace, strip, lowercase (ftfy omitted)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}: {text!r}")
    text = html.unescape(html.unescape(text)).strip()
    text = _WHITESPACE.sub(" ", text).strip()
    return text.lower()


def pre_split(cleaned: str) -> list[str]:
    """Split cleaned text into the pieces BPE works on, e.g. "a dog's 42." -> [a, dog, 's, 4, 2, .]."""
    return _PRE_SPLIT.findall(cleaned)


def _read_merges(path) -> list[tuple[str, str]]:
    """Every merge of a merges file, gzipped or not."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"BPE merges file not found: {path}")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":  # gzip magic number
        raw = gzip.decompress(raw)
    return _parse_merges(raw.decode("utf-8"), path)


def _parse_merges(text, source) -> list[tuple[str, str]]:
    """Every merge line (after the header) of the merges file format; ``source`` names it in errors."""
    lines = text.split("\n")[1:]  # line 0 is the header
    merges = []
    for number, line in enumerate(lines, start=2):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"{source}, line {number}: expected a merge 'left right', got {line!r}")
        merges.append((parts[0], parts[1]))
    return merges


class BPETokenizer:
    """Byte-level BPE defined by an ordered list of merges (rank = position in the list).

    Build one with ``train(texts, vocab_size)``, ``from_clip_vocab(path)`` or ``load(path)``;
    call it like ``clip.tokenize``: ``tokenizer(["a red circle"])`` -> int64 array (N, 77).
    """

    def __init__(self, merges):
        self.merges = [tuple(m) for m in merges]
        for rank, merge in enumerate(self.merges):
            valid = len(merge) == 2 and all(isinstance(s, str) and s and not _HAS_SPACE.search(s) for s in merge)
            if not valid:
                raise ValueError(f"merge {rank} must be a pair of non-empty strings without whitespace, "
                                 f"got {merge!r}")
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {c: b for b, c in self.byte_encoder.items()}
        base = list(self.byte_encoder.values())
        self.vocab = (base + [c + END_OF_WORD for c in base]
                      + [left + right for left, right in self.merges] + [SOT_TEXT, EOT_TEXT])
        # As in the original, a symbol that two merges produce keeps the later id (dict(zip) semantics);
        # decoding knows every id either way.
        self.encoder = dict(zip(self.vocab, range(len(self.vocab))))
        self.bpe_ranks = dict(zip(self.merges, range(len(self.merges))))  # duplicates: the later rank, as the original
        self._cache: dict[str, list[int]] = {}

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_clip_vocab(cls, path) -> "BPETokenizer":
        """The original CLIP tokenizer from ``bpe_simple_vocab_16e6.txt.gz`` (its first 48,894 merges)."""
        merges = _read_merges(path)
        if len(merges) < CLIP_NUM_MERGES:
            raise ValueError(f"{path}: a CLIP vocabulary has at least {CLIP_NUM_MERGES} merges, "
                             f"found {len(merges)}")
        return cls(merges[:CLIP_NUM_MERGES])

    @classmethod
    def load(cls, path) -> "BPETokenizer":
        """A tokenizer written by ``save`` (all merges in the file; gzipped or plain text)."""
        return cls(_read_merges(path))

    @classmethod
    def from_merges_text(cls, text, source="merges text") -> "BPETokenizer":
        """The inverse of ``merges_text`` (a checkpoint stores its tokenizer that way)."""
        return cls(_parse_merges(text, source))

    def merges_text(self) -> str:
        """The merges file as a string: the header line, then one merge "left right" per line."""
        return "\n".join([_HEADER] + [f"{left} {right}" for left, right in self.merges]) + "\n"

    def save(self, path) -> None:
        """Write ``merges_text()``; gzipped when ``path`` ends in ``.gz``."""
        path = Path(path)
        data = self.merges_text().encode("utf-8")
        path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)

    @classmethod
    def train(cls, texts, vocab_size: int, verbose: bool = False) -> "BPETokenizer":
        """Learn ``vocab_size - 514`` merges from ``texts`` (fewer if the corpus runs out of pairs).

        Classic BPE over the corpus' word counts: every pre-split piece is a "word" of byte characters
        with ``</w>`` on its last one; repeatedly merge the most frequent adjacent pair (ties: the
        lexicographically smallest pair, so the result does not depend on the order of ``texts``).
        Pair counts are updated incrementally, touching only the words that contain the merged pair.
        """
        if not isinstance(vocab_size, (int, np.integer)) or vocab_size < 514:
            raise ValueError(f"vocab_size must be an int >= 514 (256 bytes + 256 bytes with </w> + "
                             f"2 special tokens), got {vocab_size!r}")
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, got a single str")
        byte_encoder = bytes_to_unicode()
        word_counts: Counter = Counter()
        for text in texts:
            for piece in pre_split(clean_text(text)):
                if piece not in (SOT_TEXT, EOT_TEXT):
                    word_counts[_to_byte_chars(piece, byte_encoder)] += 1

        # words[i] is the current symbol list of distinct word i, counts[i] how often it occurs.
        words = [list(w[:-1]) + [w[-1] + END_OF_WORD] for w in word_counts]
        counts = list(word_counts.values())
        pair_counts: Counter = Counter()
        where: dict[tuple[str, str], set[int]] = {}  # pair -> indices of the words containing it
        for i, symbols in enumerate(words):
            for pair in zip(symbols, symbols[1:]):
                pair_counts[pair] += counts[i]
                where.setdefault(pair, set()).add(i)

        merges = []
        for step in range(int(vocab_size) - 514):
            if not pair_counts:
                break
            best = min(pair_counts, key=lambda p: (-pair_counts[p], p))
            merges.append(best)
            if verbose:
                print(f"merge {step}: {best[0]!r} + {best[1]!r} -> {best[0] + best[1]!r} "
                      f"({pair_counts[best]} times)")
            for i in sorted(where.pop(best, ())):
                old = words[i]
                for pair in zip(old, old[1:]):  # take the word's pairs out ...
                    pair_counts[pair] -= counts[i]
                    if pair_counts[pair] == 0:
                        del pair_counts[pair]
                new = _merge_pair(old, best)
                words[i] = new
                for pair in zip(new, new[1:]):  # ... and put the merged word's pairs back
                    pair_counts[pair] += counts[i]
                    where.setdefault(pair, set()).add(i)
            pair_counts.pop(best, None)
        return cls(merges)

    # ---------------------------------------------------------------- encoding
    @property
    def vocab_size(self) -> int:
        """Number of ids: 512 + number of merges + 2."""
        return len(self.vocab)

    @property
    def sot_token(self) -> int:
        """Id of ``<|startoftext|>`` (second to last)."""
        return len(self.vocab) - 2

    @property
    def eot_token(self) -> int:
        """Id of ``<|endoftext|>`` (the last, hence the largest id)."""
        return len(self.vocab) - 1

    def bpe(self, word: str) -> list[str]:
        """BPE of one byte-character word: the symbols left after applying merges by rank."""
        symbols = list(word[:-1]) + [word[-1] + END_OF_WORD]
        while len(symbols) > 1:
            pairs = set(zip(symbols, symbols[1:]))
            best = min(pairs, key=lambda p: self.bpe_ranks.get(p, float("inf")))
            if best not in self.bpe_ranks:
                break
            symbols = _merge_pair(symbols, best)
        return symbols

    def encode(self, text: str) -> list[int]:
        """Ids of ``text`` without start/end tokens, e.g. "a diagram" -> [320, 22697] with CLIP's vocab."""
        ids: list[int] = []
        for piece in pre_split(clean_text(text)):
            cached = self._cache.get(piece)
            if cached is None:
                if piece in (SOT_TEXT, EOT_TEXT):
                    cached = [self.encoder[piece]]
                else:
                    cached = [self.encoder[s] for s in self.bpe(_to_byte_chars(piece, self.byte_encoder))]
                self._cache[piece] = cached
            ids.extend(cached)
        return ids

    def decode(self, ids) -> str:
        """Text of ``ids``: symbols joined, bytes decoded as UTF-8 (invalid -> U+FFFD), ``</w>`` -> space."""
        symbols = []
        for position, i in enumerate(ids):
            i = int(i)
            if not 0 <= i < len(self.vocab):
                raise ValueError(f"decode: id {i} at position {position} is outside the vocabulary "
                                 f"[0, {len(self.vocab)})")
            symbols.append(self.vocab[i])
        data = bytes(self.byte_decoder[c] for c in "".join(symbols))
        return data.decode("utf-8", errors="replace").replace(END_OF_WORD, " ")

    def __call__(self, texts, context_length: int = 77, truncate: bool = False) -> np.ndarray:
        """``clip.tokenize``: int64 (N, L) rows [SOT] + ids + [EOT] + zeros.

        A text longer than L tokens (counting SOT and EOT) raises ``ValueError`` naming it, unless
        ``truncate=True``, which keeps the first L tokens and makes the last one EOT.
        """
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(context_length, (int, np.integer)) or context_length < 2:
            raise ValueError(f"context_length must be an int >= 2 (room for SOT and EOT), "
                             f"got {context_length!r}")
        result = np.zeros((len(texts), context_length), dtype=np.int64)  # (N, L)
        for row, text in enumerate(texts):
            tokens = [self.sot_token] + self.encode(text) + [self.eot_token]
            if len(tokens) > context_length:
                if not truncate:
                    raise ValueError(f"Input {text!r} is too long for context length {context_length}: "
                                     f"it has {len(tokens)} tokens including start and end of text "
                                     f"(pass truncate=True to cut it)")
                tokens = tokens[:context_length]
                tokens[-1] = self.eot_token
            result[row, :len(tokens)] = tokens
        return result

    def __repr__(self) -> str:
        return f"BPETokenizer(merges={len(self.merges)}, vocab_size={self.vocab_size})"


def _to_byte_chars(piece: str, byte_encoder: dict[int, str]) -> str:
    """UTF-8 bytes of ``piece`` as printable characters; lone surrogates are not text: ValueError."""
    try:
        data = piece.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(f"text piece {piece!r} is not valid Unicode (lone surrogate): {error}") from None
    return "".join(byte_encoder[b] for b in data)


def _merge_pair(symbols: list[str], pair: tuple[str, str]) -> list[str]:
    """Replace every non-overlapping occurrence of ``pair`` (scanning left to right) by its concatenation."""
    left, right = pair
    merged, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and symbols[i] == left and symbols[i + 1] == right:
            merged.append(left + right)
            i += 2
        else:
            merged.append(symbols[i])
            i += 1
    return merged


class ContextTokenizer:
    """A ``BPETokenizer`` that pads to the model's context length by default:
    ``tokenizer(texts) -> (N, T)`` int64 ids. ``encode``, ``decode``, ``eot_token``, ... pass through."""

    def __init__(self, tokenizer, context_length):
        self.tokenizer, self.context_length = tokenizer, int(context_length)

    def __call__(self, texts, context_length=None, truncate=False):
        return self.tokenizer(texts, context_length=context_length or self.context_length, truncate=truncate)

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)

    def __repr__(self):
        return f"{self.tokenizer!r} (context_length={self.context_length})"
