"""miniclip serve: the Flask app's endpoints through its test client, and the page in a real browser.

The browser test needs selenium (the [demo] extra) and Debian's chromium and chromium-driver; it skips
without them. The model is tests/apps_fixtures.py's: it names colors reliably, shapes not yet, so the
browser test checks that the top label names the color drawn.
"""

import io
import os
import shutil
import threading

import numpy as np
import pytest
from apps_fixtures import shapes_folder
from PIL import Image, ImageDraw

flask = pytest.importorskip("flask")

from miniclip.apps.index import build_index  # noqa: E402
from miniclip.apps.serve import MAX_UPLOAD_BYTES, create_app  # noqa: E402
from miniclip.data.shapes import CLASS_NAMES, COLORS  # noqa: E402


@pytest.fixture(scope="module")
def index(color_model, tmp_path_factory):
    images, _ = shapes_folder(tmp_path_factory.mktemp("serve-shapes"))
    return build_index(images, color_model, str(tmp_path_factory.mktemp("serve-index") / "index.npz"), progress=False)


@pytest.fixture(scope="module")
def client(color_model, index):
    app = create_app(color_model, index=index.file)
    app.testing = False  # errors go through the app's handlers, as for a user
    return app.test_client()


def _png(image):
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _disk(color, size=256):
    image = Image.new("RGB", (size, size), (0, 0, 0))
    ImageDraw.Draw(image).ellipse((size * 0.27, size * 0.27, size * 0.73, size * 0.73), fill=COLORS[color])
    return image


def _classify(client, data, labels=None, name="x.png"):
    form = {"image": (io.BytesIO(data), name)}
    if labels is not None:
        form["labels"] = labels
    return client.post("/api/classify", data=form, content_type="multipart/form-data")


def test_page_and_info(client, index):
    with client.get("/") as page:  # a file response: closed after reading
        assert page.status_code == 200 and b'<canvas id="canvas"' in page.data
    with client.get("/static/app.js") as script:
        assert script.status_code == 200 and b"/api/classify" in script.data
    info = client.get("/api/info").get_json()
    assert info["labels"] == list(CLASS_NAMES) and info["index"] == len(index) == 40
    assert info["fingerprint"] == index.model_fingerprint and info["resolution"] == 16


def test_classify_names_the_color_of_a_drawn_disk(client):
    for color in ("red", "yellow", "green"):  # blue and purple are the pair it confuses most
        answer = _classify(client, _png(_disk(color)))
        assert answer.status_code == 200
        body = answer.get_json()
        assert sorted(body["labels"]) == sorted(CLASS_NAMES) and len(body["probs"]) == 48
        assert sum(body["probs"]) == pytest.approx(1, abs=1e-5) and body["probs"] == sorted(body["probs"])[::-1]
        assert body["labels"][0].split()[0] == color, body["labels"][:3]
    body = _classify(client, _png(_disk("green")), labels="green, red,blue").get_json()
    assert body["labels"][0] == "green" and len(body["probs"]) == 3


def test_any_image_mode_is_read(client):
    rgba = _disk("red").convert("RGBA")  # a transparent upload: composited on black, like training images
    rgba.putalpha(Image.new("L", rgba.size, 255))
    assert _classify(client, _png(rgba)).status_code == 200
    assert _classify(client, _png(Image.new("P", (20, 40), 3))).status_code == 200
    jpeg = io.BytesIO()
    _disk("blue").save(jpeg, "JPEG")
    assert _classify(client, jpeg.getvalue(), name="photo.jpg").status_code == 200


