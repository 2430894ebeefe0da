"""The supervised baseline (model/supervised.py): CLIP's image tower with a linear head."""

import numpy as np

from miniclip import gradcheck
from miniclip.model import CLIP
from miniclip.model.supervised import SupervisedClassifier
from miniclip.tools.model_gradcheck_cases import TINY, SupervisedLossCase


def test_supervised_loss_gradcheck_wrt_every_parameter():
    case = SupervisedLossCase()
    params = case.inputs(np.random.default_rng(0))
    assert gradcheck(case.fn, *params, max_checks=6, name=case.name) < 1e-6


def test_the_image_tower_is_clips_and_encode_image_gives_its_features():
    model = SupervisedClassifier(7, **TINY, dtype=np.float64, seed=3)
    clip = CLIP(**TINY, dtype=np.float64, seed=3)
    visual_keys = [k for k in clip.state_dict() if k.startswith("visual.")]
    assert [k for k in model.state_dict() if k.startswith("visual.")] == visual_keys
    assert set(model.state_dict()) - set(visual_keys) == {"head.weight", "head.bias"}
    images = np.random.default_rng(1).standard_normal((3, 3, 8, 8))
    features = model.encode_image(images).data
    assert features.shape == (3, TINY["embed_dim"])
    W, b = model.head.weight.data, model.head.bias.data
    np.testing.assert_allclose(model(images).data, features @ W.T + b, rtol=1e-12)


def test_supervised_baseline_trains_evaluates_and_refuses_zero_shot(tmp_path, capsys):
    from miniclip.cli import main
    run = str(tmp_path / "baseline")
    flags = ["--objective", "supervised", "--out", run, "--steps", "30", "--batch-size", "32",
             "--image-resolution", "16", "--patch-size", "8", "--vision-width", "32", "--vision-layers", "1",
             "--vision-heads", "1", "--embed-dim", "16", "--lr", "3e-3", "--warmup-steps", "3", "--eval-every", "30",
             "--checkpoint-every", "30", "--no-progress", "--no-plots", "--threads", "1"]
    assert main(["train", *flags]) == 0
    out = capsys.readouterr().out
    assert "supervised baseline: no text tower" in out and "supervised top-1 all 48 names" in out
    final = [line for line in out.splitlines() if line.startswith("final")][0]
    assert "held-out pairs 0.0% (never seen labeled)" in final  # labels it never saw, it never names
    assert main(["eval", run, "--json"]) == 0
    import json
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["supervised_top1_heldout"] == 0.0 and metrics["supervised_top1_all"] > 1 / 48  # it learned
    from PIL import Image
    Image.new("RGB", (20, 20), (220, 30, 30)).save(tmp_path / "red.png")
    assert main(["zeroshot", run, str(tmp_path / "red.png"), "--labels", "a,b"]) == 1
    assert "supervised baseline" in capsys.readouterr().err


def test_supervised_objective_needs_the_shapes_world(tmp_path, capsys):
    from miniclip.cli import main
    assert main(["train", "--objective", "supervised", "--train-data", str(tmp_path / "x.csv"),
                 "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "--objective" in err and "Traceback" not in err
