"""CsvDataset: image-caption pairs listed in a CSV file, in open_clip's convention.

open_clip's defaults: ``--csv-img-key filepath --csv-caption-key title --csv-separator ,``. The file is
UTF-8 (a byte-order mark is allowed). Image paths are relative to the CSV file's folder (absolute paths
are used as they are). Images are read with Pillow and converted to RGB by ``to_rgb_image`` (any mode).

Every row is checked when the dataset is built, so a bad row fails before training starts, with the CSV
line and the offending value in the message: bytes that are not UTF-8 (the byte and its column), a missing
image, a directory where an image should be, a file that is not a readable image, an empty caption, a
caption too long for the context (when a tokenizer is given). A missing column fails naming the columns
that exist; a header that is not UTF-8, or text the CSV parser cannot read (a field over the csv module's
size limit), fails whatever the options.

With ``skip_bad_rows=True`` (``--skip-bad-rows``) bad rows, those with non-UTF-8 bytes included, are left
out instead, and one summary line reports them (how many, and the first few with their line and reason)
through ``log``; nothing is dropped silently.
"""

from __future__ import annotations

import csv
import io
import re
import sys
from pathlib import Path

from PIL import Image

from .transforms import to_rgb_image

_PREVIEW = 3  # skipped rows named in the summary line before "and N more"
# A byte that is not UTF-8, as ``errors="surrogateescape"`` decodes it: byte b becomes U+DC00 + b.
_UNDECODABLE = re.compile("[\udc80-\udcff]")
_SKIP_HINT = "(--skip-bad-rows, or skip_bad_rows=True, skips such rows and reports them)"


class CsvDataError(ValueError):
    """A CSV dataset row (or the file itself) that cannot be used; the message names where and why."""


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _not_utf8(line: str) -> str | None:
    """What is wrong with a physical line of the file, if it held bytes that are not UTF-8."""
    match = _UNDECODABLE.search(line)
    if match is None:
        return None
    return f"not UTF-8 (byte 0x{ord(match.group()) - 0xDC00:02x} at column {match.start() + 1})"


