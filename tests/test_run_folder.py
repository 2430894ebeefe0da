"""The run folder: one writer (a lock that dies with its holder), never someone else's files, never
stuck; no process outlives `miniclip train`, however it ends; SIGTERM stops like Ctrl-C; a full disk or
a read-only file system is one line that says what was kept."""

import errno
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from miniclip.training.checkpoint import CheckpointManager, load_checkpoint
from miniclip.cli import main
from miniclip.training.run_folder import MARKER, RunFolderError
from miniclip.training import TrainConfig, train

TINY = dict(batch_size=16, image_resolution=16, vision_patch_size=8, vision_width=32, vision_layers=1, vision_heads=1,
            transformer_width=32, transformer_layers=1, transformer_heads=1, embed_dim=16, context_length=16,
            vocab_size=600, warmup_steps=1, init_temperature=0.2, threads=1, progress=False, plots=False,
            eval_images=12, eval_heldout_images=12, final_eval_images=12, final_eval_heldout_images=12)
TINY_FLAGS = ["--batch-size", "16", "--image-resolution", "16", "--patch-size", "8", "--vision-width", "32",
              "--vision-layers", "1", "--vision-heads", "1", "--text-width", "32", "--text-layers", "1",
              "--text-heads", "1", "--embed-dim", "16", "--vocab-size", "600", "--context-length", "16",
              "--warmup-steps", "1", "--init-temperature", "0.2", "--threads", "1", "--no-progress", "--no-plots"]


def quiet(*args):
    pass


def tiny(out, **overrides):
    return TrainConfig(**{**TINY, "out": str(out), "steps": 4, "eval_every": 2, "checkpoint_every": 2, **overrides})


