"""Training with CLIP's ModifiedResNet image tower (``vision_layers`` four stage depths): the config,
the command line, evaluation in eval mode, exact resume (BatchNorm's running statistics included)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import miniclip
from miniclip.model.resnet import ModifiedResNet
from miniclip.training import TrainConfig, train

from test_train import TINY, quiet, records  # (the ViT runs' helpers; tests/ is on the path)

# TINY with CLIP's ModifiedResNet as the image tower (32 px: the least it takes)
RESNET = dict(TINY, batch_size=16, image_resolution=32, vision_patch_size=8, vision_layers=(1, 1, 1, 1),
              vision_width=8, vision_heads=None, warmup_steps=2, eval_images=48, eval_heldout_images=16,
              final_eval_images=96, final_eval_heldout_images=32)


def tiny_resnet(tmp_path, name, **overrides):
    return TrainConfig(**{**RESNET, "out": str(tmp_path / name), "steps": 8, "eval_every": 4,
                          "checkpoint_every": 2, **overrides})


def test_config_takes_stage_depths_and_checks_them():
    config = TrainConfig(vision_layers=(1, 1, 1, 1), vision_width=16, vision_heads=None)
    assert config.resnet and config.model_args(600)["vision_layers"] == (1, 1, 1, 1)
    again = TrainConfig.from_dict(json.loads(config.to_json()))  # config.json holds a list
    assert again.vision_layers == (1, 1, 1, 1) and again == config
    assert TrainConfig().resnet and not TrainConfig(vision_layers=3, vision_width=64).resnet  # the default is the ResNet
    with pytest.raises(ValueError, match=r"TrainConfig.vision_layers: expected an integer >= 1 .* or four stage"):
        TrainConfig(vision_layers=(1, 2))
    with pytest.raises(ValueError, match=r"TrainConfig.image_resolution: expected a multiple of 32"):
        TrainConfig(vision_layers=(1, 1, 1, 1), image_resolution=40)
    with pytest.raises(ValueError, match=r"TrainConfig.vision_heads: expected None or a divisor .* 512"):
        TrainConfig(vision_layers=(1, 1, 1, 1), vision_width=16, vision_heads=3)


def test_a_resnet_run_evaluates_in_eval_mode_resumes_exactly_and_loads(tmp_path):
    full = train(tiny_resnet(tmp_path, "full"), log=quiet)
    assert isinstance(full.model.visual, ModifiedResNet)
    assert all(m.training for _, m in full.model.named_modules())  # evaluation put it back in training mode

    def interrupt_at_6(step, record, model):
        if step == 6:
            raise KeyboardInterrupt

    config = tiny_resnet(tmp_path, "stopped")
    with pytest.raises(KeyboardInterrupt):
        train(config, on_step=interrupt_at_6, log=quiet)
    resumed = train(TrainConfig(out=config.out, progress=False, plots=False), resume=True, log=quiet)
    assert records(full.run_dir) == records(config.out)  # losses and evaluations, the same
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert any("running_mean" in k for k in a)
    for k in a:  # parameters and BatchNorm's running statistics
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)

    # evaluation ran in eval mode: miniclip eval of the saved model (eval mode) repeats the final line
    model, preprocess, tokenizer = miniclip.load(os.path.join(full.run_dir, "model.npz"))
    assert isinstance(model.visual, ModifiedResNet) and not model.training
    from miniclip.evaluation.saved import evaluate_checkpoint
    again = evaluate_checkpoint(full.run_dir)
    assert again["zeroshot_top1_all"] == full.final["zeroshot_top1_all"]


def test_command_line_takes_stage_depths(tmp_path):
    env = dict(os.environ, MINICLIP_TRACEBACK="")
    bad = subprocess.run([sys.executable, "-m", "miniclip.cli", "train", "--vision-layers", "1,2", "--steps", "2"],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "--vision-layers: expected an integer (ViT blocks) or four comma-separated stage depths" in bad.stderr
    from miniclip.cli import vision_layers_arg
    assert vision_layers_arg("3") == 3 and vision_layers_arg("1,2,3,4") == (1, 2, 3, 4)
