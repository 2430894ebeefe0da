"""An image index: every image of a folder embedded once, so that searching it costs one matrix product.

    miniclip index photos/ --model runs/shapes-1 --out photos.npz

Shape legend:  N images in the index,  E embedding dim.

The index is one .npz (written atomically: a crash leaves the old index or the new one, never half):

    root         str        the folder, absolute
    paths        (N,) str   image files relative to root, sorted
    sizes        (N,) int64 file sizes in bytes       } what the file was when it was embedded: re-running
    mtimes       (N,) int64 modification times, ns    } re-embeds a file only when one of them changed
    embeddings   (N, E) float32, unit rows (L2-normalized)
    model_fingerprint, model_path   the model that embedded them (``embed.fingerprint``)

Queries must be embedded by the same model (same fingerprint); ``check_model`` refuses any other.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..training.checkpoint import atomic_write_npz
from .embed import embed_files, find_images, load_model, skipped_line

FORMAT = "miniclip-image-index"


@dataclass
class ImageIndex:
    root: str
    paths: list
    sizes: np.ndarray        # (N,) int64
    mtimes: np.ndarray       # (N,) int64, nanoseconds
    embeddings: np.ndarray   # (N, E) float32, unit rows
    model_fingerprint: str
    model_path: str
    file: str = None         # where it was read from or written to
    report: dict = field(default_factory=dict)  # what the last update did (new, changed, removed, skipped)

    def __len__(self) -> int:
        return len(self.paths)

    def full_path(self, i: int) -> str:
        return os.path.join(self.root, self.paths[i])

    def check_model(self, loaded) -> None:
        """Refuse a model other than the one that embedded the index (a query would be scored in
        another embedding space)."""
        if loaded.fingerprint != self.model_fingerprint:
            raise ValueError(f"index {self.file} was built with model {self.model_fingerprint} ({self.model_path}), "
                             f"not with {loaded.fingerprint} ({loaded.path}); re-index the folder with this model: "
                             f"miniclip index {self.root} --model {loaded.path} --out NEW.npz")

    def save(self, path) -> str:
        atomic_write_npz(path, {
            "format": np.array(FORMAT), "root": np.array(self.root), "paths": np.array(self.paths, dtype=str),
            "sizes": np.asarray(self.sizes, np.int64), "mtimes": np.asarray(self.mtimes, np.int64),
            "embeddings": np.asarray(self.embeddings, np.float32),
            "model_fingerprint": np.array(self.model_fingerprint), "model_path": np.array(self.model_path)})
        self.file = os.fspath(path)
        return self.file


def load_index(path) -> ImageIndex:
    """Read an index written by ``ImageIndex.save``; ValueError naming the file if it is not one."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"index {path} does not exist (make one with: miniclip index DIR --model M --out {path})")
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        if str(arrays.get("format", "")) != FORMAT:
            raise ValueError("it has no 'format' entry naming an image index")
        index = ImageIndex(root=str(arrays["root"]), paths=[str(p) for p in arrays["paths"]],
                           sizes=arrays["sizes"], mtimes=arrays["mtimes"], embeddings=arrays["embeddings"],
                           model_fingerprint=str(arrays["model_fingerprint"]), model_path=str(arrays["model_path"]),
                           file=path)
    except (ValueError, KeyError, OSError, EOFError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{path} is not a miniclip image index, or is corrupt ({exc})") from None
    if index.embeddings.ndim != 2 or len(index.embeddings) != len(index.paths):
        raise ValueError(f"{path} is corrupt: {len(index.paths)} paths but embeddings of shape {index.embeddings.shape}")
    return index


def build_index(root, model, out, batch_size: int = 64, progress: bool = True, rebuild: bool = False) -> ImageIndex:
    """Embed the images under ``root`` into the index file ``out`` and return it.

    When ``out`` exists (an index of the same folder by the same model) only new files and files
    whose size or modification time changed are embedded; the others keep their vectors, and
    files that disappeared leave the index. ``rebuild`` embeds everything again (needed to switch
    models). Unreadable files are left out and listed in ``report["skipped"]``.
    """
    loaded = model if hasattr(model, "fingerprint") else load_model(model)
    root = os.path.abspath(os.fspath(root))
    now, unreachable = {}, []  # path -> (size, mtime); files that cannot even be stat'ed (a broken link)
    for p in find_images(root):
        try:
            st = os.stat(os.path.join(root, p))
            now[p] = (st.st_size, st.st_mtime_ns)
        except OSError as exc:
            unreachable.append((p, exc.strerror or str(exc)))
    paths = sorted(now)

    old = {}  # path -> row of the existing index whose file is unchanged
    previous = load_index(out) if os.path.exists(out) and not rebuild else None
    if previous is not None:
        if previous.root != root:
            raise ValueError(f"--out {out} indexes another folder ({previous.root}); pass another --out, or "
                             f"--rebuild to replace it")
        if previous.model_fingerprint != loaded.fingerprint:
            raise ValueError(f"--out {out} was built with model {previous.model_fingerprint} ({previous.model_path}), "
                             f"not {loaded.fingerprint} ({loaded.path}); pass --rebuild to embed every image again")
        old = {p: i for i, p in enumerate(previous.paths)
               if now.get(p) == (int(previous.sizes[i]), int(previous.mtimes[i]))}
    todo = [p for p in paths if p not in old]
    kept, fresh, skipped = embed_files(loaded, root, todo, batch_size, progress, desc="index")
    skipped = sorted(unreachable + skipped)

    rows = {p: previous.embeddings[i] for p, i in old.items()}
    rows.update(zip(kept, fresh))
    ordered = sorted(rows)
    E = fresh.shape[1]
    index = ImageIndex(root=root, paths=ordered,
                       sizes=np.array([now[p][0] for p in ordered], np.int64),
                       mtimes=np.array([now[p][1] for p in ordered], np.int64),
                       embeddings=np.stack([rows[p] for p in ordered]) if ordered else np.zeros((0, E), np.float32),
                       model_fingerprint=loaded.fingerprint, model_path=loaded.path)
    index.save(out)
    previous_paths = set(previous.paths) if previous is not None else set()
    index.report = {"images": len(index), "embedded": len(kept), "unchanged": len(old),
                    "new": sum(p not in previous_paths for p in kept),
                    "changed": sum(p in previous_paths for p in kept),
                    "removed": len(previous_paths - set(paths)), "skipped": skipped}
    return index


def summary_lines(index) -> list[str]:
    """What ``miniclip index`` prints: the counts, and one line for the skipped files if any."""
    r = index.report
    lines = [f"{index.file}: {r['images']} images ({r['new']} new, {r['changed']} changed, {r['unchanged']} "
             f"unchanged, {r['removed']} removed) from {index.root}, model {index.model_fingerprint}"]
    if r["skipped"]:
        lines.append(skipped_line(r["skipped"]))
    return lines