@pytest.mark.parametrize("data, labels, message", [
    (b"not an image at all", None, "is not an image Pillow can read"),
    (b"", None, "empty (0 bytes)"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", None, "is not an image Pillow can read"),
    ("transparent", None, "fully transparent"),
    ("huge", None, "image too large: 5000 x 5000 pixels"),
    ("ok", "just one", "at least two comma-separated names"),
    ("ok", "a, a, b", "more than once"),
    ("ok", "red, " + "very " * 8 + "long", "labels: the prompt"),
    ("ok", ",".join(f"label {i}" for i in range(201)), "at most 200 names"),
])
def test_bad_uploads_get_a_clear_message(client, data, labels, message):
    if data == "transparent":
        data = _png(Image.new("RGBA", (8, 8), (255, 0, 0, 0)))
    elif data == "huge":
        data = _png(Image.new("1", (5000, 5000), 0))  # a few KB that decode to 25 M pixels
    elif data == "ok":
        data = _png(_disk("red", 32))
    answer = _classify(client, data, labels=labels)
    assert answer.status_code == 400 and answer.is_json
    assert message in answer.get_json()["error"], answer.get_json()


def test_requests_without_an_image_or_too_large(client):
    answer = client.post("/api/classify", data={"labels": "a, b"}, content_type="multipart/form-data")
    assert answer.status_code == 400 and "multipart field 'image'" in answer.get_json()["error"]
    # (a raw body: the test client would spool a large multipart form to a file of its own)
    big = client.post("/api/classify", data=b"\0" * (MAX_UPLOAD_BYTES + 1), content_type="multipart/form-data; boundary=x")
    assert big.status_code == 413 and "upload too large" in big.get_json()["error"]
    assert client.get("/api/classify").status_code == 405


def test_search_and_thumbnails(client, index):
    answer = client.post("/api/search", json={"query": "a red circle", "top": 5})
    assert answer.status_code == 200
    results = answer.get_json()["results"]
    assert len(results) == 5 and [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    assert results[0]["path"] == index.paths[results[0]["id"]]
    thumb = client.get(f"/thumb/{results[0]['id']}")
    assert thumb.status_code == 200 and thumb.mimetype == "image/png"
    assert Image.open(io.BytesIO(thumb.data)).size == (32, 32)  # the 32-pixel image, not enlarged
    for bad in ({"query": ""}, {"query": "x" * 301}, {"query": "red", "top": 0}, {"query": "red", "top": "5"},
                {"top": 3}, ["a red circle"], {"query": "red " * 40}):
        answer = client.post("/api/search", json=bad)
        assert answer.status_code == 400 and answer.get_json()["error"], bad
    answer = client.post("/api/search", data="{not json", content_type="application/json")
    assert answer.status_code == 400


@pytest.mark.parametrize("path", ["/thumb/40", "/thumb/-1", "/thumb/../../etc/passwd", "/thumb/%2e%2e%2fcli.py",
                                  "/static/../cli.py", "/static/%2e%2e/cli.py", "/static/../../pyproject.toml",
                                  "/etc/passwd", "/api/nothing", "/index.npz"])
def test_only_its_own_files_are_served(client, path):
    answer = client.get(path)
    assert answer.status_code == 404 and answer.is_json, (path, answer.status_code)
    assert b"Traceback" not in answer.data


def test_a_failing_request_shows_no_traceback(color_model, index, monkeypatch):
    app = create_app(color_model, index=index)
    monkeypatch.setattr("miniclip.apps.serve.zero_shot_probabilities", lambda *a: 1 / 0)
    answer = app.test_client().post("/api/classify", data={"image": (io.BytesIO(_png(_disk("red", 32))), "x.png")})
    assert answer.status_code == 500 and answer.get_json() == {"error": "internal error (see the server's log)"}


def test_thumbnail_of_a_vanished_file_and_no_index(color_model, index, tmp_path):
    images = str(tmp_path / "images")
    shutil.copytree(index.root, images)
    own = build_index(images, color_model, str(tmp_path / "own.npz"), progress=False)
    os.remove(own.full_path(0))
    client = create_app(color_model, index=own.file).test_client()
    answer = client.get("/thumb/0")
    assert answer.status_code == 404 and "cannot be read any more" in answer.get_json()["error"]
    client = create_app(color_model).test_client()
    assert client.get("/api/info").get_json()["index"] is None
    answer = client.post("/api/search", json={"query": "a red circle"})
    assert answer.status_code == 400 and "--index" in answer.get_json()["error"]
    assert client.get("/thumb/0").status_code == 404


def test_an_index_of_another_model_is_refused(color_model, index, tmp_path):
    from miniclip.training.checkpoint import load_checkpoint, save_checkpoint
    ckpt = load_checkpoint(os.path.join(color_model, "model.npz"))
    state = {**ckpt.model_state, "logit_scale": ckpt.model_state["logit_scale"] + 1}
    other = save_checkpoint(str(tmp_path / "other.npz"), state, tokenizer_merges=ckpt.tokenizer_merges, extra=ckpt.extra)
    with pytest.raises(ValueError, match="was built with model"):
        create_app(other, index=index.file)


def test_serve_command_errors_are_one_line(color_model, index, tmp_path, capsys):
    import socket

    from miniclip.cli import main
    with socket.socket() as busy:  # a port someone else holds
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", color_model, "--port", str(port)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--port {port}: cannot listen on 127.0.0.1:{port}" in err[0], err
    assert main(["serve", color_model, "--port", "70000"]) == 1
    assert "--port: expected 0..65535" in capsys.readouterr().err
    assert main(["serve", color_model, "--template", "a photo"]) == 1
    assert "expected exactly one {}" in capsys.readouterr().err
    assert main(["serve", color_model, "--index", str(tmp_path / "none.npz")]) == 1
    assert "does not exist" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ in a real browser
def missing_browser():
    """Why the browser test cannot run here (selenium, chromium or chromedriver absent), or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[demo]')"
    if not ((shutil.which("chromium") or shutil.which("chromium-browser")) and shutil.which("chromedriver")):
        return "chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
    return None


def _browser():
    """A headless Chromium driven by Selenium."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1000,760", "--force-device-scale-factor=1"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def draw_and_ask(model, index, color="red", query="a blue circle", screenshot=None):
    """Serve ``model`` on a free loopback port, open the page in headless Chromium, draw a filled disk of
    ``color`` with the mouse, search ``query``; returns (the top label, the canvas's center pixel)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    from werkzeug.serving import make_server

    browser = _browser()
    server = make_server("127.0.0.1", 0, create_app(model, index=index), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        browser.get(f"http://127.0.0.1:{server.server_port}/")
        wait = WebDriverWait(browser, 60)
        wait.until(lambda b: b.execute_script("return document.body.dataset.ready") == "1")
        assert f"index of {len(index)} images" in browser.find_element(By.ID, "model").text

        # the color from the swatches, the widest brush, and a small circle traced with the mouse: the
        # brush is wider than the circle's radius, so the stroke fills a disk
        browser.find_element(By.CSS_SELECTOR, f"#swatches button[title={color}]").click()
        browser.execute_script("document.getElementById('brush').value = 64")
        canvas = browser.find_element(By.ID, "canvas")
        points = [(round(30 * np.cos(a)), round(30 * np.sin(a))) for a in np.linspace(0, 2 * np.pi, 25)]
        actions = ActionChains(browser).move_to_element_with_offset(canvas, *points[0]).click_and_hold()
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            actions.move_by_offset(x1 - x0, y1 - y0)
        actions.release().perform()  # pointerup asks the model
        wait.until(lambda b: b.execute_script("return document.body.dataset.answered") == "1")
        center = browser.execute_script(
            "const d = document.getElementById('canvas').getContext('2d').getImageData(128, 128, 1, 1).data;"
            "return [d[0], d[1], d[2]];")
        top = browser.find_element(By.CSS_SELECTOR, "#bars li:first-child .label").text

        browser.find_element(By.ID, "query").send_keys(query)
        browser.find_element(By.CSS_SELECTOR, "#search-form button").click()
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#results img")) == min(12, len(index)))
        wait.until(lambda b: b.execute_script(
            "return [...document.querySelectorAll('#results img')].every(i => i.complete && i.naturalWidth > 0)"))
        if screenshot:
            browser.save_screenshot(screenshot)
        return top, center
    finally:
        browser.quit()
        server.shutdown()
        thread.join()


@pytest.mark.skipif(missing_browser() is not None, reason=str(missing_browser()))
def test_draw_a_red_disk_in_the_browser_and_the_model_names_red(color_model, index, tmp_path):
    screenshot = str(tmp_path / "serve.png")
    top, center = draw_and_ask(color_model, index, color="red", screenshot=screenshot)
    assert center == list(COLORS["red"]), center  # the mouse filled the disk's center
    assert top.split()[0] == "red", top  # the fixture model names colors, not yet shapes reliably
    with Image.open(screenshot) as shot:
        assert shot.format == "PNG" and shot.width > 600


if __name__ == "__main__":  # the README's screenshot: python tests/test_serve.py MODEL INDEX.npz docs/images/serve.png
    import sys

    from miniclip.apps.index import load_index

    if missing_browser():
        raise SystemExit(missing_browser())
    model, index_path, out = sys.argv[1:4]
    print(draw_and_ask(model, load_index(index_path), screenshot=out))
    with Image.open(out) as shot:  # a 256-color palette keeps the PNG small
        shot.convert("RGB").quantize(256).save(out, optimize=True)
