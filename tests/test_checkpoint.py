"""Checkpoints: exact round trip, clear errors on damaged files, atomic replacement."""

import os
from pathlib import Path

import numpy as np
import pytest

import miniclip.training.checkpoint as ckpt
from miniclip.training.checkpoint import CheckpointError, CheckpointManager, load_checkpoint, save_checkpoint


def contents(seed=0):
    rng = np.random.default_rng(seed)
    gen = np.random.default_rng(seed + 100)
    return dict(model_state={"visual.proj": rng.standard_normal((4, 3)).astype(np.float32),
                             "logit_scale": np.array(2.65926, dtype=np.float32)},
                optimizer_state={"step": np.array(7), "exp_avg.visual.proj": rng.standard_normal((4, 3))},
                rng_state={"data": gen.bit_generator.state},
                config={"steps": 10, "name": "test"},
                tokenizer_merges="#version: 0.2\na b\nab c</w>\n",
                extra={"model_args": {"embed_dim": 3}})


def test_round_trip_is_exact(tmp_path):
    c = contents()
    path = save_checkpoint(tmp_path / "c.npz", step=7, **c)
    got = load_checkpoint(path)
    assert got.step == 7
    for k, v in c["model_state"].items():
        np.testing.assert_array_equal(got.model_state[k], v)
        assert got.model_state[k].dtype == v.dtype and got.model_state[k].shape == v.shape
    for k, v in c["optimizer_state"].items():
        np.testing.assert_array_equal(got.optimizer_state[k], v)
    assert got.config == c["config"] and got.extra == c["extra"]
    assert got.tokenizer_merges == c["tokenizer_merges"]
    # the generator state survives JSON (PCG64 holds 128-bit integers)
    gen = np.random.default_rng()
    gen.bit_generator.state = got.rng_state["data"]
    assert gen.random() == np.random.default_rng(100).random()


def test_truncated_file_error_names_it(tmp_path):
    path = save_checkpoint(tmp_path / "c.npz", **contents())
    data = Path(path).read_bytes()
    bad = tmp_path / "truncated.npz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.npz"):
        load_checkpoint(bad)


def test_corrupt_byte_error_names_it(tmp_path):
    path = save_checkpoint(tmp_path / "c.npz", **contents())
    data = bytearray(Path(path).read_bytes())
    # flip bytes inside the first member's array data (after its local header)
    data[200:210] = bytes(b ^ 0xFF for b in data[200:210])
    bad = tmp_path / "flipped.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="flipped.npz"):
        load_checkpoint(bad)


def test_not_a_checkpoint_and_missing(tmp_path):
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(CheckpointError, match="other.npz"):
        load_checkpoint(other)
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(CheckpointError, match="text.npz"):
        load_checkpoint(tmp_path / "text.npz")
    with pytest.raises(CheckpointError, match="nope.npz"):
        load_checkpoint(tmp_path / "nope.npz")


def test_failure_mid_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "c.npz", step=1, **contents(0))
    before = Path(path).read_bytes()

    real_savez = np.savez

    def savez_then_crash(f, **arrays):
        real_savez(f, **arrays)
        f.write(b"partial")
        raise KeyboardInterrupt  # Ctrl-C in the middle of a write

    monkeypatch.setattr(ckpt.np, "savez", savez_then_crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, step=2, **contents(1))
    monkeypatch.undo()
    assert Path(path).read_bytes() == before
    assert load_checkpoint(path).step == 1
    assert os.listdir(tmp_path) == ["c.npz"]  # no temporary file left behind


def test_non_finite_weights_never_replace_a_good_checkpoint(tmp_path):
    path = save_checkpoint(tmp_path / "c.npz", step=1, **contents(0))
    bad = contents(1)
    bad["model_state"]["visual.proj"][0, 0] = np.nan
    with pytest.raises(CheckpointError, match="visual.proj"):
        save_checkpoint(path, step=2, **bad)
    assert load_checkpoint(path).step == 1
    assert os.listdir(tmp_path) == ["c.npz"]


def test_manager_keeps_last_k(tmp_path):
    mgr = CheckpointManager(tmp_path / "checkpoints", keep=2)
    assert mgr.latest() is None
    for step in (5, 10, 15):
        mgr.save(step, **contents())
    names = [os.path.basename(p) for p in mgr.checkpoints()]
    assert names == ["step_00000010.npz", "step_00000015.npz"]
    assert load_checkpoint(mgr.latest()).step == 15
