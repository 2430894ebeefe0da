"""Checkpoints that survive interruption: one ``.npz`` per save, written atomically.

A checkpoint holds everything needed to continue a run exactly where it stopped:

    model/<name>        the model's state_dict arrays (original CLIP key names)
    optimizer/<name>    AdamW's state (step, exp_avg.*, exp_avg_sq.*)
    meta                JSON text: format version, training step, random-generator states,
                        the run config, and anything extra (e.g. the model's constructor arguments)
    tokenizer_merges    the tokenizer's merges file as text (so the checkpoint is self-contained)

Writing (``save_checkpoint``): the arrays go to a temporary file in the *same directory*, which
is flushed and fsync'ed, read back and checked, and only then renamed over the target with
``os.replace`` (atomic on POSIX and Windows). A crash or Ctrl-C at any moment leaves either the
old checkpoint or the new one, never half of one; a checkpoint whose weights are not finite is
refused, so a good checkpoint is never replaced by a bad one.

Reading (``load_checkpoint``) reads every array (the zip CRC catches corruption) and turns any
failure into a ``CheckpointError`` that names the file.
"""

import json
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass, field

import numpy as np

FORMAT = "miniclip-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint could not be written or read; the message names the file."""


@dataclass
class Checkpoint:
    """What ``load_checkpoint`` returns."""
    path: str
    model_state: dict
    optimizer_state: dict = field(default_factory=dict)
    step: int = 0
    rng_state: dict = None
    config: dict = None
    tokenizer_merges: str = None
    extra: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------ write
def _fsync_directory(directory):
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_npz(path, arrays, verify=None):
    """Write ``arrays`` (name -> ndarray) to ``path`` as an .npz, atomically.

    ``verify(tmp_path)``, when given, runs on the finished temporary file before the rename and
    may raise to abort; the target is then left untouched and the temporary file removed.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        if verify is not None:
            verify(tmp)
        os.replace(tmp, path)
    except BaseException as exc:  # also KeyboardInterrupt: never leave a half-written temp file behind
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and exc.filename is None:  # a failed write (a full disk): name the target
            raise type(exc)(exc.errno, exc.strerror, path) from exc
        raise
    _fsync_directory(directory)


def save_checkpoint(path, model_state, optimizer_state=None, step=0, rng_state=None, config=None,
                    tokenizer_merges=None, extra=None):
    """Write a checkpoint to ``path`` atomically (see the module docstring). Returns ``path``."""
    path = os.fspath(path)
    arrays = {}
    for name, value in model_state.items():
        arr = np.asarray(value)
        if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
            raise CheckpointError(f"save_checkpoint({path}): refusing to write model weight {name!r}, "
                                  f"which holds NaN or Inf (the previous checkpoint is kept)")
        arrays[f"model/{name}"] = arr
    for name, value in (optimizer_state or {}).items():
        arrays[f"optimizer/{name}"] = np.asarray(value)
    meta = {"format": FORMAT, "version": FORMAT_VERSION, "step": int(step), "rng_state": rng_state,
            "config": config, "extra": extra or {}}
    arrays["meta"] = np.array(json.dumps(meta))
    if tokenizer_merges is not None:
        arrays["tokenizer_merges"] = np.array(tokenizer_merges)

    def verify(tmp):
        loaded = load_checkpoint(tmp)
        if set(loaded.model_state) != set(model_state):
            raise CheckpointError(f"save_checkpoint({path}): read-back of the temporary file lost keys")

    atomic_write_npz(path, arrays, verify=verify)
    return path


# ------------------------------------------------------------------------------- read
def load_checkpoint(path):
    """Read a checkpoint written by ``save_checkpoint``; ``CheckpointError`` naming the file on
    any problem (missing, truncated, corrupt, not a miniclip checkpoint)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    if os.path.isdir(path):
        raise CheckpointError(f"checkpoint {path} is a folder, not an .npz file")
    try:
        # look at the first bytes ourselves: given anything but a zip archive, np.load would try
        # to unpickle it, and its error would suggest the unsafe allow_pickle=True
        with open(path, "rb") as f:
            head = f.read(4)
        if head != b"PK\x03\x04":
            what = "empty (0 bytes)" if not head else "not an .npz archive (it does not start like a zip file)"
            raise CheckpointError(f"checkpoint {path} is {what} and cannot be read")
        # open the file ourselves: np.load leaks its handle when the zip directory is unreadable
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}  # reading every member checks its CRC
        if "meta" not in arrays:
            raise CheckpointError(_not_a_miniclip_checkpoint(path, arrays))
        meta = json.loads(str(arrays.pop("meta")))
        if meta.get("format") != FORMAT:
            raise ValueError(f"format is {meta.get('format')!r}, expected {FORMAT!r}")
    except CheckpointError:
        raise
    except ValueError as exc:
        if "allow_pickle" in str(exc):  # an array of Python objects: never unpickled
            raise CheckpointError(f"checkpoint {path} holds pickled Python objects, which miniclip never loads "
                                  f"(they can run code); it was not written by miniclip") from None
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt and cannot be read "
                              f"({type(exc).__name__}: {exc})") from exc
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, UnicodeDecodeError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt and cannot be read "
                              f"({type(exc).__name__}: {exc})") from exc
    for name, value in arrays.items():  # weights that are not finite would silently give NaN everywhere
        if name.startswith("model/") and np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
            raise CheckpointError(f"checkpoint {path}: weight {name[len('model/'):]!r} holds "
                                  f"{int((~np.isfinite(value)).sum())} NaN or Inf values; refusing to load it")
    model = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    optimizer = {k[len("optimizer/"):]: v for k, v in arrays.items() if k.startswith("optimizer/")}
    merges = str(arrays["tokenizer_merges"]) if "tokenizer_merges" in arrays else None
    return Checkpoint(path=path, model_state=model, optimizer_state=optimizer, step=meta["step"],
                      rng_state=meta.get("rng_state"), config=meta.get("config"),
                      tokenizer_merges=merges, extra=meta.get("extra") or {})


