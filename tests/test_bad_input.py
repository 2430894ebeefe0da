"""Bad input, as a user types it: every case runs `python -m miniclip.cli ...` in a subprocess and must
end with exit code 1, one line on stderr that names the input, no traceback, and nothing written or
lost (the files of the case and of the shared trained run are the same before and after)."""

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from miniclip.training.checkpoint import atomic_write_npz

TINY = dict(batch_size=16, image_resolution=16, vision_patch_size=8, vision_width=32, vision_layers=1, vision_heads=1,
            transformer_width=32, transformer_layers=1, transformer_heads=1, embed_dim=16, context_length=16,
            vocab_size=600, steps=2, warmup_steps=1, eval_every=2, checkpoint_every=2, init_temperature=0.2,
            threads=1, progress=False, plots=False, eval_images=12, eval_heldout_images=12, final_eval_images=12,
            final_eval_heldout_images=12)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One tiny finished run (2 steps) that every case may read and none may change."""
    from miniclip.training import TrainConfig, train
    out = tmp_path_factory.mktemp("shared") / "run"
    train(TrainConfig(out=str(out), **TINY), log=lambda *a: None)
    return str(out)


def snapshot(*roots):
    """{path: (size, mtime)} of every file under ``roots``: what "nothing written or lost" compares."""
    files = {}
    for root in roots:
        for folder, dirs, names in os.walk(root):
            for name in dirs + names:
                path = os.path.join(folder, name)
                st = os.stat(path)
                files[path] = (st.st_size if name in names else None, st.st_mtime_ns)
    return files


def model_arrays(run):
    with np.load(os.path.join(run, "model.npz")) as f:
        return {k: f[k] for k in f.files}


# ---------------------------------------------------------------- the files of the cases
def truncated(tmp, run):
    data = (Path(run) / "model.npz").read_bytes()
    (tmp / "truncated.npz").write_bytes(data[:len(data) // 3])


def random_bytes(tmp, run):
    (tmp / "random.npz").write_bytes(np.random.default_rng(0).bytes(4096))


def pickled(tmp, run):
    with open(tmp / "pickled.npz", "wb") as f:
        np.savez(f, meta=np.array([{"evil": 1}], dtype=object))


def pickle_file(tmp, run):
    (tmp / "plain.npz").write_bytes(pickle.dumps({"weights": [1, 2, 3]}))


def converted(tmp, run):  # an original CLIP state dict in `miniclip convert`'s layout, missing most keys
    np.savez(tmp / "ViT-B-32.npz", **{"visual.proj": np.zeros((4, 4)), "logit_scale": np.array(4.6)})


def nan_weights(tmp, run):
    arrays = model_arrays(run)
    arrays["model/visual.proj"] = arrays["model/visual.proj"].copy()
    arrays["model/visual.proj"][0, 0] = np.nan
    atomic_write_npz(tmp / "nan.npz", arrays)


def image(tmp, run):
    from PIL import Image
    Image.fromarray(np.full((16, 16, 3), 200, dtype=np.uint8)).save(tmp / "img.png")


def foreign_folder(tmp, run):
    (tmp / "mine").mkdir()
    (tmp / "mine" / "thesis.tex").write_text("do not overwrite")


def foreign_checkpoints(tmp, run):  # a run's checkpoints and model, beside another run's config.json
    shutil.copytree(run, tmp / "other")
    config = json.loads((tmp / "other" / "config.json").read_text())
    (tmp / "other" / "config.json").write_text(json.dumps({**config, "steps": 3000, "warmup_steps": 300}))
    os.remove(tmp / "other" / "metrics.jsonl")


def corrupt_newest_checkpoint(tmp, run):
    shutil.copytree(run, tmp / "broken")
    newest = sorted((tmp / "broken" / "checkpoints").iterdir())[-1]
    newest.write_bytes(newest.read_bytes()[:1000])


def used_folder(tmp, run):
    (tmp / "export").mkdir()
    (tmp / "export" / "captions.csv").write_text("filepath,title\n")


def a_file(tmp, run):
    (tmp / "notes.txt").write_text("a file")


def nothing(tmp, run):
    pass


RUN = "{run}"
CASES = [  # (id, make the files, argv, what stderr must name)
    ("eval-missing", nothing, ["eval", "missing.npz"], "missing.npz"),
    ("eval-zero-bytes", lambda t, r: (t / "empty.npz").write_bytes(b""), ["eval", "empty.npz"], "empty.npz is empty"),
    ("eval-truncated", truncated, ["eval", "truncated.npz"], "truncated.npz is truncated"),
    ("eval-random-bytes", random_bytes, ["eval", "random.npz"], "random.npz is not an .npz"),
    ("eval-pickled-npz", pickled, ["eval", "pickled.npz"], "pickled.npz holds pickled"),
    ("eval-pickle-file", pickle_file, ["eval", "plain.npz"], "plain.npz is not an .npz"),
    ("eval-converted-openai", converted, ["eval", "ViT-B-32.npz"], "lacks visual.conv1.weight"),
    ("eval-nan-weights", nan_weights, ["eval", "nan.npz"], "'visual.proj' holds 1 NaN"),
    ("eval-folder-not-a-run", lambda t, r: (t / "empty").mkdir(), ["eval", "empty"], "empty is a folder without"),
    ("eval-images-0", nothing, ["eval", RUN, "--images", "0"], "--images: expected an integer >= 1, got 0"),
    ("eval-heldout-0", nothing, ["eval", RUN, "--heldout-images", "0"], "--heldout-images"),
    ("zeroshot-random-bytes", lambda t, r: (random_bytes(t, r), image(t, r)),
     ["zeroshot", "random.npz", "img.png", "--labels", "a,b"], "random.npz"),
    ("zeroshot-template-index", image, ["zeroshot", RUN, "img.png", "--labels", "a,b", "--template", "a {1} photo"],
     "--template 'a {1} photo': expected exactly one {}"),
    ("zeroshot-template-name", image, ["zeroshot", RUN, "img.png", "--labels", "a,b", "--template", "a {x} photo"],
     "'a {x} photo'"),
    ("zeroshot-template-none", image, ["zeroshot", RUN, "img.png", "--labels", "a,b", "--template", "a photo"],
     "'a photo': expected exactly one {} where the label goes, found none"),
    ("zeroshot-template-brace", image, ["zeroshot", RUN, "img.png", "--labels", "a,b", "--template", "a {"], "'a {'"),
    ("zeroshot-long-label", image, ["zeroshot", RUN, "img.png", "--labels", "red circle," + "very " * 20 + "big star"],
     "--truncate"),
    ("zeroshot-one-label", image, ["zeroshot", RUN, "img.png", "--labels", "red circle"], "--labels"),
    ("zeroshot-top-0", image, ["zeroshot", RUN, "img.png", "--labels", "a,b", "--top", "0"], "--top"),
    ("zeroshot-missing-image", nothing, ["zeroshot", RUN, "nope.png", "--labels", "a,b"], "nope.png"),
    ("train-foreign-folder", foreign_folder, ["train", "--out", "mine", "--no-progress"], "mine is not empty"),
    ("train-out-is-a-file", a_file, ["train", "--out", "notes.txt", "--no-progress"], "notes.txt is a file"),
    ("train-finished-run", nothing, ["train", "--out", RUN, "--no-progress"], "--resume"),
    ("train-bad-patch-size", nothing, ["train", "--out", "new", "--image-resolution", "32", "--patch-size", "5"],
     "--patch-size: expected a divisor of --image-resolution=32"),
    ("resume-missing", nothing, ["train", "--resume", "nowhere"], "nowhere"),
    ("resume-not-a-run", foreign_folder, ["train", "--resume", "mine"], "mine"),
    ("resume-foreign-checkpoint", foreign_checkpoints, ["train", "--resume", "other"], "belongs to another run"),
    ("resume-corrupt-checkpoint", corrupt_newest_checkpoint, ["train", "--resume", "broken"], "step_00000002.npz"),
    ("plot-not-a-run", lambda t, r: (t / "empty").mkdir(), ["plot", "empty"], "metrics.jsonl does not exist"),
    ("data-grid-no-suffix", nothing, ["data", "grid", "grid", "--n", "2"], "grid: expected an image file name"),
    ("data-grid-n-0", nothing, ["data", "grid", "g.png", "--n", "0"], "--n: expected an integer >= 1, got 0"),
    ("data-export-n-0", nothing, ["data", "export", "ex", "--n", "0"], "--n"),
    ("data-export-used-folder", used_folder, ["data", "export", "export", "--n", "2"], "export is not empty"),
]


@pytest.mark.parametrize("make, argv, needle", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_1_and_writes_nothing(make, argv, needle, run, tmp_path):
    make(tmp_path, run)
    argv = [a.replace(RUN, run) for a in argv]
    before = snapshot(tmp_path, run)
    proc = subprocess.run([sys.executable, "-m", "miniclip.cli", *argv], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "MINICLIP_TRACEBACK": ""})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1, proc.stderr
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and "allow_pickle" not in proc.stderr and "TrainConfig" not in proc.stderr
    assert snapshot(tmp_path, run) == before


def test_the_traceback_is_there_when_asked_for(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "miniclip.cli", "eval", "missing.npz"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, env={**os.environ, "MINICLIP_TRACEBACK": "1"})
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "CheckpointError" in proc.stderr


def test_eval_sizes_below_the_sample_grid_work_and_eval_matches_the_final_line(run, capsys):
    from miniclip.cli import main
    assert main(["eval", run, "--images", "1", "--heldout-images", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 1
    # by default, eval draws the final evaluation's images: its numbers are the final line's
    assert main(["eval", run, "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    with open(os.path.join(run, "metrics.jsonl")) as f:
        final = [r for r in map(json.loads, f) if r["kind"] == "final"][-1]
    for key in ("zeroshot_top1_all", "zeroshot_top1_heldout", "eval_loss", "retrieval_image_to_text_R@1"):
        assert metrics[key] == pytest.approx(final[key], rel=1e-6), key
    assert main(["eval", run]) == 0
    out = capsys.readouterr().out
    assert "the numbers match its final line" in out and "retrieval gallery: 12 image-caption pairs; eval loss" in out


def test_a_grid_given_a_folder_goes_inside_it(tmp_path, capsys):
    from miniclip.cli import main
    assert main(["data", "grid", str(tmp_path), "--n", "2", "--resolution", "16"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "shapes_grid.png")
    assert (tmp_path / "shapes_grid.png").stat().st_size > 0


def test_a_long_label_is_cut_with_truncate(run, tmp_path, capsys):
    from miniclip.cli import main
    image(tmp_path, run)
    assert main(["zeroshot", run, str(tmp_path / "img.png"), "--labels", "red circle," + "very " * 20 + "big star",
                 "--truncate"]) == 0
    assert "%" in capsys.readouterr().out


def test_info_help_says_what_it_prints(capsys):
    from miniclip.cli import main
    with pytest.raises(SystemExit):
        main(["info", "--help"])
    assert "compiled extension" in capsys.readouterr().out
