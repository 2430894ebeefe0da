"""Is zero-shot good? The probe and embedding-space commands on a tiny trained model, and the
embedding-space formulas on arrays whose answer is known."""

import json

import numpy as np
import pytest

from miniclip.autograd import Tensor, no_grad
from miniclip.cli import main
from miniclip.evaluation.embedding_space import gap_loss_curve, modality_gap, pca_2d, shifted_pairs
from miniclip.loss import clip_loss
from miniclip.training import TrainConfig, train


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run = str(tmp_path_factory.mktemp("probe") / "run")
    train(TrainConfig(out=run, steps=6, batch_size=16, image_resolution=16, vision_patch_size=8, vision_width=32,
                      vision_layers=1, vision_heads=1, transformer_width=32, transformer_layers=1,
                      transformer_heads=1, embed_dim=16, vocab_size=600, context_length=16, warmup_steps=2,
                      init_temperature=0.2, eval_every=6, checkpoint_every=6, eval_images=48,
                      eval_heldout_images=16, final_eval_images=48, final_eval_heldout_images=16,
                      world="classic", progress=False, plots=False), log=lambda *a, **k: None)
    # the classic world: its captions never say "sketch" or "outline", so probe and embeddings must draw
    # the model's own world (a diverse caption would not fit this tokenizer's context)
    return run


def test_probe_command_reports_probe_and_zero_shot_on_the_same_images(tiny_run, capsys):
    assert main(["probe", tiny_run, "--pool", "240", "--shots", "2", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["shots"] == 2 and r["pool_images"] == 240 and r["test_images"] == 120
    assert r["heldout"] == 0.0          # a probe cannot name a pair it never saw labeled
    for key in ("train", "val", "test", "zeroshot_test", "zeroshot_heldout"):
        assert 0.0 <= r[key] <= 1.0
    assert 1e-6 <= r["l2"] <= 1e6


def test_few_shot_curve_draws_fewshot_png(tiny_run, tmp_path, capsys):
    plot = tmp_path / "fewshot.png"
    assert main(["probe", tiny_run, "--pool", "240", "--few-shot", "--seeds", "2", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "labels per class | probe test top-1" in out and plot.stat().st_size > 1000
    assert out.count("%") >= 6


def test_embeddings_command_prints_the_gap_and_the_loss_table(tiny_run, tmp_path, capsys):
    plot = tmp_path / "space.png"
    assert main(["embeddings", tiny_run, "--images", "96", "--pairs", "32", "--plot", str(plot), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert 0.0 <= r["modality_gap"] <= 2.0 and plot.stat().st_size > 1000
    assert len(r["loss"]) == len(r["temperatures"]) and all(len(row) == len(r["shifts"]) for row in r["loss"])


@pytest.mark.parametrize("argv,message", [
    (["probe", "RUN", "--shots", "0"], "--shots must be a positive number"),
    (["probe", "RUN", "--pool", "10"], "--pool must be >= 48"),
    (["embeddings", "RUN", "--images", "10", "--pairs", "20"], "--pairs in [2, --images]"),
])
def test_probe_and_embeddings_refuse_bad_sizes(tiny_run, argv, message, capsys):
    assert main([tiny_run if a == "RUN" else a for a in argv]) == 1
    assert message in capsys.readouterr().err


def test_modality_gap_is_the_distance_of_the_normalized_centroids():
    images = np.array([[2.0, 0.0], [0.0, 3.0]])         # normalized: (1, 0), (0, 1)
    texts = np.array([[-1.0, 0.0]])
    assert modality_gap(images, texts) == pytest.approx(np.linalg.norm([0.5 + 1.0, 0.5]))
    assert modality_gap(images, images * 7) == 0.0


def test_pca_2d_finds_the_axis_of_largest_spread():
    rng = np.random.default_rng(0)
    points = rng.standard_normal((200, 3)) * [10.0, 1.0, 0.1]
    (projected,), explained = pca_2d(points)
    assert explained[0] > 0.95 and explained.sum() <= 1.0
    assert abs(np.corrcoef(projected[:, 0], points[:, 0])[0, 1]) > 0.99


def test_closing_the_gap_moves_the_centroids_together_and_shift_zero_is_the_plain_loss():
    rng = np.random.default_rng(1)
    images = rng.standard_normal((8, 4)) + [3, 0, 0, 0]
    texts = images + rng.standard_normal((8, 4)) * 0.1 + [0, 3, 0, 0]
    closed = shifted_pairs(images, texts, 1.0)
    assert modality_gap(*closed) < 0.2 * modality_gap(images, texts)
    losses = gap_loss_curve(images, texts, [0.1, 1.0], [0.0, 1.0])
    a = images / np.linalg.norm(images, axis=1, keepdims=True)
    b = texts / np.linalg.norm(texts, axis=1, keepdims=True)
    with no_grad():
        plain = clip_loss(Tensor(a @ b.T / 0.1), Tensor(b @ a.T / 0.1)).item()
    assert losses[0, 0] == pytest.approx(plain, rel=1e-12)


def test_probe_and_embeddings_draw_the_world_the_model_was_trained_on(tiny_run):
    from miniclip.data.shapes import WORLDS
    from miniclip.evaluation.fewshot import world_styles
    assert world_styles(tiny_run + "/model.npz") == WORLDS["classic"]
