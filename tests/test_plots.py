"""plot_run redraws every picture of a run folder from metrics.jsonl and eval_arrays.npz."""

import json

import numpy as np
import pytest

from miniclip.evaluation.plots import plot_run, read_metrics


def write_run(run_dir):
    rng = np.random.default_rng(0)
    with open(run_dir / "metrics.jsonl", "w") as f:
        for step in range(30):
            f.write(json.dumps({"kind": "train", "step": step, "loss": 5 - step / 10, "lr": 1e-3,
                                "temperature": 14.3 + step, "batch_size": 64}) + "\n")
            if step % 10 == 9:
                f.write(json.dumps({"kind": "eval", "step": step, "eval_loss": 4 - step / 10,
                                    "zeroshot_top1_all": step / 30, "zeroshot_top1_heldout": step / 40,
                                    "zeroshot_top5_all": step / 29}) + "\n")
    names = [f"c{i}" for i in range(48)]
    np.savez(run_dir / "eval_arrays.npz", similarity=rng.random((16, 16)),
             confusion=rng.integers(0, 5, (48, 48)), classnames=np.array(names),
             sample_images=rng.integers(0, 255, (5, 32, 32, 3), dtype=np.uint8),
             sample_captions=np.array(["a red circle"] * 5), sample_guesses=np.array(["red circle"] * 5),
             sample_correct=np.array([1, 0, 1, 1, 0], dtype=bool))


def test_plot_run_draws_every_png(tmp_path):
    write_run(tmp_path)
    paths = plot_run(tmp_path)
    names = sorted(p.rsplit("/", 1)[-1] for p in paths)
    assert names == ["confusion.png", "loss.png", "lr_temperature.png", "samples.png", "similarity.png",
                     "zero_shot.png"]
    for p in paths:
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="metrics.jsonl"):
        plot_run(tmp_path)
    (tmp_path / "metrics.jsonl").write_text('{"kind": "train"}\n{oops\n')
    with pytest.raises(ValueError, match="line 2"):
        read_metrics(tmp_path / "metrics.jsonl")


def test_a_run_with_only_its_final_evaluation_draws_a_labelled_legend(tmp_path):
    # `miniclip train --steps 500`: eval_every is 500, so the only evaluation is the final one
    import warnings

    from miniclip.evaluation.plots import plot_zero_shot
    records = [{"kind": "train", "step": s, "loss": 1.0, "lr": 1e-3, "temperature": 14.3, "batch_size": 8}
               for s in range(1, 4)]
    records.append({"kind": "final", "step": 3, "eval_loss": 1.0, "zeroshot_top1_all": 0.5,
                    "zeroshot_top1_heldout": 0.25, "zeroshot_top5_all": 0.9})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's "No artists with labels found to put in legend"
        plot_zero_shot(records, tmp_path / "zero_shot.png")
    assert (tmp_path / "zero_shot.png").stat().st_size > 0
