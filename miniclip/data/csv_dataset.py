"""CsvDataset: image-caption pairs listed in a CSV file, in open_clip's convention.

open_clip's defaults: ``--csv-img-key filepath --csv-caption-key title --csv-separator ,``. Image paths
are relative to the CSV file's folder (absolute paths are used as they are). Images are read with Pillow
and converted to RGB.

Every row is checked when the dataset is built, so a bad row fails before training starts, with the CSV
line and the offending value in the message: a missing file, a file that is not a readable image, an
empty caption, a caption too long for the context (when a tokenizer is given). A missing column fails
naming the columns that exist. With ``skip_bad_rows=True`` bad rows are left out instead and one warning
counts and lists them; nothing is dropped silently.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

from PIL import Image

_PREVIEW = 20  # bad rows listed in the warning before "... and N more"


class CsvDataError(ValueError):
    """A CSV dataset row (or the file itself) that cannot be used; the message names where and why."""


class CsvDataset:
    """Items ``(PIL RGB image, caption, -1)``: the loader's protocol (no class label, hence -1)."""

    def __init__(self, csv_path, img_key: str = "filepath", caption_key: str = "title", sep: str = ",",
                 tokenizer=None, context_length: int = 77, skip_bad_rows: bool = False,
                 verify_images: bool = True):
        self.csv_path = Path(csv_path)
        if not self.csv_path.is_file():
            raise FileNotFoundError(f"CSV file not found: {self.csv_path}")
        self.root = self.csv_path.parent
        self.img_key, self.caption_key = img_key, caption_key
        self.skipped: list[str] = []  # one message per skipped row
        self.paths: list[Path] = []
        self.captions: list[str] = []
        self.lines: list[int] = []  # CSV line number of each kept item, for error messages

        with open(self.csv_path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f, delimiter=sep)
            columns = reader.fieldnames or []
            for key, what in ((img_key, "image path"), (caption_key, "caption")):
                if key not in columns:
                    raise CsvDataError(f"{self.csv_path}: no {what} column {key!r} (separator {sep!r}); "
                                       f"the header has columns {columns}")
            for row in reader:
                problem = self._check_row(row, tokenizer, context_length, verify_images)
                where = f"{self.csv_path} line {reader.line_num}"
                if problem is not None:
                    if not skip_bad_rows:
                        raise CsvDataError(f"{where}: {problem} (pass skip_bad_rows=True / --skip-bad-rows "
                                           f"to skip bad rows with a warning)")
                    self.skipped.append(f"line {reader.line_num}: {problem}")
                    continue
                self.paths.append(self._resolve(row[img_key]))
                self.captions.append(row[caption_key])
                self.lines.append(reader.line_num)

        if self.skipped:
            shown = "; ".join(self.skipped[:_PREVIEW])
            more = f"; ... and {len(self.skipped) - _PREVIEW} more" if len(self.skipped) > _PREVIEW else ""
            warnings.warn(f"{self.csv_path}: skipped {len(self.skipped)} bad row(s) of "
                          f"{len(self.skipped) + len(self.paths)}: {shown}{more}", stacklevel=2)
        if not self.paths:
            raise CsvDataError(f"{self.csv_path}: no usable rows"
                               + (f" ({len(self.skipped)} skipped)" if self.skipped else ""))

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
        if not path.is_file():
            return f"image file {value!r} not found (looked for {path})"
        if verify_images:
            try:
                with Image.open(path) as im:
                    im.verify()  # reads the whole file and checks it without decoding pixels
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
                return im.convert("RGB")
        except Exception as error:
            raise CsvDataError(f"{self.csv_path} line {self.lines[index]}: cannot read image {str(path)!r}: "
                               f"{type(error).__name__}: {error}") from error

    def __getitem__(self, index: int):
        return self.load_image(index), self.captions[index], -1

    def __repr__(self) -> str:
        return f"CsvDataset({str(self.csv_path)!r}, {len(self)} items, {len(self.skipped)} skipped)"
