"""Robustness reporting: every evaluation scores the held-out styles, `miniclip eval --json` prints them,
and the run folder gets the effective-robustness plot."""

import json
import os

from miniclip.cli import main
from miniclip.data.shapes import HELD_OUT_STYLES
from miniclip.training import TrainConfig, train

TINY = dict(batch_size=16, image_resolution=16, vision_patch_size=4, vision_width=16, vision_layers=1, vision_heads=1,
            transformer_width=16, transformer_layers=1, transformer_heads=1, embed_dim=16, context_length=16,
            vocab_size=600, warmup_steps=1, init_temperature=0.2, threads=1, progress=False, eval_images=24,
            eval_heldout_images=12, final_eval_images=24, final_eval_heldout_images=12, steps=4, eval_every=2,
            checkpoint_every=2)
STYLE_KEYS = [f"zeroshot_top1_{which}_{style}" for style in HELD_OUT_STYLES for which in ("all", "heldout")]


def test_short_run_reports_held_out_styles_and_draws_the_robustness_plot(tmp_path, capsys):
    lines = []
    result = train(TrainConfig(out=str(tmp_path / "run"), **TINY), log=lines.append)
    with open(os.path.join(result.run_dir, "metrics.jsonl")) as f:
        evals = [r for r in map(json.loads, f) if r["kind"] in ("eval", "final")]
    assert [r["step"] for r in evals] == [2, 4]
    for r in evals:
        for key in STYLE_KEYS + ["zeroshot_top1_all", "zeroshot_top1_heldout"]:
            assert 0 <= r[key] <= 1, key
    final_line = [line for line in lines if line.startswith("final")][0]
    assert "held-out styles (all / pairs): pixel" in final_line and "matplotlib" in final_line
    with open(os.path.join(result.run_dir, "robustness.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"

    assert main(["eval", result.run_dir, "--images", "24", "--heldout-images", "12", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["world"] == "diverse" and metrics["style_images"] == 12 and metrics["style_heldout_images"] == 6
    assert all(0 <= metrics[key] <= 1 for key in STYLE_KEYS)
    assert main(["eval", result.run_dir, "--images", "24", "--heldout-images", "12"]) == 0
    out = capsys.readouterr().out
    assert "held-out style pixel" in out and "held-out style matplotlib" in out


def test_eval_help_documents_the_json_keys(capsys):
    try:
        main(["eval", "--help"])
    except SystemExit:
        pass
    text = capsys.readouterr().out
    for key in ("zeroshot_top1_all", "zeroshot_top1_heldout", "zeroshot_top1_all_<style>", "style_images", "world"):
        assert key in text, key


def test_a_classic_run_folder_from_before_the_diverse_world_reads_as_classic():
    assert TrainConfig.from_dict({"steps": 10}).world == "classic"
    assert TrainConfig.from_dict({"steps": 10, "world": "diverse"}).world == "diverse"