def _not_a_miniclip_checkpoint(path, arrays):
    if any(key.startswith("visual.") for key in arrays):  # an original CLIP state dict, as convert writes it
        return (f"{path} is an OpenAI CLIP state dict converted by `miniclip convert`, not a miniclip "
                f"checkpoint: build it with miniclip.build_model(miniclip.load_npz({path!r}))")
    return f"checkpoint {path} is an .npz archive but not a miniclip checkpoint (it has no 'meta')"


# ------------------------------------------------------------------- a folder of them
class CheckpointManager:
    """``step_<000123>.npz`` files in one directory, keeping the newest ``keep``."""

    PATTERN = re.compile(r"^step_(\d+)\.npz$")

    def __init__(self, directory, keep=3):
        if keep < 1:
            raise ValueError(f"CheckpointManager: keep must be >= 1, got {keep}")
        self.directory = os.fspath(directory)
        self.keep = keep

    def path_for(self, step):
        return os.path.join(self.directory, f"step_{step:08d}.npz")

    def checkpoints(self):
        """Existing checkpoint paths, oldest first."""
        if not os.path.isdir(self.directory):
            return []
        found = [(int(m.group(1)), name) for name in os.listdir(self.directory)
                 if (m := self.PATTERN.match(name))]
        return [os.path.join(self.directory, name) for _, name in sorted(found)]

    def save(self, step, **contents):
        """Write the checkpoint of ``step`` and delete all but the newest ``keep``."""
        path = save_checkpoint(self.path_for(step), step=step, **contents)
        for old in self.checkpoints()[:-self.keep]:
            os.unlink(old)
        return path

    def latest(self):
        """The newest checkpoint's path, or None."""
        found = self.checkpoints()
        return found[-1] if found else None
