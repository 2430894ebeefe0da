"""Every ```python block of every tutorial chapter runs here, so the course cannot rot.

Blocks of one chapter run in order in one namespace (like a notebook), inside a
temporary working directory. Chapters use small sizes by default; set
``MINICLIP_TUTORIAL_FULL=1`` to run them at full size. A block fenced as
```python no-run is shown to the reader but not executed (used only for
commands that need a downloaded checkpoint).
"""

import os
import re
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
CHAPTERS = sorted(TUTORIALS.glob("[0-9][0-9]_*.md"))
BLOCK = re.compile(r"^```python[ \t]*(no-run)?[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)


def code_blocks(path):
    """(line number, source) of each runnable python block of a chapter."""
    text = path.read_text(encoding="utf-8")
    for match in BLOCK.finditer(text):
        if match.group(1):
            continue
        yield text[:match.start()].count("\n") + 2, match.group(2)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_runs(chapter, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"tutorial_{chapter.stem}"}
    blocks = list(code_blocks(chapter))
    assert blocks, f"{chapter.name} has no python code blocks"
    for line, source in blocks:
        code = compile(source, f"{chapter.name}:{line}", "exec")
        exec(code, namespace)  # noqa: S102 - running our own tutorial code is the point


LINKED_DOCS = CHAPTERS + [TUTORIALS / "README.md", TUTORIALS.parent / "README.md",
                          TUTORIALS.parent / "benchmarks" / "README.md"]


@pytest.mark.parametrize("chapter", LINKED_DOCS, ids=[str(p.relative_to(TUTORIALS.parent)) for p in LINKED_DOCS])
def test_chapter_links_resolve(chapter):
    """Every relative link in a chapter (and in the READMEs) points at a file that exists."""
    text = chapter.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if "://" in target:
            continue
        assert (chapter.parent / target).exists(), f"{chapter.name}: broken link {target}"


QUOTE = re.compile(r"^```python quote (\S+)[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_quoted_code_is_the_code(chapter):
    """A block fenced ```python quote <path> shows lines of that file verbatim, so what a chapter
    shows is the code that runs (such blocks are not executed: they are the library's own code)."""
    for path, quote in QUOTE.findall(chapter.read_text(encoding="utf-8")):
        source = (TUTORIALS.parent / path).read_text(encoding="utf-8")
        assert quote in source, f"{chapter.name}: the quote of {path} is not in that file any more:\n{quote}"


def test_full_mode_flag_is_documented():
    assert "MINICLIP_TUTORIAL_FULL" in (TUTORIALS / "README.md").read_text(encoding="utf-8")
    assert os.environ.get("MINICLIP_TUTORIAL_FULL", "0") in ("0", "1")
