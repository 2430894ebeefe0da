"""The training loop: it learns, resumes to the identical trajectory, guards against NaN, loads back."""

import json
import math
import os

import numpy as np
import pytest

import miniclip
from miniclip.training.checkpoint import CheckpointError, CheckpointManager, load_checkpoint
from miniclip.training.run_folder import MARKER, RunFolderError
from miniclip.training import NonFiniteError, TrainConfig, train
from miniclip.training.step import check_finite

TINY = dict(batch_size=32, image_resolution=16, vision_patch_size=4, vision_width=32, vision_layers=1, vision_heads=1,
            transformer_width=32, transformer_layers=1, transformer_heads=1, embed_dim=32, context_length=16,
            vocab_size=600, warmup_steps=5, init_temperature=0.2, threads=1, progress=False, plots=False, eval_images=96,
            eval_heldout_images=48, final_eval_images=192, final_eval_heldout_images=96)


def tiny(tmp_path, name, **overrides):
    kw = dict(TINY, out=str(tmp_path / name), steps=20, eval_every=10, checkpoint_every=5)
    kw.update(overrides)
    return TrainConfig(**kw)


def quiet(*args):
    pass


def records(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_short_run_lowers_loss_and_beats_chance(tmp_path):
    # tiny models started at CLIP's tau = 0.07 often collapse (every logit equal, loss = ln B) and stay
    # there for many steps; starting at tau = 0.2 (TINY) they learn at once
    config = tiny(tmp_path, "learn", steps=60, lr=1e-3, eval_every=30, checkpoint_every=60, plots=True,
                  image_resolution=32, vision_patch_size=8, vision_width=128, vision_heads=2, transformer_width=64,
                  embed_dim=64, warmup_steps=10, final_eval_images=480, final_eval_heldout_images=96)
    result = train(config, log=quiet)
    losses = [r["loss"] for r in records(result.run_dir) if r["kind"] == "train"]
    assert len(losses) == 60
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.3
    assert np.mean(losses[-10:]) < math.log(config.batch_size) - 0.2  # below chance, not just collapsed
    assert result.final["zeroshot_top1_all"] > 2.5 / 48   # 48 names: chance is 1/48
    assert result.final["zeroshot_top5_all"] > 2 * 5 / 48
    for name in ("config.json", "metrics.jsonl", "model.npz", "timing.json", "loss.png", "zero_shot.png",
                 "lr_temperature.png", "similarity.png", "confusion.png", "samples.png"):
        assert os.path.exists(os.path.join(result.run_dir, name)), name
    assert os.path.exists(os.path.join(result.run_dir, "checkpoints", "step_00000060.npz"))

    # miniclip.load gives the same model, with CLIP's preprocessing and the run's tokenizer
    from PIL import Image
    model, preprocess, tokenizer = miniclip.load(os.path.join(result.run_dir, "model.npz"))
    image = Image.fromarray(np.full((40, 50, 3), 30, dtype=np.uint8))
    x = preprocess(image)
    assert x.shape == (3, 32, 32) and x.dtype == np.float32
    tokens = tokenizer(["a red circle", "a blue star"])
    assert tokens.shape == (2, 16) and tokens.dtype == np.int64
    got = model.encode_text(tokens).data
    want = result.model.encode_text(tokens).data
    np.testing.assert_array_equal(got, want)
    assert model.encode_image(x[None]).shape == (1, 64)


def test_resume_continues_the_identical_trajectory(tmp_path):
    full = train(tiny(tmp_path, "full"), log=quiet)

    def interrupt_at_12(step, record, model):
        if step == 12:
            raise KeyboardInterrupt

    config = tiny(tmp_path, "stopped", data_workers=1)  # batches from a worker process: the same batches
    with pytest.raises(KeyboardInterrupt):
        train(config, on_step=interrupt_at_12, log=quiet)
    assert CheckpointManager(os.path.join(config.out, "checkpoints")).latest().endswith("step_00000012.npz")
    assert max(r["step"] for r in records(config.out)) == 12
    resumed = train(TrainConfig(out=config.out, progress=False, plots=False), resume=True, log=quiet)

    with open(os.path.join(full.run_dir, "metrics.jsonl")) as a, open(os.path.join(config.out, "metrics.jsonl")) as b:
        assert a.read() == b.read()  # the same losses, evaluations and final metrics, byte for byte
    for (name, p), (_, q) in zip(full.model.named_parameters(), resumed.model.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)


def test_same_seed_same_metrics(tmp_path):
    a = train(tiny(tmp_path, "a", steps=8, eval_every=4, warmup_steps=2), log=quiet)
    b = train(tiny(tmp_path, "b", steps=8, eval_every=4, warmup_steps=2), log=quiet)
    c = train(tiny(tmp_path, "c", steps=8, eval_every=4, warmup_steps=2, seed=1), log=quiet)
    assert records(a.run_dir) == records(b.run_dir)
    assert records(a.run_dir) != records(c.run_dir)


def test_resume_from_a_corrupt_checkpoint_names_the_file(tmp_path):
    config = tiny(tmp_path, "corrupt", steps=10)
    train(config, log=quiet)
    latest = CheckpointManager(os.path.join(config.out, "checkpoints")).latest()
    with open(latest, "r+b") as f:
        f.truncate(os.path.getsize(latest) // 3)
    with pytest.raises(CheckpointError, match=os.path.basename(latest)):
        train(TrainConfig(out=config.out, progress=False, plots=False), resume=True, log=quiet)


def test_nan_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    def poison(step, record, model):
        if step == 7:
            model.visual.proj.data[0, 0] = np.nan

    config = tiny(tmp_path, "nan", steps=20)
    with pytest.raises(NonFiniteError, match="step 8"):
        train(config, on_step=poison, log=quiet)
    latest = CheckpointManager(os.path.join(config.out, "checkpoints")).latest()
    ckpt = load_checkpoint(latest)
    assert ckpt.step == 5
    assert all(np.isfinite(v).all() for v in ckpt.model_state.values())


def test_nan_gradient_names_the_parameter():
    class P:
        grad = np.array([1.0, np.inf])

    check_finite(1.0, [("visual.conv1.weight", type("Q", (), {"grad": np.ones(2)})())])
    with pytest.raises(NonFiniteError, match=r"the gradient of parameter 'visual.proj' holds 1 non-finite"):
        check_finite(1.0, [("visual.proj", P())])
    with pytest.raises(NonFiniteError, match="the loss is nan"):
        check_finite(float("nan"), [])


def test_config_errors_name_the_field(tmp_path):
    with pytest.raises(ValueError, match="TrainConfig.steps"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="TrainConfig.vision_patch_size"):
        TrainConfig(image_resolution=32, vision_patch_size=5)
    with pytest.raises(ValueError, match="TrainConfig.loss"):
        TrainConfig(loss="triplet")
    with pytest.raises(ValueError, match="TrainConfig.warmup_steps"):
        TrainConfig(steps=10, warmup_steps=10)
    with pytest.raises(ValueError, match="unknown fields"):
        TrainConfig.from_dict({"stepz": 3})


def test_existing_run_is_not_overwritten(tmp_path):
    config = tiny(tmp_path, "once", steps=2, eval_every=2, warmup_steps=None)
    assert config.warmup_steps == 0  # a tenth of the steps
    train(config, log=quiet)
    with pytest.raises(RunFolderError, match="--resume"):
        train(tiny(tmp_path, "once", steps=2, eval_every=2, warmup_steps=1), log=quiet)


def test_siglip_and_csv_training(tmp_path):
    from miniclip.data import export_samples
    csv_path = export_samples(tmp_path / "csv", n=64, seed=0, resolution=16)
    val_path = export_samples(tmp_path / "val", n=16, seed=1, resolution=16)
    config = tiny(tmp_path, "csv-run", steps=4, eval_every=2, warmup_steps=1, loss="siglip", train_data=str(csv_path),
                  val_data=str(val_path), context_length=32)  # (val captions use words the BPE saw less)
    result = train(config, log=quiet)
    recs = records(result.run_dir)
    assert [r["step"] for r in recs if r["kind"] == "train"] == [1, 2, 3, 4]
    assert "retrieval_image_to_text_R@1" in result.final and result.final["val_pairs"] == 16
    assert all(math.isfinite(r["loss"]) for r in recs if r["kind"] == "train")


def test_ctrl_c_finishes_the_step_and_checkpoints(tmp_path):
    import signal

    def press_ctrl_c(step, record, model):
        if step == 7:
            os.kill(os.getpid(), signal.SIGINT)  # the handler only sets a flag; the loop stops after the step

    config = tiny(tmp_path, "sigint", steps=20)
    with pytest.raises(KeyboardInterrupt):
        train(config, on_step=press_ctrl_c, log=quiet)
    latest = CheckpointManager(os.path.join(config.out, "checkpoints")).latest()
    assert load_checkpoint(latest).step == 7
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is restored
