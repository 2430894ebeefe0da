"""Data-parallel training over MPI (miniclip/training/distributed.py).

Single-process tests run everywhere (the size-1 World needs no mpi4py). The multi-rank tests spawn
``mpiexec -n P python tests/mpi_scripts/<script>.py`` with a timeout and read back the JSON that rank
0 writes; they are skipped when mpi4py or mpiexec is missing (``pip install -e ".[mpi]"``).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from miniclip.training.checkpoint import CheckpointManager

from miniclip import gradcheck, ops
from miniclip.autograd import Tensor
from miniclip.training.distributed import (AllGather, DistributedUnavailableError, World, all_gather,
                                  all_reduce_gradients, broadcast_parameters, distributed_clip_loss,
                                  init_distributed, local_batch_size, rank_seed, rank_slice, shard)
from miniclip.loss import clip_loss
from miniclip.training import TrainConfig, train

SCRIPTS = Path(__file__).resolve().parent / "mpi_scripts"
TIMEOUT = 120  # seconds: a bound on a hung job, never a performance assertion


# ----------------------------------------------------------------------------- one process
def test_single_process_world_is_the_identity():
    world = World()
    assert (world.rank, world.size, world.is_main, world.comm) == (0, 1, True, None)
    x = np.arange(6.0).reshape(3, 2)
    for out in (world.allgather(x), world.reduce_scatter(x), world.allreduce(x, average=True)):
        np.testing.assert_array_equal(out, x)
        assert out is not x  # a fresh array, as MPI would give
    assert world.mean(2.5) == 2.5
    assert world.allgather_object("a") == ["a"] and world.broadcast_object(7) == 7
    world.barrier()


def test_init_without_launcher_is_single_process(monkeypatch):
    for name in ("OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK", "MPI_LOCALNRANKS"):
        monkeypatch.delenv(name, raising=False)
    world = init_distributed(required=False)
    assert world.size == 1 and world.comm is None


def test_distributed_without_mpi4py_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # makes `from mpi4py import MPI` raise ImportError
    with pytest.raises(DistributedUnavailableError, match=r'--distributed .* pip install -e "\.\[mpi\]"'):
        init_distributed(required=True)
    # started by mpiexec without mpi4py: P lone copies would share one run folder, so refuse too
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    with pytest.raises(DistributedUnavailableError, match=r'MPI launcher.* pip install -e "\.\[mpi\]"'):
        init_distributed(required=False)


@pytest.mark.parametrize("shape", [(1, 1), (3, 2), (2, 3, 2)])
def test_allgather_gradcheck_single_process(shape):
    x = Tensor(np.random.default_rng(1).standard_normal(shape), requires_grad=True)
    assert gradcheck(lambda t: all_gather(t, World()), x) < 1e-8


def test_allgather_backward_is_the_adjoint():
    """<AllGather(x), g> = <x, AllGather^T(g)>: the defining property of the backward."""
    rng = np.random.default_rng(2)
    x = Tensor(rng.standard_normal((4, 3)), requires_grad=True)
    g = rng.standard_normal((4, 3))
    y = AllGather.apply(x, World())
    y.backward(g)
    assert np.isclose(np.sum(y.data * g), np.sum(x.data * x.grad), rtol=1e-14)


@pytest.mark.parametrize("local_loss", [False, True])
def test_distributed_clip_loss_single_process_is_clip_loss(local_loss):
    rng = np.random.default_rng(3)
    image = Tensor(ops.normalize(Tensor(rng.standard_normal((5, 4))), -1).data, requires_grad=True)
    text = Tensor(ops.normalize(Tensor(rng.standard_normal((5, 4))), -1).data, requires_grad=True)
    scale = Tensor(np.array(np.log(1 / 0.07)), requires_grad=True)
    ours = distributed_clip_loss(image, text, scale, World(), local_loss=local_loss)
    ours.backward()
    grads = [t.grad.copy() for t in (image, text, scale)]
    for t in (image, text, scale):
        t.grad = None
    logits = scale.exp() * (image @ text.T)
    reference = clip_loss(logits, logits.T)
    reference.backward()
    assert np.isclose(ours.item(), reference.item(), rtol=1e-14)
    for g, t in zip(grads, (image, text, scale)):
        np.testing.assert_allclose(g, t.grad, rtol=1e-13, atol=1e-15)
    gradcheck(lambda i, t, s: distributed_clip_loss(i, t, s, World(), local_loss=local_loss),
              image, text, scale)


def test_distributed_clip_loss_rejects_mismatched_features():
    with pytest.raises(ValueError, match="same shape"):
        distributed_clip_loss(np.zeros((3, 4)), np.zeros((2, 4)), 0.0, World())


def test_gradient_and_parameter_helpers_are_no_ops_in_one_process():
    p = Tensor(np.ones(3), requires_grad=True)
    p.grad = np.full(3, 2.0)
    all_reduce_gradients([p], World())
    broadcast_parameters([p], World())
    np.testing.assert_array_equal(p.grad, 2.0)
    np.testing.assert_array_equal(p.data, 1.0)


def test_shards_tile_the_global_batch_in_rank_order():
    class Rank(World):
        def __init__(self, rank, size):
            super().__init__()
            self.rank, self.size = rank, size

    indices = np.arange(12) * 10
    for size in (1, 2, 3, 4):
        worlds = [Rank(r, size) for r in range(size)]
        np.testing.assert_array_equal(np.concatenate([shard(indices, w) for w in worlds]), indices)
        assert [rank_slice(12, w) for w in worlds][-1] == slice(12 - 12 // size, 12)
    with pytest.raises(ValueError, match="divisible by the number of ranks"):
        local_batch_size(10, Rank(0, 4))
    streams = [np.random.default_rng(rank_seed(0, Rank(r, 2))).random() for r in range(2)]
    assert streams[0] != streams[1]
    assert streams[0] == np.random.default_rng(rank_seed(0, Rank(0, 2))).random()


# ----------------------------------------------------------------------------- under mpiexec
def _mpiexec():
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else shutil.which("mpiexec")


def _mpi_available():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return _mpiexec() is not None


needs_mpi = pytest.mark.skipif(not _mpi_available(),
                               reason='needs mpi4py and mpiexec: pip install -e ".[mpi]"')


def run_mpi(script, n, *args, timeout=TIMEOUT, python=True):
    """Run ``script`` (under tests/mpi_scripts/, with Python; or any program with ``python=False``) on
    ``n`` ranks; return the CompletedProcess (raises subprocess.TimeoutExpired on a hang)."""
    mpiexec = _mpiexec()
    version = subprocess.run([mpiexec, "--version"], capture_output=True, text=True).stdout
    # Open MPI counts cores as slots: 3 ranks on a 2-core machine need --oversubscribe
    extra = ["--oversubscribe"] if ("Open MPI" in version or "prte" in version.lower()) else []
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    program = [sys.executable, str(SCRIPTS / script)] if python else [str(script)]
    cmd = [mpiexec, *extra, "-n", str(n), *program, *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def run_mpi_json(script, n, tmp_path, *args):
    out = tmp_path / f"{Path(script).stem}_{n}.json"
    proc = run_mpi(script, n, out, *args)
    assert proc.returncode == 0, f"mpiexec -n {n} {script} failed:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(out.read_text())


@needs_mpi
@pytest.mark.parametrize("n", [2, 3])
def test_allgather_and_losses_gradcheck_under_mpiexec(n, tmp_path):
    result = run_mpi_json("gradcheck_allgather.py", n, tmp_path)
    assert result["size"] == n
    losses = [f"loss_{kind}_{variant}" for kind in ("clip", "siglip") for variant in ("global", "local")]
    for name in ["allgather"] + losses:
        assert result[f"{name}_gradcheck"] < 1e-6, result
    for name in losses:
        assert result[f"{name}_vs_single"] < 1e-12, result


@needs_mpi
@pytest.mark.parametrize("n", [2, 3])
def test_data_parallel_steps_equal_one_process(n, tmp_path):
    """A tiny CLIP in float64: one step's loss and every gradient, then 20 AdamW steps, against one
    process on the concatenated batch, for CLIP's and SigLIP's losses in open_clip's global and local
    variants."""
    result = run_mpi_json("train_equivalence.py", n, tmp_path)
    for variant in ("clip_global", "clip_local", "siglip_global", "siglip_local"):
        assert result[f"{variant}_step_loss_rel_err"] <= 1e-10, result
        assert result[f"{variant}_step_grad_rel_err"] <= 1e-10, result
        assert result[f"{variant}_trajectory_rel_err"] <= 1e-10, result
        assert result[f"{variant}_trajectory_loss_drop"] > 0, result
        assert result[f"{variant}_final_param_rel_err"] <= 1e-10, result
        assert result[f"{variant}_ranks_bitwise_in_sync"], result


@needs_mpi
@pytest.mark.parametrize("mode", ["raise", "uncaught", "die"])
def test_a_failing_rank_ends_the_job(mode):
    proc = run_mpi("rank_failure.py", 3, mode)  # subprocess.TimeoutExpired here would mean a hang
    assert proc.returncode != 0
    assert "unreachable" not in proc.stdout
    if mode != "die":
        assert f"simulated failure on rank 2 (mode {mode})" in proc.stderr
        assert "[rank 2/3] aborting every rank of the job" in proc.stderr


# ----------------------------------------------------------------------------- miniclip train on ranks
# float64 so that a run on P ranks can be compared with one process to ~1e-12
TINY_RUN = dict(batch_size=12, image_resolution=16, vision_patch_size=4, vision_width=32, vision_layers=1,
                vision_heads=1, transformer_width=32, transformer_layers=1, transformer_heads=1, embed_dim=32,
                context_length=16, vocab_size=600, warmup_steps=2, init_temperature=0.2, threads=1, progress=False,
                plots=False, eval_images=48, eval_heldout_images=24, final_eval_images=96,
                final_eval_heldout_images=48, dtype="float64", steps=12, eval_every=6, checkpoint_every=4, lr=2e-3)


def _records(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def _assert_same_run(ours, reference):
    """Same records in the same order; every number equal to a relative 1e-10 (float64 rounding)."""
    assert [(r["kind"], r["step"]) for r in ours] == [(r["kind"], r["step"]) for r in reference]
    for a, b in zip(ours, reference):
        assert a.keys() == b.keys()
        for key, value in b.items():
            if isinstance(value, float):
                assert abs(a[key] - value) <= 1e-10 * max(abs(value), 1e-3), (a["step"], key, a[key], value)
            else:
                assert a[key] == value, (a["step"], key)


def test_train_with_a_one_process_world_is_unchanged(tmp_path):
    plain = train(TrainConfig(**{**TINY_RUN, "steps": 4, "out": str(tmp_path / "a")}), log=lambda *a: None)
    with_world = train(TrainConfig(**{**TINY_RUN, "steps": 4, "out": str(tmp_path / "b")}), log=lambda *a: None,
                       world=World())
    assert _records(plain.run_dir) == _records(with_world.run_dir)


@needs_mpi
def test_train_on_ranks_fails_cleanly_then_resumes_on_another_count_to_the_one_process_run(tmp_path):
    """`train` on 2 ranks equals one process; a rank that fails after step 10 ends the job and leaves the
    step-8 checkpoint; resuming on 3 ranks finishes the one-process run's trajectory, evaluations included."""
    reference = train(TrainConfig(**{**TINY_RUN, "out": str(tmp_path / "one")}), log=lambda *a: None)
    reference_records = _records(reference.run_dir)

    run = dict(TINY_RUN, out=str(tmp_path / "ranks"))
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(run))
    proc = run_mpi("train_run.py", 2, config_file, "--fail-rank", 1, "--fail-at-step", 10)
    assert proc.returncode != 0
    assert "simulated failure on rank 1 after step 10" in proc.stderr
    manager = CheckpointManager(os.path.join(run["out"], "checkpoints"))
    assert manager.latest().endswith("step_00000008.npz")
    assert not os.path.exists(os.path.join(run["out"], "model.npz"))
    # rank 0 alone wrote the metrics: each step once, and they agree with one process so far
    written = [r for r in _records(run["out"]) if r["step"] <= 8]
    _assert_same_run(written, [r for r in reference_records if r["step"] <= 8])

    proc = run_mpi("train_run.py", 3, config_file, "--resume")
    assert proc.returncode == 0, proc.stderr
    _assert_same_run(_records(run["out"]), reference_records)
    assert os.path.exists(os.path.join(run["out"], "model.npz"))


