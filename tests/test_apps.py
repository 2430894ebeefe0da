"""miniclip index / search / tag on an exported shapes folder, with a tiny model that knows colors."""

import csv
import json
import os
import shutil

import numpy as np
import pytest
from apps_fixtures import shapes_folder
from PIL import Image

from miniclip.apps.embed import load_model
from miniclip.apps.index import load_index
from miniclip.apps.search import top_k
from miniclip.training.checkpoint import load_checkpoint, save_checkpoint
from miniclip.cli import main


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return shapes_folder(tmp_path_factory.mktemp("shapes"))


def _index(images, model, out, capsys):
    assert main(["index", images, "--model", model, "--out", out, "--no-progress"]) == 0
    return capsys.readouterr().out


def test_text_search_finds_the_color_first(color_model, folder, tmp_path, capsys):
    images, colors = folder
    out = str(tmp_path / "index.npz")
    printed = _index(images, color_model, out, capsys)
    assert f"{out}: 40 images (40 new, 0 changed, 0 unchanged, 0 removed)" in printed
    index = load_index(out)
    assert index.paths == sorted(colors) and index.embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(index.embeddings, axis=1), 1, rtol=1e-5)
    assert index.model_fingerprint == load_model(color_model).fingerprint
    for color in ("red", "blue", "yellow"):
        if color not in colors.values():
            continue
        assert main(["search", out, f"a {color} circle", "--top", "3", "--json"]) == 0
        results = json.loads(capsys.readouterr().out)
        assert [r["rank"] for r in results] == [1, 2, 3]
        assert results[0]["score"] >= results[1]["score"] >= results[2]["score"]
        assert colors[os.path.basename(results[0]["path"])] == color, (color, results)
    assert main(["search", out, "a red circle", "--top", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].split()[0] == "1" and lines[0].split()[2].startswith(images)


def test_image_search_finds_the_image_itself_first(color_model, folder, tmp_path, capsys):
    images, _ = folder
    out = str(tmp_path / "index.npz")
    _index(images, color_model, out, capsys)
    query = os.path.join(images, "000007.png")
    assert main(["search", out, "--image", query, "--top", "1", "--json"]) == 0
    (best,) = json.loads(capsys.readouterr().out)
    assert best["path"] == query and best["score"] == pytest.approx(1, abs=1e-5)


def test_top_k_is_the_sorted_matrix_product():
    rng = np.random.default_rng(0)
    embeddings = rng.standard_normal((50, 8)).astype(np.float32)
    query = rng.standard_normal(8).astype(np.float32)
    rows, scores = top_k(embeddings, query, 5)
    full = embeddings @ query
    np.testing.assert_array_equal(rows, np.argsort(-full, kind="stable")[:5])
    np.testing.assert_array_equal(scores, full[rows])
    tied = np.ones((4, 2), np.float32)  # equal scores: the lower row first
    assert top_k(tied, np.ones(2, np.float32), 3)[0].tolist() == [0, 1, 2]
    assert top_k(tied, np.ones(2, np.float32), 10)[0].tolist() == [0, 1, 2, 3]


def test_reindexing_embeds_only_new_and_changed_files(color_model, folder, tmp_path, capsys, monkeypatch):
    images, _ = folder
    copy = str(tmp_path / "images")
    shutil.copytree(images, copy)
    out = str(tmp_path / "index.npz")
    _index(copy, color_model, out, capsys)
    before = load_index(out)

    os.makedirs(os.path.join(copy, "more"))
    shutil.copy(os.path.join(copy, "000001.png"), os.path.join(copy, "more", "new.png"))  # new (in a subfolder)
    Image.new("RGB", (32, 32), (40, 85, 240)).save(os.path.join(copy, "000002.png"))      # changed
    os.remove(os.path.join(copy, "000003.png"))                                           # removed
    embedded = []
    from miniclip.apps.embed import LoadedModel
    original = LoadedModel.embed_images
    monkeypatch.setattr(LoadedModel, "embed_images", lambda self, x, *a: embedded.append(len(x)) or original(self, x, *a))
    printed = _index(copy, color_model, out, capsys)
    assert sum(embedded) == 2
    assert f"{out}: 40 images (1 new, 1 changed, 38 unchanged, 1 removed)" in printed
    after = load_index(out)
    assert "more/new.png" in after.paths and "000003.png" not in after.paths
    old = dict(zip(before.paths, before.embeddings))
    for path, row in zip(after.paths, after.embeddings):
        if path not in ("more/new.png", "000002.png"):
            np.testing.assert_array_equal(row, old[path])  # kept, not recomputed
    # the same pixels in a batch of another size: equal up to float32 rounding
    np.testing.assert_allclose(after.embeddings[after.paths.index("more/new.png")], old["000001.png"], atol=1e-6)
    assert not np.array_equal(after.embeddings[after.paths.index("000002.png")], old["000002.png"])

    embedded.clear()  # nothing changed: nothing embedded, the same index
    printed = _index(copy, color_model, out, capsys)
    assert embedded == [] and "(0 new, 0 changed, 40 unchanged, 0 removed)" in printed


def test_unreadable_files_are_skipped_and_listed_in_one_line(color_model, folder, tmp_path, capsys):
    images, _ = folder
    copy = str(tmp_path / "images")
    shutil.copytree(images, copy)
    with open(os.path.join(copy, "broken.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n this is not a PNG")
    open(os.path.join(copy, "empty.jpg"), "wb").close()
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(os.path.join(copy, "clear.png"))
    Image.new("I;16", (20, 30), 40000).save(os.path.join(copy, "deep.png"))  # 16-bit: read, scaled to 8 bits
    with open(os.path.join(copy, "notes.txt"), "w") as f:
        f.write("not an image, and not named like one: not looked at")
    out = str(tmp_path / "index.npz")
    lines = _index(copy, color_model, out, capsys).splitlines()
    assert lines[0].startswith(f"{out}: 41 images (41 new")
    assert lines[1].startswith("skipped 3 unreadable files: broken.png (cannot decode it (")
    assert "clear.png (fully transparent: nothing to see)" in lines[1] and "empty.jpg (" in lines[1]
    assert len(lines) == 2
    assert "deep.png" in load_index(out).paths


def test_another_model_is_refused(color_model, folder, tmp_path, capsys):
    images, _ = folder
    out = str(tmp_path / "index.npz")
    _index(images, color_model, out, capsys)
    ckpt = load_checkpoint(os.path.join(color_model, "model.npz"))
    state = dict(ckpt.model_state)
    state["logit_scale"] = state["logit_scale"] + 1  # another model: one weight differs
    other = save_checkpoint(str(tmp_path / "other.npz"), state, tokenizer_merges=ckpt.tokenizer_merges,
                            extra=ckpt.extra)
    assert main(["search", out, "a red circle", "--model", other]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "was built with model" in err[0] and "re-index" in err[0]
    assert main(["index", images, "--model", other, "--out", out, "--no-progress"]) == 1
    assert "--rebuild" in capsys.readouterr().err
    assert main(["index", images, "--model", other, "--out", out, "--no-progress", "--rebuild"]) == 0
    assert "(40 new" in capsys.readouterr().out
    assert load_index(out).model_fingerprint == load_model(other).fingerprint


def test_tag_writes_top_labels_and_probabilities(color_model, folder, tmp_path, capsys):
    images, colors = folder
    out = str(tmp_path / "tags.csv")
    labels = "red circle,orange circle,yellow circle,green circle,cyan circle,blue circle,purple circle,white circle"
    assert main(["tag", images, "--model", color_model, "--labels", labels, "--top", "2", "--out", out,
                 "--template", "a photo of a {}.", "--template", "a {}.", "--no-progress"]) == 0
    assert capsys.readouterr().out.strip() == f"{out}: 40 images tagged"
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["path", "label_1", "p_1", "label_2", "p_2"]
    assert [r["path"] for r in rows] == [os.path.join(images, name) for name in sorted(colors)]
    for r in rows:
        assert 1 >= float(r["p_1"]) >= float(r["p_2"]) >= 0 and float(r["p_1"]) + float(r["p_2"]) <= 1 + 1e-6
    right = np.mean([r["label_1"].split()[0] == colors[os.path.basename(r["path"])] for r in rows])
    assert right >= 0.8, right  # the model knows colors (tests/apps_fixtures.py)
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


@pytest.mark.parametrize("argv, message", [
    (["search", "{index}"], "give a query text"),
    (["search", "{index}", "a red star", "--image", "x.png"], "not both"),
    (["search", "{index}", "a red star", "--top", "0"], "--top: expected an integer >= 1"),
    (["search", "{index}", "--image", "{missing}"], "No such file"),
    (["search", "{missing}", "a red star"], "does not exist (make one with: miniclip index"),
    (["search", "{not_index}", "a red star"], "is not a miniclip image index"),
    (["search", "{index}", "a red star " * 20], "the query 'a red star a red star"),
    (["index", "{missing}", "--model", "{model}", "--out", "{index}"], "is not a folder of images"),
    (["tag", "{images}", "--model", "{model}", "--labels", "red", "--out", "t.csv"], "at least two"),
    (["tag", "{images}", "--model", "{model}", "--labels", "red,blue", "--template", "a photo", "--out", "t.csv"],
     "expected exactly one {}"),
])
def test_bad_input_is_one_line(color_model, folder, tmp_path, capsys, argv, message):
    images, _ = folder
    index = str(tmp_path / "index.npz")
    _index(images, color_model, index, capsys)
    not_index = str(tmp_path / "plain.npz")
    np.savez(not_index, x=np.zeros(3))
    values = dict(index=index, missing=str(tmp_path / "missing"), not_index=not_index, model=color_model,
                  images=images)
    assert main([a.format(**values) if a.startswith("{") else a for a in argv]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_a_broken_link_is_skipped_and_a_moved_model_is_named(color_model, folder, tmp_path, capsys):
    images, _ = folder
    copy = str(tmp_path / "images")
    shutil.copytree(images, copy)
    os.symlink(str(tmp_path / "nowhere.png"), os.path.join(copy, "link.png"))
    model = str(tmp_path / "model")
    shutil.copytree(color_model, model)
    out = str(tmp_path / "index.npz")
    lines = _index(copy, model, out, capsys).splitlines()
    assert lines[1] == "skipped 1 unreadable file: link.png (No such file or directory)"
    shutil.rmtree(model)
    assert main(["search", out, "a red circle"]) == 1
    err = capsys.readouterr().err
    assert "which is gone; pass --model" in err
    assert main(["search", out, "a red circle", "--model", color_model, "--top", "1"]) == 0  # the same weights


@pytest.mark.parametrize("command", ["index", "search", "tag", "serve"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0 and f"usage: miniclip {command}" in capsys.readouterr().out


def test_an_interrupted_index_leaves_the_old_one(color_model, folder, tmp_path, capsys, monkeypatch):
    images, _ = folder
    out = str(tmp_path / "index.npz")
    _index(images, color_model, out, capsys)
    with open(out, "rb") as f:
        before = f.read()

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr("miniclip.apps.index.embed_files", interrupt)
    assert main(["index", images, "--model", color_model, "--out", out, "--rebuild", "--no-progress"]) == 130
    assert f"interrupted; {out} is as it was" in capsys.readouterr().err
    with open(out, "rb") as f:
        assert f.read() == before
