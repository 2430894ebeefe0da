"""``miniclip serve``: a local page where you draw a shape (or upload an image) and the model names it.

    pip install -e ".[demo]"
    miniclip serve runs/shapes-1 --index shapes.npz      # then open http://127.0.0.1:8000

Built on Flask (``create_app``) and served by Werkzeug's threaded server, on the loopback address by
default. The page (``static/``: index.html, app.js, style.css) talks to four JSON endpoints:

    GET  /api/info              the model, the default labels, the index size
    POST /api/classify          multipart: image (a PNG the canvas drew, or an uploaded file), labels
                                -> {"labels": [...], "probs": [...]}, best first (zero-shot, as ``tag``)
    POST /api/search            JSON {"query": "a red star", "top": 12} -> {"results": [{id, path, score}]}
    GET  /thumb/<id>            a small PNG of the index's image number <id>

Every request is validated: bodies over ``MAX_UPLOAD_BYTES`` are refused (413), an image that cannot
be decoded or has too many pixels gets a one-line reason (400), unknown paths 404, and any other error
answers "internal error" in JSON -- never a traceback. Thumbnails are served by number, only for
files in the index: no request names a path, so none can reach another file.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import socket
import threading

import numpy as np
from PIL import Image

from ..data.shapes import CLASS_NAMES, ZERO_SHOT_TEMPLATES
from ..data.transforms import to_rgb_image
from ..evaluation.zeroshot import check_template, zero_shot_probabilities
from .embed import load_model, read_image
from .index import load_index
from .search import search as search_index
from ..evaluation.zeroshot import parse_labels
from .tag import classifier_for

MAX_UPLOAD_BYTES = 4 * 1024 * 1024    # a drawing is a few KB; a photo a few MB
MAX_IMAGE_PIXELS = 4096 * 4096        # decoded size: a small PNG can unpack into gigabytes
MAX_LABELS = 200
MAX_LABEL_CHARS = 100
MAX_QUERY_CHARS = 300
MAX_TOP = 100
THUMBNAIL = 96                        # thumbnail side in pixels


class RequestError(ValueError):
    """A request the page or a user got wrong: answered 400 with this message."""


def _import_flask():
    try:
        import flask
    except ImportError:
        raise ImportError('miniclip serve needs Flask, which is not installed: pip install -e ".[demo]"') from None
    return flask


def create_app(model, index=None, templates=None):
    """The Flask app serving ``model`` (a path or a ``LoadedModel``) and, optionally, an index (a path or
    an ``ImageIndex``) made with the same model."""
    flask = _import_flask()
    from werkzeug.exceptions import HTTPException

    loaded = model if hasattr(model, "fingerprint") else load_model(model)
    if index is not None and not hasattr(index, "embeddings"):
        index = load_index(index)
    if index is not None:
        index.check_model(loaded)
    templates = list(templates or ZERO_SHOT_TEMPLATES)
    for template in templates:  # refuse a bad template at start, not at the first request
        check_template(template, flag="--template")
    lock = threading.Lock()  # one forward pass at a time: the compute threads are shared anyway

    @functools.lru_cache(maxsize=16)
    def classifier(labels):
        return classifier_for(loaded, list(labels), templates, flag="labels")

    app = flask.Flask(__name__, static_folder="static", static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = MAX_UPLOAD_BYTES
    app.config["MINICLIP_MODEL"] = loaded.path
    app.json.sort_keys = False

    def fail(status, message):
        return flask.jsonify(error=message), status

    @app.errorhandler(RequestError)
    def bad_request(exc):
        return fail(400, str(exc))

    @app.errorhandler(HTTPException)
    def http_error(exc):
        if exc.code == 413:
            return fail(413, f"upload too large: at most {MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
        return fail(exc.code, f"{exc.code} {exc.name}: {flask.request.path}" if exc.code == 404 else exc.description)

    @app.errorhandler(Exception)
    def internal_error(exc):
        app.logger.exception("request %s failed", flask.request.path)  # the traceback stays in the server's log
        return fail(500, "internal error (see the server's log)")

    @app.before_request
    def refuse_large_bodies():  # before any parsing: no part of a too-large body is ever spooled to disk
        if (flask.request.content_length or 0) > MAX_UPLOAD_BYTES:
            flask.abort(413)

    @app.get("/")
    def page():
        return app.send_static_file("index.html")

    @app.get("/api/info")
    def info():
        shown = os.path.relpath(loaded.path)  # runs/shapes-1/model.npz rather than the absolute path
        return flask.jsonify(model=loaded.path if shown.startswith("..") else shown, fingerprint=loaded.fingerprint,
                             resolution=loaded.resolution, labels=list(CLASS_NAMES), templates=templates,
                             index=None if index is None else len(index), max_upload_bytes=MAX_UPLOAD_BYTES)

    @app.post("/api/classify")
    def classify():
        upload = flask.request.files.get("image")
        if upload is None:
            raise RequestError("no image in the request: send it as the multipart field 'image'")
        labels = _labels(flask.request.form.get("labels"))
        pixels = _decode(upload, loaded.preprocess)                      # (3, R, R)
        with lock:
            try:
                W = classifier(tuple(labels))                                   # (E, L)
            except ValueError as exc:  # a prompt longer than the model's context
                raise RequestError(str(exc)) from None
            p = zero_shot_probabilities(loaded.model, pixels[None], W)[0]       # (L,)
        order = np.argsort(-p, kind="stable")
        return flask.jsonify(labels=[labels[i] for i in order], probs=[float(p[i]) for i in order])

    @app.post("/api/search")
    def search():
        if index is None:
            raise RequestError("no index loaded: start the server with --index INDEX.npz (made by miniclip index)")
        body = flask.request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            raise RequestError('expected a JSON body {"query": "a red star", "top": 12}')
        query, top = body["query"].strip(), body.get("top", 12)
        if not query or len(query) > MAX_QUERY_CHARS:
            raise RequestError(f"the query must have 1 to {MAX_QUERY_CHARS} characters, got {len(query)}")
        if not isinstance(top, int) or isinstance(top, bool) or not 1 <= top <= MAX_TOP:
            raise RequestError(f"top must be an integer in 1..{MAX_TOP}, got {top!r}")
        try:
            with lock:
                results = search_index(index, loaded, text=query, k=top)
        except ValueError as exc:  # a query longer than the model's context
            raise RequestError(str(exc)) from None
        return flask.jsonify(results=[{"id": r["id"], "path": index.paths[r["id"]], "score": r["score"]}
                                      for r in results])

    @app.get("/thumb/<int:number>")
    def thumbnail(number):
        if index is None or not 0 <= number < len(index):
            flask.abort(404)
        try:
            with Image.open(index.full_path(number)) as image:
                image.load()  # decode now: thumbnail() may otherwise re-read a file closed under it
                image = to_rgb_image(image)
                image.thumbnail((THUMBNAIL, THUMBNAIL), Image.BICUBIC)  # only shrinks; the page enlarges small ones
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            return fail(404, f"image {index.paths[number]} cannot be read any more ({exc})")
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        return flask.Response(buffer.getvalue(), mimetype="image/png")

    return app


def _labels(text):
    """The page's labels field (comma-separated; empty: the 48 shapes names), validated."""
    if text is None or not text.strip():
        return list(CLASS_NAMES)
    try:
        labels = parse_labels(text, flag="labels")
    except ValueError as exc:
        raise RequestError(str(exc)) from None
    if len(labels) > MAX_LABELS or max(map(len, labels)) > MAX_LABEL_CHARS:
        raise RequestError(f"labels: at most {MAX_LABELS} names of at most {MAX_LABEL_CHARS} characters each")
    return labels