class CsvDataset:
    """Items ``(PIL RGB image, caption, -1)``: the loader's protocol (no class label, hence -1).

    ``log(line)`` receives the one-line summary of skipped rows (None: printed to stderr).
    """

    def __init__(self, csv_path, img_key: str = "filepath", caption_key: str = "title", sep: str = ",",
                 tokenizer=None, context_length: int = 77, skip_bad_rows: bool = False,
                 verify_images: bool = True, log=None):
        self.csv_path = Path(csv_path)
        if self.csv_path.is_dir():
            raise CsvDataError(f"{self.csv_path} is a directory, not a CSV file")
        if not self.csv_path.is_file():
            raise FileNotFoundError(f"CSV file not found: {self.csv_path}")
        self.root = self.csv_path.parent
        self.img_key, self.caption_key = img_key, caption_key
        self.skipped: list[str] = []  # "line N: reason" for each skipped row
        self.paths: list[Path] = []
        self.captions: list[str] = []
        self.lines: list[int] = []  # CSV line number of each kept item, for error messages

        for line, row, problem in self._rows(sep):
            problem = problem or self._check_row(row, tokenizer, context_length, verify_images)
            if problem is not None:
                if not skip_bad_rows:
                    raise CsvDataError(f"{self.csv_path} line {line}: {problem} {_SKIP_HINT}")
                self.skipped.append(f"line {line}: {problem}")
                continue
            self.paths.append(self._resolve(row[img_key]))
            self.captions.append(row[caption_key])
            self.lines.append(line)

        if self.skipped:
            (log or _to_stderr)(self.summary())
        if not self.paths:
            raise CsvDataError(f"{self.csv_path}: no usable rows"
                               + (f" ({len(self.skipped)} skipped)" if self.skipped else ""))

    def _rows(self, sep):
        """Yield ``(line, row, problem)`` per CSV record: its first line, a dict by column, and None or
        "not UTF-8 (byte 0x.. at column ..)". The header's own problems raise."""
        # Bytes that are not UTF-8 become lone surrogates, so parsing goes on and each row can say
        # which of its lines held one; the lines are the physical lines the csv module counts.
        text = self.csv_path.read_bytes().decode("utf-8-sig", errors="surrogateescape")
        lines = io.StringIO(text, newline="").readlines()
        if not lines:
            raise CsvDataError(f"{self.csv_path} is empty: expected a header row such as "
                               f"{sep.join((self.img_key, self.caption_key))!r} and a row per image")
        try:
            reader = csv.DictReader(lines, delimiter=sep)
        except TypeError:  # the csv module's words for a separator that is not one character
            raise CsvDataError(f"CSV separator {sep!r}: expected one character") from None
        end = 0  # the last line read
        try:
            columns = reader.fieldnames or []
            header_problem = next(filter(None, map(_not_utf8, lines[:reader.line_num])), None)
            if header_problem:
                raise CsvDataError(f"{self.csv_path} header: {header_problem}; save the file as UTF-8")
            for key, what in ((self.img_key, "image path"), (self.caption_key, "caption")):
                if key not in columns:
                    raise CsvDataError(f"{self.csv_path}: no {what} column {key!r} (separator {sep!r}); "
                                       f"the header has columns {columns}")
            end = reader.line_num
            for row in reader:
                line, end = end + 1, reader.line_num  # the record spans lines [line, end]
                while line < end and not lines[line - 1].strip():  # blank lines the reader passed over
                    line += 1
                yield line, row, next(filter(None, map(_not_utf8, lines[line - 1:end])), None)
        except csv.Error as error:  # (e.g. a field over the csv module's size limit): the parser stops
            raise CsvDataError(f"{self.csv_path} line {end + 1}: not readable as CSV ({error})") from None

    def summary(self) -> str:
        """One line: how many rows were skipped, and the first few with their line and reason."""
        shown = "; ".join(self.skipped[:_PREVIEW])
        more = f"; and {len(self.skipped) - _PREVIEW} more" if len(self.skipped) > _PREVIEW else ""
        return (f"{self.csv_path}: skipped {len(self.skipped)} bad row(s) of {len(self.skipped) + len(self.paths)} "
                f"(--skip-bad-rows): {shown}{more}")

    def usable_rows(self) -> str:
        """``"5 usable rows"``, with the skipped ones when there are: for messages about the size."""
        skipped = f" ({len(self.skipped)} skipped)" if self.skipped else ""
        return f"{len(self)} usable row{'s' if len(self) != 1 else ''}{skipped}"

    def _resolve(self, value: str) -> Path:
        path = Path(value)
        return path if path.is_absolute() else self.root / path

    def _check_row(self, row, tokenizer, context_length, verify_images) -> str | None:
        """None if the row is usable, else what is wrong with it (naming the value)."""
        value, caption = row.get(self.img_key), row.get(self.caption_key)
        if value is None or caption is None:
            return f"row has too few fields for columns {self.img_key!r} and {self.caption_key!r}: {row}"
        if not value.strip():
            return f"empty image path in column {self.img_key!r}"
        path = self._resolve(value)
        try:
            if path.is_dir():
                return f"image path {value!r} is a directory ({path}), not an image file"
            if not path.exists():
                return f"image file {value!r} not found (looked for {path})"
            if not path.is_file():
                return f"image path {value!r} is not a regular file ({path})"
        except (OSError, ValueError) as error:  # e.g. a name too long for the file system
            return f"image path {value!r} cannot be looked up: {error}"
        if verify_images:
            try:
                with Image.open(path) as im:
                    im.verify()  # reads the whole file and checks it without decoding pixels
            except Image.UnidentifiedImageError:  # (its message repeats the whole path)
                return f"image file {value!r} is not a readable image (no format Pillow knows)"
            except Exception as error:
                return f"image file {value!r} is not a readable image: {type(error).__name__}: {error}"
        if not caption.strip():
            return f"empty caption in column {self.caption_key!r} for image {value!r}"
        if tokenizer is not None:
            n = len(tokenizer.encode(caption)) + 2
            if n > context_length:
                return (f"caption {caption!r} is too long: {n} tokens with start and end of text, "
                        f"context length is {context_length}")
        return None

    def __len__(self) -> int:
        return len(self.paths)

    def load_image(self, index: int) -> Image.Image:
        """The image of item ``index`` as RGB; an unreadable file raises naming the CSV line and path."""
        path = self.paths[index]
        try:
            with Image.open(path) as im:
                image = to_rgb_image(im)
                image.load()  # decoded while the file is open (an RGB file comes back as it is)
                return image
        except Exception as error:
            raise CsvDataError(f"{self.csv_path} line {self.lines[index]}: cannot read image {str(path)!r}: "
                               f"{type(error).__name__}: {error}") from error

    def __getitem__(self, index: int):
        return self.load_image(index), self.captions[index], -1

    def __repr__(self) -> str:
        return f"CsvDataset({str(self.csv_path)!r}, {len(self)} items, {len(self.skipped)} skipped)"
