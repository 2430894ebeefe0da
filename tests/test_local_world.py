"""Data parallelism on one machine without MPI (miniclip/training/local_world.py).

The collectives against NumPy with 2 and 3 ranks, bitwise the same on every rank; `train` on 2
ranks against one process (a ViT in float64: the same run to rounding; the default ModifiedResNet,
whose BatchNorm sees each rank's shard: trains, in sync, one writer); and the failures: a rank that
raises or is killed ends the run with one line, Ctrl-C stops every rank as it stops one process, and
no process is left behind. Each rank > 0 is a fresh Python process running a function of this file.
"""

import hashlib
import os
import signal

import numpy as np
import pytest
from test_distributed import TINY_RUN, _assert_same_run, _records
from test_run_folder import descendants, records, start_training, wait_for_the_end

from miniclip.training import TrainConfig, train
from miniclip.training.checkpoint import CheckpointManager, load_checkpoint
from miniclip.training.distributed import parameters_in_sync
from miniclip.training.local_world import RankFailedError, start_ranks

needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="finds processes through /proc (Linux)")


def quiet(*args):
    pass


# ----------------------------------------------------------------------------- the collectives
def inputs(rank, size):
    """What rank ``rank`` contributes: arrays of several dtypes and shapes (the largest grows the buffer)."""
    rng = np.random.default_rng([7, rank])
    return {"f32": rng.standard_normal((3, 5)).astype(np.float32),    # (n, d)
            "f64": rng.standard_normal((2 * size, 1, 3)),              # (P*n, 1, 3): reduce-scatter splits it
            "i64": rng.integers(-9, 9, size=(1,)),                     # a single element
            "big": rng.standard_normal(40_000).astype(np.float32)}     # larger than every earlier message


def collectives(world):
    """Every collective of the world on this rank's ``inputs``; the results, as arrays and objects."""
    x = inputs(world.rank, world.size)
    out = {}
    for name in ("f32", "i64", "big"):
        out[f"allgather_{name}"] = world.allgather(x[name])
    for name in ("f32", "f64", "i64", "big"):
        out[f"allreduce_{name}"] = world.allreduce(x[name])
    out["allreduce_mean"] = world.allreduce(x["f64"], average=True)
    out["reduce_scatter"] = world.reduce_scatter(x["f64"])
    for root in (0, world.size - 1):
        received = x["f64"].copy()  # received in place
        out[f"broadcast_{root}"] = world.broadcast(received, root=root).copy()
    out["mean"] = world.mean(float(world.rank))
    out["objects"] = world.allgather_object({"rank": world.rank, "text": "x" * world.rank})
    out["broadcast_object"] = world.broadcast_object(f"from rank {world.rank}", root=world.size - 1)
    world.barrier()
    return out


def fingerprint(out):
    """One digest of every result's bytes: equal on two ranks only when every result is bitwise equal."""
    digest = hashlib.sha256()
    for key in sorted(out):
        value = out[key]
        digest.update(np.ascontiguousarray(value).tobytes() if isinstance(value, np.ndarray) else repr(value).encode())
    return digest.hexdigest()


def run_collectives(world):
    """Ranks > 0: the collectives, then their results to rank 0 (by result for what differs per rank)."""
    out = collectives(world)
    world.allgather_object((fingerprint({k: v for k, v in out.items() if k != "reduce_scatter"}),
                            out["reduce_scatter"]))