def records(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def cli(*argv, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "miniclip.cli", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


# ------------------------------------------------------------------------------ one writer
def test_a_held_folder_is_refused_naming_the_pid_and_a_killed_holder_never_blocks(tmp_path):
    run = tmp_path / "run"
    train(tiny(run), log=quiet)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, json, os, sys, time\n"
        f"f = open({str(run / MARKER)!r}, 'a+')\n"
        "fcntl.flock(f, fcntl.LOCK_EX)\n"
        "f.truncate(0); f.write(json.dumps({'pid': os.getpid(), 'host': 'here'})); f.flush()\n"
        "print('held', flush=True); time.sleep(120)")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        for resume in (False, True):
            with pytest.raises(RunFolderError, match=f"in use: process {holder.pid} on here"):
                train(TrainConfig(out=str(run), progress=False, plots=False), resume=resume, log=quiet)
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    # the lock died with its holder: the folder is free again (a finished run: resuming is a no-op)
    result = train(TrainConfig(out=str(run), progress=False, plots=False), resume=True, log=quiet)
    assert result.steps_done == 4


def test_two_trainers_started_together_leave_one_consistent_run(tmp_path):
    out = str(tmp_path / "run")
    flags = ["train", "--out", out, "--steps", "30", "--eval-every", "10", "--checkpoint-every", "10", *TINY_FLAGS]
    procs = [cli(*flags), cli(*flags)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    loser = next(err for code, err in results if code == 1).strip().splitlines()
    # "in use: process P on H", or "in use: another process" when the winner holds the lock but has
    # not written its pid yet (run_folder._lock's fallback); or the winner's finished run
    assert len(loser) == 1 and (f"{out} is in use: " in loser[0] or "already holds a run" in loser[0]), loser
    recs = records(out)
    assert [r["step"] for r in recs if r["kind"] == "train"] == list(range(1, 31))
    assert sum(r["kind"] == "final" for r in recs) == 1


# ------------------------------------------------------------------------------ never stuck
def test_a_run_that_never_checkpointed_starts_again(tmp_path):
    run = tmp_path / "run"

    def die(step, record, model):
        raise RuntimeError("killed")  # like a kill (or a full disk, or a bad CSV) before the first checkpoint

    for resume in (False, True):
        with pytest.raises(RuntimeError):
            train(tiny(run, checkpoint_every=4), on_step=die, log=quiet)
        assert CheckpointManager(run / "checkpoints").latest() is None
        logged = []
        if resume:
            result = train(TrainConfig(out=str(run), progress=False, plots=False), resume=True, log=logged.append)
        else:
            result = train(tiny(run, checkpoint_every=4), log=logged.append)
        assert any("starting it over" in line for line in logged)
        assert [r["step"] for r in records(run) if r["kind"] == "train"] == [1, 2, 3, 4]
        assert result.final and os.path.exists(run / "model.npz")
        for name in ("model.npz", "metrics.jsonl", "checkpoints"):
            os.system(f"rm -rf {run / name}")


def test_a_foreign_run_is_never_overwritten_nor_adopted(tmp_path):
    source = tmp_path / "source"
    train(tiny(source), log=quiet)
    foreign = tmp_path / "foreign"
    os.makedirs(foreign / "checkpoints")
    for name in ("model.npz", "checkpoints/step_00000004.npz"):
        (foreign / name).write_bytes((source / name).read_bytes())
    before = sorted(p.name for p in foreign.rglob("*"))
    with pytest.raises(RunFolderError, match="not a miniclip run folder"):
        train(tiny(foreign, steps=6), log=quiet)
    assert sorted(p.name for p in foreign.rglob("*")) == before
    # with another run's config.json beside them, --resume refuses the checkpoint
    (foreign / "config.json").write_text(tiny(foreign, steps=6000, warmup_steps=100).to_json())
    with pytest.raises(RunFolderError, match=r"belongs to another run.*steps \(4 vs 6000\)"):
        train(TrainConfig(out=str(foreign), progress=False, plots=False), resume=True, log=quiet)


def test_resume_removes_leftover_tmp_files_and_a_finished_run_is_left_alone(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(tiny(run, steps=6), on_step=_interrupt_at(3), log=quiet)
    leftovers = [run / "checkpoints" / ".step_00000004.npz.x1y2.tmp", run / ".eval_arrays.npz.z.tmp",
                 run / "metrics.jsonl.tmp"]
    for path in leftovers:
        path.write_bytes(b"half")
    train(TrainConfig(out=str(run), progress=False, plots=False), resume=True, log=quiet)
    assert not any(path.exists() for path in leftovers)
    finished = {name: (run / name).read_bytes() for name in ("metrics.jsonl", "timing.json", "model.npz")}
    assert json.loads(finished["timing.json"])["steps"] == 6  # the two parts of the run add up
    logged = []
    result = train(TrainConfig(out=str(run), progress=False, plots=False), resume=True, log=logged.append)
    assert "is finished" in logged[-1] and result.final["kind"] == "final"
    assert {name: (run / name).read_bytes() for name in finished} == finished  # one final record, timing kept


def _interrupt_at(at):
    def hook(step, record, model):
        if step == at:
            raise KeyboardInterrupt
    return hook


# ------------------------------------------------------------------------------ signals, processes
def test_sigterm_finishes_the_step_and_checkpoints(tmp_path):
    def terminate(step, record, model):
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler only sets a flag; the loop stops after the step

    logged = []
    with pytest.raises(KeyboardInterrupt):
        train(tiny(tmp_path / "run", steps=20, checkpoint_every=5), on_step=terminate, log=logged.append)
    latest = CheckpointManager(tmp_path / "run" / "checkpoints").latest()
    assert load_checkpoint(latest).step == 3
    assert "stopped by SIGTERM after step 3" in logged[-1] and latest in logged[-1]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is restored


def descendants(pid):
    """Every process below ``pid``, from /proc (children first found by their parent's PID)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def start_training(run, *flags, **kwargs):
    """``miniclip train`` of the tiny model on 2 ranks, for ever; returns once it has done 3 steps."""
    proc = cli("train", "--out", str(run), "--steps", "100000", "--eval-every", "100000", "--checkpoint-every", "2",
               "--data-workers", "1", "--processes", "2", *TINY_FLAGS, *flags, **kwargs)
    while not (run / "metrics.jsonl").exists() or len(records(run)) < 3:  # training, its workers running
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.2)
    return proc


def wait_for_the_end(proc, family):
    """Wait for ``proc`` to end, then for every process of its ``family``; returns (code, stdout, stderr)."""
    try:
        code = proc.wait(timeout=60)
        deadline = time.monotonic() + 10
        while any(alive(p) for p in family) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(alive(p) for p in family)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    return code, out, err


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="finds processes through /proc (Linux)")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_no_process_outlives_a_killed_trainer(sig, tmp_path):
    run = tmp_path / "run"
    proc = start_training(run)
    family = descendants(proc.pid)
    assert len(family) == 3  # rank 1 and each rank's batch worker; no multiprocessing resource tracker
    proc.send_signal(sig)
    code, out, err = wait_for_the_end(proc, family)
    if sig == signal.SIGTERM:
        assert code == 130 and "stopped by SIGTERM" in out and "--resume" in out
        step = load_checkpoint(CheckpointManager(run / "checkpoints").latest()).step
        assert step == max(r["step"] for r in records(run))  # the newest checkpoint is the last step done
    assert "Traceback" not in err


# ------------------------------------------------------------------------------ full disk, read-only
def test_a_full_disk_is_one_line_naming_the_file_and_the_intact_checkpoint(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    real_savez, calls = np.savez, []

    def savez(file, **arrays):
        calls.append(1)
        if len(calls) == 2:  # the second checkpoint (step 4) meets a full disk
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_savez(file, **arrays)

    monkeypatch.setattr(np, "savez", savez)
    code = main(["train", "--out", str(out), "--steps", "6", "--eval-every", "10", "--checkpoint-every", "2",
                 "--data-workers", "0", *TINY_FLAGS])
    err = capsys.readouterr().err.strip().splitlines()
    newest = str(out / "checkpoints" / "step_00000002.npz")
    assert code == 1 and len(err) == 1
    assert "step_00000004.npz: No space left on device [errno 28]" in err[0]
    assert f"the newest checkpoint {newest} is intact" in err[0] and f"--resume {out}" in err[0]
    assert load_checkpoint(newest).step == 2
    assert not [p for p in (out / "checkpoints").iterdir() if p.name.endswith(".tmp")]


def test_a_read_only_file_system_is_one_line(tmp_path, monkeypatch, capsys):
    import miniclip.training.run_folder

    def makedirs(path, exist_ok=False):
        raise OSError(errno.EROFS, "Read-only file system", path)

    monkeypatch.setattr(miniclip.training.run_folder.os, "makedirs", makedirs)
    out = str(tmp_path / "run")
    assert main(["train", "--out", out, "--steps", "2", *TINY_FLAGS]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"cannot write {out}: Read-only file system [errno 30]" in err[0]
    assert "no checkpoint was written" in err[0]
