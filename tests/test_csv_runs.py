"""CSV runs end to end through the ``miniclip`` command: --val-data, the final line, plots, ``miniclip eval
--data`` of a CSV-trained model, and the CSV errors a user meets (one line each, exit 1)."""

import json
import os

import pytest

from miniclip.cli import main
from miniclip.data import export_samples

TINY = ["--image-resolution", "16", "--patch-size", "8", "--vision-width", "32", "--vision-layers", "1",
        "--vision-heads", "1", "--text-width", "32", "--text-layers", "1", "--text-heads", "1", "--embed-dim", "32",
        "--context-length", "32", "--vocab-size", "600", "--batch-size", "8", "--steps", "4", "--eval-every", "2",
        "--checkpoint-every", "2", "--init-temperature", "0.2", "--threads", "1", "--data-workers", "0",
        "--no-progress"]


@pytest.fixture(scope="module")
def csvs(tmp_path_factory):
    root = tmp_path_factory.mktemp("csv_runs")
    train_csv = export_samples(root / "train", 40, seed=0, resolution=16)
    val_csv = export_samples(root / "val", 20, seed=9, resolution=16, split="all")  # other images, other pairs
    return str(train_csv), str(val_csv)


def records(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def run(capsys, *argv):
    """(exit code, stdout, stderr) of ``miniclip *argv``."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_val_data_reports_retrieval_on_it_and_eval_agrees(tmp_path, csvs, capsys):
    train_csv, val_csv = csvs
    out_dir = str(tmp_path / "run")
    code, out, err = run(capsys, "train", "--train-data", train_csv, "--val-data", val_csv, *TINY, "--out", out_dir)
    assert code == 0, err
    lines = out.splitlines()
    periodic = [line for line in lines if line.startswith("step     2:")]
    assert len(periodic) == 1 and "retrieval R@1/5/10 on 20 --val-data pairs: i->t " in periodic[0]
    final_line = next(line for line in lines if line.startswith("final (step 4"))
    assert val_csv in final_line and "R@1/5/10 on 20 --val-data pairs" in final_line
    recs = records(out_dir)
    evals = [r for r in recs if r["kind"] in ("eval", "final")]
    assert [(r["kind"], r["step"], r["val_pairs"]) for r in evals] == [("eval", 2, 20), ("final", 4, 20)]
    assert "zeroshot_top1_all" not in evals[-1]
    # only plots that have data: no zero-shot curve, no confusion matrix or samples for a CSV run
    assert os.path.exists(os.path.join(out_dir, "similarity.png")) and os.path.exists(os.path.join(out_dir, "loss.png"))
    for name in ("zero_shot.png", "confusion.png", "samples.png"):
        assert not os.path.exists(os.path.join(out_dir, name)), name

    # miniclip eval --data on the CSV-trained model: the final evaluation's numbers (same rows, same weights)
    code, out, err = run(capsys, "eval", out_dir, "--data", val_csv, "--json")
    assert code == 0, err
    metrics = json.loads(out)
    assert metrics["pairs"] == 20
    for key, value in evals[-1].items():
        if key.startswith("retrieval_") or key == "eval_loss":
            assert metrics[key] == pytest.approx(value, abs=1e-6), key
    code, out, err = run(capsys, "eval", out_dir, "--data", val_csv)
    assert code == 0 and "retrieval image to text: R@1" in out
    code, out, err = run(capsys, "eval", out_dir, "--data", val_csv, "--pairs", "0")
    assert code == 1 and err.count("\n") == 1 and "--pairs: expected an integer >= 1" in err
    # without --data: what to pass, not the shapes prompts
    code, out, err = run(capsys, "eval", out_dir)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "trained on a CSV" in err and "pass --data VAL.csv" in err


def test_without_val_data_the_final_line_says_so(tmp_path, csvs, capsys):
    train_csv, _ = csvs
    out_dir = str(tmp_path / "run")
    code, out, err = run(capsys, "train", "--train-data", train_csv, *TINY, "--out", out_dir)
    assert code == 0, err
    assert "final (step 4): no validation data was given; pass --val-data VAL.csv" in out
    assert "retrieval" not in out.replace("for retrieval R@1/5/10", "")  # no numbers on training rows
    recs = records(out_dir)
    assert [r["kind"] for r in recs if r["kind"] != "train"] == ["final"]
    assert recs[-1] == {"kind": "final", "step": 4}
    assert os.path.exists(os.path.join(out_dir, "model.npz")) and os.path.exists(os.path.join(out_dir, "loss.png"))
    for name in ("zero_shot.png", "similarity.png", "eval_arrays.npz"):
        assert not os.path.exists(os.path.join(out_dir, name)), name


def _bad_csv(folder, train_csv):
    """``train_csv``'s rows with a Latin-1 caption at line 4 and a directory for an image at line 6."""
    with open(train_csv, encoding="utf-8") as f:
        rows = f.read().splitlines()
    rows[3] = rows[3].split(",")[0] + ",a caf\u00e9 shape"
    rows[5] = "images," + rows[5].split(",", 1)[1]
    path = os.path.join(os.path.dirname(train_csv), "bad.csv")
    with open(path, "wb") as f:
        f.write(("\n".join(rows) + "\n").encode("latin-1"))
    return path


def test_bad_rows_are_named_or_skipped_with_one_summary_line(tmp_path, csvs, capsys):
    train_csv, val_csv = csvs
    bad = _bad_csv(tmp_path, train_csv)
    code, out, err = run(capsys, "train", "--train-data", bad, *TINY, "--out", str(tmp_path / "a"))
    assert code == 1 and err.count("\n") == 1
    assert "bad.csv line 4: not UTF-8 (byte 0xe9 at column " in err and "--skip-bad-rows" in err
    code, out, err = run(capsys, "train", "--train-data", bad, *TINY, "--out", str(tmp_path / "b"), "--skip-bad-rows")
    assert code == 0, err
    summary = [line for line in out.splitlines() if "skipped" in line]
    assert len(summary) == 1 and "Warning" not in out + err
    assert "bad.csv: skipped 2 bad row(s) of 40 (--skip-bad-rows): line 4: not UTF-8 (byte 0xe9 at column" in summary[0]
    assert "line 6: image path 'images' is a directory" in summary[0]


@pytest.mark.parametrize("case, expected", [
    ("few rows", "five.csv has 5 usable rows, fewer than --batch-size 8: a training batch takes that many rows"),
    ("val is train", "rows use images of --train-data"),
    ("val without train", "--val-data: expected None, or a CSV path given together with --train-data"),
])
def test_csv_run_errors_are_one_line(tmp_path, csvs, capsys, case, expected):
    train_csv, val_csv = csvs
    five = os.path.join(os.path.dirname(train_csv), "five.csv")
    with open(train_csv, encoding="utf-8") as f, open(five, "w", encoding="utf-8") as g:
        g.writelines(f.readlines()[:6])
    argv = {"few rows": ["--train-data", five],
            "val is train": ["--train-data", train_csv, "--val-data", train_csv],
            "val without train": ["--val-data", val_csv]}[case]
    code, out, err = run(capsys, "train", *argv, *TINY, "--out", str(tmp_path / "run"))
    assert code == 1 and err.count("\n") == 1 and expected in err, err
    assert "drop_last" not in err and "Traceback" not in err