@pytest.mark.parametrize("size", [2, 3])
def test_collectives_equal_numpy_and_are_bitwise_the_same_on_every_rank(size):
    with start_ranks(size, run_collectives) as world:
        assert (world.rank, world.size, world.is_main) == (0, size, True)
        out = collectives(world)
        shared = fingerprint({k: v for k, v in out.items() if k != "reduce_scatter"})
        reports = world.allgather_object((shared, out["reduce_scatter"]))
    every = [inputs(q, size) for q in range(size)]
    for name in ("f32", "i64", "big"):
        np.testing.assert_array_equal(out[f"allgather_{name}"], np.concatenate([x[name] for x in every]))
    for name in ("f32", "f64", "i64", "big"):
        total = sum(x[name] for x in every)  # ((x_0 + x_1) + x_2): the order of the world's sum
        np.testing.assert_array_equal(out[f"allreduce_{name}"], total)
        assert out[f"allreduce_{name}"].dtype == every[0][name].dtype
    np.testing.assert_array_equal(out["allreduce_mean"], sum(x["f64"] for x in every) / size)
    np.testing.assert_array_equal(out["broadcast_0"], every[0]["f64"])
    np.testing.assert_array_equal(out[f"broadcast_{size - 1}"], every[size - 1]["f64"])
    assert out["mean"] == (size - 1) / 2
    assert out["objects"] == [{"rank": q, "text": "x" * q} for q in range(size)]
    assert out["broadcast_object"] == f"from rank {size - 1}"
    assert [digest for digest, _ in reports] == [shared] * size  # every rank got bitwise the same
    # reduce-scatter: rank q holds block q of the sum, and the blocks tile it
    np.testing.assert_array_equal(np.concatenate([block for _, block in reports]), sum(x["f64"] for x in every))
    assert all(process.poll() == 0 for process in world.processes)  # every rank finished and was reaped


# ----------------------------------------------------------------------------- failures
def fail(world, how):
    """Ranks > 0: meet rank 0 once, then the last rank fails as ``how`` says (the others wait at a barrier)."""
    world.barrier()
    if world.rank == world.size - 1:
        if how == "raise":
            raise ValueError("simulated failure")
        os.kill(os.getpid(), signal.SIGKILL)
    world.barrier()


@pytest.mark.parametrize("how, message", [("raise", "rank 2 failed: ValueError: simulated failure"),
                                          ("kill", "rank 2 ended unexpectedly (killed by SIGKILL)")])
def test_a_failing_rank_is_one_line_on_rank_0_and_every_rank_ends(how, message):
    with pytest.raises(RankFailedError) as error:
        with start_ranks(3, fail, how) as world:
            fail(world, how)
    assert str(error.value) == message
    assert all(process.poll() is not None for process in world.processes)  # none left running


def test_when_rank_0_fails_the_other_ranks_end():
    with pytest.raises(ZeroDivisionError):
        with start_ranks(3, fail, "never") as world:
            world.barrier()
            1 / 0
    assert all(process.poll() is not None for process in world.processes)


# ----------------------------------------------------------------------------- train() on 2 ranks
def test_train_on_two_ranks_is_the_one_process_run_then_resumes_after_ctrl_c(tmp_path):
    """A ViT (no BatchNorm) in float64: 2 ranks give the one-process run to rounding; Ctrl-C on rank 0
    stops both after the step and leaves a checkpoint; --resume on 2 ranks finishes the same run."""
    reference = train(TrainConfig(**{**TINY_RUN, "out": str(tmp_path / "one")}), log=quiet)

    def press_ctrl_c(step, record, model):  # on rank 0, as a terminal's Ctrl-C reaches only rank 0
        if step == 6:
            os.kill(os.getpid(), signal.SIGINT)

    config = TrainConfig(**{**TINY_RUN, "out": str(tmp_path / "two"), "processes": 2})
    with pytest.raises(KeyboardInterrupt):
        train(config, on_step=press_ctrl_c, log=quiet)
    assert load_checkpoint(CheckpointManager(tmp_path / "two" / "checkpoints").latest()).step == 6
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    result = train(TrainConfig(out=str(tmp_path / "two"), progress=False, plots=False), resume=True, log=quiet)
    assert result.steps_done == TINY_RUN["steps"]
    _assert_same_run(_records(tmp_path / "two"), _records(reference.run_dir))
    for (name, ours), theirs in zip(result.model.named_parameters(), reference.model.parameters()):
        np.testing.assert_allclose(ours.data, theirs.data, rtol=1e-9, atol=1e-12, err_msg=name)


