"""`miniclip gradcheck` prints a table and passes; `miniclip info` prints the build."""

import json

from miniclip.cli import main


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