@needs_mpi
def test_cli_train_distributed_local_loss_on_two_ranks(tmp_path):
    """`mpiexec -n 2 miniclip train --distributed --local-loss ...` equals `miniclip train ...`."""
    from miniclip.cli import main

    flags = ["--steps", "4", "--batch-size", "8", "--image-resolution", "16", "--patch-size", "4",
             "--vision-width", "32", "--vision-layers", "1", "--vision-heads", "1", "--text-width", "32",
             "--text-layers", "1", "--text-heads", "1", "--embed-dim", "32", "--vocab-size", "600",
             "--context-length", "16", "--warmup-steps", "1", "--eval-every", "2", "--checkpoint-every", "2", "--threads", "1",
             "--dtype", "float64", "--no-progress", "--no-plots"]
    assert main(["train", *flags, "--out", str(tmp_path / "one")]) == 0
    proc = run_mpi(Path(sys.executable).parent / "miniclip", 2, "train", "--distributed", "--local-loss", *flags,
                   "--out", tmp_path / "two", python=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("run folder:") == 1  # rank 0 reports, rank 1 is quiet
    ours = _records(tmp_path / "two")
    assert json.loads((tmp_path / "two" / "config.json").read_text())["local_loss"] is True
    _assert_same_run(ours, _records(tmp_path / "one"))


def test_cli_distributed_without_mpi4py_says_what_to_install(monkeypatch, capsys):
    from miniclip.cli import main

    monkeypatch.setitem(sys.modules, "mpi4py", None)
    assert main(["train", "--distributed", "--steps", "2"]) == 1
    assert 'pip install -e ".[mpi]"' in capsys.readouterr().err