def _decode(upload, preprocess):
    """An uploaded file -> (3, R, R); RequestError with the reason when it is not a readable image."""
    data = upload.read()
    if not data:
        raise RequestError("the uploaded image is empty (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except (OSError, ValueError, SyntaxError) as exc:
        raise RequestError(f"the upload {upload.filename or 'image'!r} is not an image Pillow can read ({exc})") from None
    if width * height > MAX_IMAGE_PIXELS:
        raise RequestError(f"image too large: {width} x {height} pixels, at most {MAX_IMAGE_PIXELS} pixels")
    try:
        return read_image(io.BytesIO(data), preprocess)
    except ValueError as exc:
        raise RequestError(f"the upload {upload.filename or 'image'!r}: {exc}") from None


def serve(model, index=None, host="127.0.0.1", port=8000, templates=None, log=print):
    """Run the page until Ctrl-C. Returns 0."""
    from werkzeug.serving import make_server

    app = create_app(model, index=index, templates=templates)
    try:  # Werkzeug reports a busy port by printing and exiting: try the address first, to say it in one line
        with socket.create_server((host, port)):
            pass
        server = make_server(host, port, app, threaded=True)
    except OSError as exc:
        raise OSError(f"--port {port}: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    log(f"miniclip serve: {app.config['MINICLIP_MODEL']} on http://{host}:{server.server_port}  (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
