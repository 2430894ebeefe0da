"""The run folder: one writer at a time, never someone else's files, never a stuck folder.

``miniclip train --out DIR`` writes ``DIR/.miniclip-run`` first. That file is both

- the **marker**: a folder is a miniclip run only if it holds one. A non-empty folder without it
  is somebody else's, and training refuses to write into it (nothing is overwritten); and
- the **lock**: the training process holds ``fcntl.flock(LOCK_EX)`` on it for the whole run and
  writes its PID into it. A second ``train`` or ``--resume`` on the folder fails at once, naming
  that PID. The operating system drops the lock when its holder exits, however it exits
  (``kill -9`` included), so a lock is never stale.

Starting in a run folder (``claim``):

    fresh start, empty or new folder             -> start
    fresh start, a run with a checkpoint          -> refused: continue it with --resume, or pick another --out
    fresh start, a run that never checkpointed    -> start it over (nothing in it can be resumed)
    --resume, newest checkpoint of this config    -> continue from it
    --resume, checkpoint of another config        -> refused, naming the fields that differ
    --resume, no checkpoint yet                   -> start it over from step 0 with its config.json

Leftovers of a killed write (``*.tmp`` of an atomic write that never reached its rename) are
deleted once the lock is held. Under MPI only rank 0 claims the folder (only rank 0 writes it).
"""

import json
import os
import socket

from .checkpoint import load_checkpoint

MARKER = ".miniclip-run"
# config fields that may differ between a run and its checkpoints: where and how it runs and reports
VOLATILE_FIELDS = ("out", "progress", "plots", "threads", "data_workers")


class RunFolderError(RuntimeError):
    """The run folder cannot be used as asked; the message names it and the way out."""


class Claim:
    """A held run folder: ``checkpoint`` is the newest checkpoint to continue from (None: start at
    step 0); ``release()`` drops the lock (also at the holder's exit)."""

    def __init__(self, path, lock_file=None, checkpoint=None):
        self.path, self._lock_file, self.checkpoint = path, lock_file, checkpoint

    def release(self):
        if self._lock_file is not None:
            self._lock_file.close()  # closing the descriptor drops the flock
            self._lock_file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def _lock(path):
    """Open ``path/.miniclip-run`` and hold an exclusive flock on it; RunFolderError naming the holder.
    (``_accept`` writes this process into it once the folder is accepted.)"""
    try:
        import fcntl
    except ImportError:  # no flock on this platform (Windows): one writer is then the user's care
        fcntl = None
    f = open(os.path.join(path, MARKER), "a+", encoding="utf-8")
    if fcntl is not None:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            try:
                holder = json.loads(f.read() or "{}")
            except json.JSONDecodeError:
                holder = {}
            f.close()
            who = f"process {holder['pid']} on {holder.get('host', '?')}" if "pid" in holder else "another process"
            raise RunFolderError(f"{path} is in use: {who} is training in it (it holds {MARKER}); "
                                 f"wait for it to finish or stop it, or pass another --out") from None
    return f


def _accept(path, lock_file):
    """The folder is this process's now: remove what killed writes left, write this process into the marker."""
    _remove_leftovers(path)
    lock_file.seek(0)
    lock_file.truncate()
    lock_file.write(json.dumps({"miniclip_run": 1, "pid": os.getpid(), "host": socket.gethostname()}) + "\n")
    lock_file.flush()


def _remove_leftovers(path):
    """Delete the temporary files of atomic writes that a kill interrupted before their rename."""
    for folder in (path, os.path.join(path, "checkpoints")):
        if os.path.isdir(folder):
            for name in os.listdir(folder):
                if name.endswith(".tmp"):
                    os.unlink(os.path.join(folder, name))


def _config_differences(a, b):
    """The fields both configs have and disagree on (a field added to TrainConfig since a checkpoint
    was written is not a difference: it takes its default)."""
    keys = sorted((set(a) & set(b)) - set(VOLATILE_FIELDS))
    a, b = json.loads(json.dumps(a)), json.loads(json.dumps(b))  # as saved: a tuple and its JSON list agree
    return [f"{k} ({a.get(k)!r} vs {b.get(k)!r})" for k in keys if a.get(k) != b.get(k)]


def claim(path, resume, config, manager, finished_file, log=print):
    """Lock the run folder ``path`` for this process and decide where the run starts (see the
    module docstring). ``config``: the run's config as a dict (with --resume, its config.json);
    ``manager``: the folder's ``CheckpointManager``; ``finished_file``: the file a finished run
    leaves (model.npz). Returns a ``Claim``; raises ``RunFolderError`` (or ``CheckpointError``)."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise RunFolderError(f"{path} is a file, not a run folder; pass a folder to --out")
    entries = set(os.listdir(path)) if os.path.isdir(path) else set()
    is_run = MARKER in entries
    if not resume and entries and not is_run:
        earlier = (f"; if it is a run of an earlier miniclip, continue it with --resume {path}"
                   if "config.json" in entries else "")
        raise RunFolderError(f"{path} is not empty and is not a miniclip run folder (no {MARKER} in it); "
                             f"refusing to write into it: pass a new or empty folder to --out{earlier}")
    if resume and not entries:
        raise RunFolderError(f"{path} is not a run folder (it is empty or does not exist); nothing to resume")
    created = [p for p in (path,) if not os.path.exists(p)] + ([os.path.join(path, MARKER)] if not is_run else [])
    os.makedirs(path, exist_ok=True)
    lock_file = _lock(path)
    try:
        latest = manager.latest()
        finished = os.path.exists(os.path.join(path, finished_file))
        if not resume:
            if latest is not None or finished:
                what = f"it is finished: {finished_file}" if finished else f"its newest checkpoint is {latest}"
                raise RunFolderError(f"{path} already holds a run ({what}); continue it with --resume {path}, "
                                     f"or pass another --out")
            if is_run and entries - {MARKER}:
                log(f"{path}: the run there stopped before its first checkpoint; starting it over")
            _accept(path, lock_file)
            return Claim(path, lock_file)
        if latest is None:
            if finished:
                raise RunFolderError(f"{path} holds {finished_file} but no {manager.directory}/step_*.npz; "
                                     f"there is no checkpoint to resume from")
            log(f"{path}: no checkpoint yet (the run stopped before its first one); starting it over from step 0")
            _accept(path, lock_file)
            return Claim(path, lock_file)
        ckpt = load_checkpoint(latest)
        differences = _config_differences(ckpt.config or {}, config)
        if differences:
            raise RunFolderError(f"{latest} belongs to another run: its config differs from {path}/config.json "
                                 f"in {', '.join(differences[:4])}; not resuming from it")
        _accept(path, lock_file)
        return Claim(path, lock_file, ckpt)
    except BaseException:
        lock_file.close()
        for p in reversed(created):  # a refusal leaves the folder as it found it
            os.rmdir(p) if os.path.isdir(p) else os.unlink(p)
        raise