RESNET_RUN = dict(batch_size=16, image_resolution=32, vision_layers=(1, 1, 1, 1), vision_width=8, vision_heads=2,
                  transformer_width=32, transformer_layers=1, transformer_heads=1, embed_dim=32, context_length=16,
                  vocab_size=600, warmup_steps=1, init_temperature=0.2, threads=1, progress=False, plots=False,
                  eval_images=48, eval_heldout_images=24, final_eval_images=48, final_eval_heldout_images=24,
                  steps=4, eval_every=2, checkpoint_every=2)


def train_and_check_sync(world, config):
    """Rank q of a ``train`` whose world is given, then the parameter check (a collective) with rank 0."""
    result = train(config, world=world)
    world.allgather_object(parameters_in_sync(result.model.parameters(), world))


def test_a_resnet_trains_on_two_ranks_in_sync_and_rank_0_alone_writes(tmp_path):
    config = TrainConfig(**RESNET_RUN, out=str(tmp_path / "resnet"))
    with start_ranks(2, train_and_check_sync, config) as world:
        result = train(config, world=world, log=quiet)
        in_sync = world.allgather_object(parameters_in_sync(result.model.parameters(), world))
    assert in_sync == [True, True]
    written = records(tmp_path / "resnet")
    assert [r["step"] for r in written if r["kind"] == "train"] == [1, 2, 3, 4]  # each step once
    assert [r["kind"] for r in written if r["kind"] != "train"] == ["eval", "final"]
    assert all(np.isfinite(r["loss"]) for r in written if r["kind"] == "train")
    assert sorted(os.listdir(tmp_path / "resnet" / "checkpoints")) == ["step_00000002.npz", "step_00000004.npz"]


# ----------------------------------------------------------------------------- miniclip train --processes
def test_processes_must_divide_the_batch_and_not_meet_mpi(capsys):
    from miniclip.cli import main

    assert main(["train", "--processes", "3", "--batch-size", "16", "--no-progress"]) == 1
    assert capsys.readouterr().err.strip().endswith(
        "--processes: expected a divisor of --batch-size=16 (each rank takes an equal shard of the batch), got 3")
    assert main(["train", "--processes", "2", "--distributed"]) == 1
    assert "cannot be combined with --distributed" in capsys.readouterr().err
    assert TrainConfig(processes=None, batch_size=16).processes == min(2, os.cpu_count())
    assert TrainConfig(processes=None, batch_size=15).processes == 1  # the batch would not split
    assert TrainConfig(processes=None, objective="supervised").processes == 1


def rank_pid(family, rank):
    for pid in family:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if f"_rank_main({rank},".encode() in f.read():
                return pid
    raise AssertionError(f"no process of rank {rank} among {family}")


@needs_proc
def test_ctrl_c_stops_every_rank_as_it_stops_one_process(tmp_path):
    run = tmp_path / "run"
    proc = start_training(run, start_new_session=True)  # its own process group, as a terminal starts it
    family = descendants(proc.pid)
    assert len(family) == 3  # rank 1, and each rank's batch worker
    os.killpg(proc.pid, signal.SIGINT)  # the terminal's Ctrl-C: the whole foreground process group
    code, out, err = wait_for_the_end(proc, family)
    assert code == 130 and "stopped by SIGINT after step" in out, (out, err)
    assert "Continue with: miniclip train --resume" in out and "Traceback" not in err
    step = load_checkpoint(CheckpointManager(run / "checkpoints").latest()).step
    assert step == max(r["step"] for r in records(run))  # the newest checkpoint is the last step done


@needs_proc
def test_a_killed_rank_ends_the_run_with_one_line(tmp_path):
    run = tmp_path / "run"
    proc = start_training(run)
    family = descendants(proc.pid)
    os.kill(rank_pid(family, 1), signal.SIGKILL)
    code, out, err = wait_for_the_end(proc, family)
    assert code == 1
    assert err.strip().splitlines()[-1] == "miniclip train: error: rank 1 ended unexpectedly (killed by SIGKILL)"
    assert "Traceback" not in err
