"""The `miniclip` command: help for a newcomer, gradcheck, info, data, convert, and
train -> eval -> zeroshot -> plot on a tiny run."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from miniclip.cli import main

TINY_FLAGS = ["--steps", "6", "--batch-size", "16", "--image-resolution", "16", "--patch-size", "8",
              "--vision-width", "32", "--vision-layers", "1", "--vision-heads", "1", "--text-width", "32",
              "--text-layers", "1", "--text-heads", "1", "--embed-dim", "16", "--vocab-size", "600",
              "--context-length", "16",
              "--warmup-steps", "2", "--init-temperature", "0.2", "--eval-every", "3", "--checkpoint-every", "3", "--threads", "1",
              "--no-progress", "--no-plots"]


@pytest.mark.parametrize("command", [[], ["train"], ["eval"], ["zeroshot"], ["plot"]])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main(command + ["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: miniclip" in out
    if command == ["train"]:
        for flag in ("--out", "--steps", "--batch-size", "--lr", "--train-data", "--csv-img-key", "--resume",
                     "--seed", "--loss", "--dtype", "--threads", "--skip-bad-rows", "(default: "):
            assert flag in out


def test_entry_point_runs_as_a_module():
    out = subprocess.run([sys.executable, "-m", "miniclip.cli", "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert "train" in out and "zeroshot" in out


def test_train_eval_zeroshot_plot(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert main(["train", "--out", run] + TINY_FLAGS) == 0
    out = capsys.readouterr().out
    assert "final (step 6" in out and "held-out pairs" in out
    assert os.path.exists(os.path.join(run, "model.npz"))

    assert main(["eval", run, "--images", "96", "--heldout-images", "48"]) == 0
    out = capsys.readouterr().out
    assert "zero-shot, all 48 names (96 fresh images): top-1" in out
    assert "held-out pairs (48 fresh images)" in out and "R@10" in out

    from PIL import Image
    image = tmp_path / "red.png"
    Image.fromarray(np.full((20, 20, 3), (220, 30, 30), dtype=np.uint8)).save(image)
    assert main(["zeroshot", run, str(image), "--labels", "red circle, blue star ,green square"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(image)
    probs = [float(line.split("%")[0]) for line in lines[1:]]
    assert len(probs) == 3 and abs(sum(probs) - 100) < 0.05

    assert main(["plot", run]) == 0
    assert os.path.exists(os.path.join(run, "zero_shot.png"))

    # the same folder again is refused, with the way out in the message
    assert main(["train", "--out", run] + TINY_FLAGS) == 1
    assert "--resume" in capsys.readouterr().err
    # resuming a finished run changes nothing
    assert main(["train", "--resume", run, "--no-progress", "--no-plots"]) == 0


def test_bad_option_values_are_named(tmp_path, capsys):
    assert main(["train", "--steps", "0", "--no-progress"]) == 1
    assert "--steps" in capsys.readouterr().err
    # a context too short for the captions is refused before training, with the way out
    assert main(["train", "--out", str(tmp_path / "short"), "--context-length", "8", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "--context-length: 8 tokens" in err and "TrainConfig" not in err
    with pytest.raises(SystemExit):
        main(["train", "--loss", "triplet"])
    assert "invalid choice" in capsys.readouterr().err


def test_gradcheck_command_passes_and_prints_a_table(capsys):
    assert main(["gradcheck", "--only", "matmul", "layer_norm", "attention"]) == 0
    out = capsys.readouterr().out
    assert "max rel err" in out and "layer_norm" in out and "FAIL" not in out
    assert "0 failed" in out


def test_info_command_prints_json(capsys):
    assert main(["info"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert "compiled" in info and "numpy_blas" in info


def test_help_lists_the_commands(capsys):
    assert main([]) == 0
    assert "gradcheck" in capsys.readouterr().out


def test_data_grid_command_writes_a_png(tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["data", "grid", str(out), "--n", "4", "--resolution", "32"]) == 0
    assert out.exists() and out.stat().st_size > 0


def test_convert_reports_a_missing_file_without_a_traceback(tmp_path, capsys):
    assert main(["convert", str(tmp_path / "missing.pt"), str(tmp_path / "out.npz")]) == 1
    err = capsys.readouterr().err
    assert "missing.pt" in err and "Traceback" not in err


def test_convert_without_torch_says_what_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError, as in a bare venv
    (tmp_path / "model.pt").write_bytes(b"a checkpoint")
    assert main(["convert", str(tmp_path / "model.pt"), str(tmp_path / "out.npz")]) == 1
    err = capsys.readouterr().err
    assert "pip install torch" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out.npz").exists()
