"""Training a toy CLIP: the loop behind ``miniclip train``.

The loop, for k = 0, 1, ...: the next batch (images preprocessed, captions tokenized), the learning
rate of step k (warmup, then cosine), and ``train_step`` (``step.py``: forward, loss, backward,
AdamW, clamp the temperature). Around it: periodic zero-shot evaluation on freshly drawn images (all 48 color-shape names and,
separately, the 8 held-out pairs that training never shows), retrieval recall@k (a CSV run: on its
``--val-data`` CSV, never on training rows), ``metrics.jsonl``,
atomic checkpoints every N steps and on Ctrl-C, exact resumption, a NaN/Inf guard, plots.

Reproducibility: batch k is a pure function of (seed, k) -- the shapes world draws sample i from
``default_rng([seed, split, i])`` and a CSV epoch's order from ``default_rng([seed, epoch])`` -- so a
resumed run sees exactly the batches an uninterrupted one would. With the same seed and thread count,
``metrics.jsonl`` is identical byte for byte (wall-clock numbers go to ``timing.json`` instead).

Run folder (``runs/<name>/``): config.json, metrics.jsonl, timing.json, model.npz (weights, model
arguments, tokenizer: what ``miniclip.load`` reads), checkpoints/step_*.npz, eval_arrays.npz, *.png, and
.miniclip-run, the marker and lock that keep one writer per folder (``run_folder.py``). SIGTERM stops
a run like Ctrl-C.

Shape legend: B batch, R image resolution, T context length, E embedding dim, L classes.
"""

import json
import math
import os
import pickle
import queue
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np

from .. import ops
from ..api import ContextTokenizer
from ..autograd import Tensor, no_grad
from ..evaluation.plots import ARRAYS_FILE, METRICS_FILE, plot_run
from ..evaluation.zeroshot import (classifier_accuracy, image_text_similarity, retrieval_metrics,
                                   zero_shot_accuracy, zero_shot_classifier)
from ..loss import SIGLIP_INIT_LOGIT_BIAS, SIGLIP_INIT_LOGIT_SCALE, clip_loss, siglip_loss
from ..model import CLIP
from ..model.supervised import SupervisedClassifier
from ..tokenizer import BPETokenizer
from ..tools.memory import reuse_freed_memory
from . import run_folder
from .checkpoint import CheckpointManager, atomic_write_npz, load_checkpoint, save_checkpoint
from .distributed import World, broadcast_parameters, shard
from .optim import AdamW, WarmupCosine
from .step import NonFiniteError, supervised_step, train_step

MODEL_FILE = "model.npz"
CONFIG_FILE = "config.json"
TIMING_FILE = "timing.json"
CHECKPOINT_DIR = "checkpoints"


# ----------------------------------------------------------------------------- config
@dataclass
class TrainConfig:
    """Everything a run depends on; saved as ``config.json`` in the run folder.

    The defaults are the recipe of ``miniclip train`` (see README: "The default run"). Validation
    happens in ``__post_init__``; an error names the field, what was expected and what was given.
    """
    # where
    out: str = None                   # run folder; default runs/shapes-<n>, the first that is free
    # optimization
    steps: int = 5000
    batch_size: int = 128
    lr: float = 2e-3
    warmup_steps: int = None          # linear warmup; None: a tenth of the steps
    weight_decay: float = 0.2
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-6
    grad_clip: float = None           # max global gradient norm; None: no clipping
    loss: str = "clip"                # "clip" (symmetric InfoNCE) or "siglip" (pairwise sigmoid)
    objective: str = "clip"           # "clip", or "supervised": the baseline of chapter 12, the same image tower
    # with a linear head trained on the 48 class labels (cross-entropy) instead of on the captions
    init_temperature: float = None    # tau at the start (logit_scale = ln 1/tau); None: 0.07 (CLIP), 0.1 (SigLIP)
    # model (the CLIP constructor's arguments; vocab_size is the tokenizer's target size)
    image_resolution: int = 32
    vision_patch_size: int = 8
    vision_width: int = 64
    vision_layers: int = 3
    vision_heads: int = 2
    embed_dim: int = 64
    transformer_width: int = 64
    transformer_layers: int = 2
    transformer_heads: int = 1
    context_length: int = 12
    vocab_size: int = 1024
    dtype: str = "float32"
    # data: the shapes world unless train_data names a CSV (open_clip's conventions)
    world: str = "diverse"            # the shapes world's styles: "diverse" (filled, outline, shaded, sketch,
    # on many backgrounds, blurred, compressed, noisy) or "classic" (one style: filled, on dark noise)
    train_data: str = None
    csv_img_key: str = "filepath"
    csv_caption_key: str = "title"
    csv_separator: str = ","
    skip_bad_rows: bool = False
    val_data: str = None              # a second CSV, never trained on: retrieval R@1/5/10 at each evaluation
    # data parallelism (mpiexec -n P miniclip train --distributed): batch_size is the global batch
    local_loss: bool = False          # each rank computes only its rows of the logits (open_clip's --local-loss)
    # evaluation and bookkeeping
    eval_every: int = 500             # steps between evaluations (and one at the end)
    eval_images: int = 960            # fresh images over all 48 names at each evaluation
    eval_heldout_images: int = 400    # fresh images of the 8 held-out pairs at each evaluation
    final_eval_images: int = 2400     # the final evaluation, on a larger fresh set
    final_eval_heldout_images: int = 800
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    seed: int = 0
    data_workers: int = 0             # 0: batches drawn by a thread; 1: by a separate process, which
    # keeps the drawing's Python off the training step's interpreter lock (benchmarks/README.md); the
    # process dies with the training process. The `miniclip train` command uses 1. The batches are the
    # same either way.
    threads: int = 1                  # compute threads (BLAS / OpenMP); None: the libraries' default.
    # One compute thread while the next batches are drawn beside it: on a 2-core machine that other
    # programs also use, two spinning compute threads can make steps several times slower.
    progress: bool = True             # tqdm progress bar
    plots: bool = True

    def __post_init__(self):
        def need(name, ok, expected):
            if not ok:
                raise ValueError(f"TrainConfig.{name}: expected {expected}, got {getattr(self, name)!r}")

        def positive_int(name, allow_zero=False):
            v = getattr(self, name)
            need(name, isinstance(v, int) and not isinstance(v, bool) and (v >= 0 if allow_zero else v >= 1),
                 "an integer >= 0" if allow_zero else "an integer >= 1")

        for name in ("steps", "batch_size", "image_resolution", "vision_patch_size", "vision_width",
                     "vision_layers", "vision_heads", "embed_dim", "transformer_width", "transformer_layers",
                     "transformer_heads", "context_length", "eval_every", "checkpoint_every",
                     "keep_checkpoints", "eval_images", "eval_heldout_images", "final_eval_images",
                     "final_eval_heldout_images"):
            positive_int(name)
        if self.warmup_steps is None:
            self.warmup_steps = self.steps // 10 if isinstance(self.steps, int) else 0
        positive_int("warmup_steps", allow_zero=True)
        positive_int("seed", allow_zero=True)
        need("batch_size", self.batch_size >= 2, "at least 2 (a contrastive batch needs negatives)")
        need("warmup_steps", self.warmup_steps < self.steps, f"fewer than steps={self.steps}")
        for name in ("lr", "weight_decay", "eps"):
            v = getattr(self, name)
            need(name, isinstance(v, (int, float)) and math.isfinite(v) and v >= 0, "a finite number >= 0")
        for name in ("beta1", "beta2"):
            v = getattr(self, name)
            need(name, isinstance(v, (int, float)) and 0 <= v < 1, "a number in [0, 1)")
        need("grad_clip", self.grad_clip is None or (isinstance(self.grad_clip, (int, float)) and self.grad_clip > 0),
             "None or a number > 0")
        need("loss", self.loss in ("clip", "siglip"), "'clip' or 'siglip'")
        need("objective", self.objective == "clip" or (self.objective == "supervised" and self.train_data is None
                                                       and not self.local_loss),
             "'clip', or 'supervised' on the shapes world (its labels), in one process")
        need("init_temperature", self.init_temperature is None or (
            isinstance(self.init_temperature, (int, float)) and 0.01 <= self.init_temperature <= 1),
            "None or a number in [0.01, 1] (the clamp keeps 1/tau in [1, 100])")
        need("dtype", self.dtype in ("float32", "float64"), "'float32' or 'float64'")
        need("vision_patch_size", self.image_resolution % self.vision_patch_size == 0,
             f"a divisor of image_resolution={self.image_resolution}")
        need("vision_width", self.vision_width % self.vision_heads == 0,
             f"a multiple of vision_heads={self.vision_heads}")
        need("transformer_width", self.transformer_width % self.transformer_heads == 0,
             f"a multiple of transformer_heads={self.transformer_heads}")
        need("vocab_size", isinstance(self.vocab_size, int) and self.vocab_size >= 514,
             "an integer >= 514 (256 bytes, 256 bytes ending a word, 2 special tokens)")
        need("data_workers", self.data_workers in (0, 1), "0 (a thread) or 1 (a process)")
        need("threads", self.threads is None or (isinstance(self.threads, int) and self.threads >= 1),
             "None or an integer >= 1")
        need("train_data", self.train_data is None or isinstance(self.train_data, str), "None or a CSV path")
        need("world", self.world in ("diverse", "classic"), "'diverse' or 'classic'")
        need("val_data", self.val_data is None or (isinstance(self.val_data, str) and self.train_data is not None),
             "None, or a CSV path given together with TrainConfig.train_data (the shapes world draws its "
             "own evaluation images)")
        need("local_loss", isinstance(self.local_loss, bool), "True or False")

    def to_json(self):
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_dict(cls, d):
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"TrainConfig: unknown fields {unknown}")
        if "world" not in d:  # a run saved before the diverse world existed trained on the classic one
            d = {**d, "world": "classic"}
        return cls(**d)

    def model_args(self, vocab_size):
        """The CLIP constructor's keyword arguments (saved beside the weights)."""
        args = dict(embed_dim=self.embed_dim, image_resolution=self.image_resolution,
                    vision_layers=self.vision_layers, vision_width=self.vision_width,
                    vision_patch_size=self.vision_patch_size, context_length=self.context_length,
                    vocab_size=vocab_size, transformer_width=self.transformer_width,
                    transformer_heads=self.transformer_heads, transformer_layers=self.transformer_layers,
                    vision_heads=self.vision_heads, dtype=self.dtype)
        if self.loss == "siglip":
            args.update(init_logit_scale=SIGLIP_INIT_LOGIT_SCALE, init_logit_bias=SIGLIP_INIT_LOGIT_BIAS)
        if self.init_temperature is not None:
            args["init_logit_scale"] = math.log(1.0 / self.init_temperature)
        return args


@dataclass
class TrainResult:
    run_dir: str
    model: object
    tokenizer: object
    final: dict = field(default_factory=dict)   # the final evaluation's metrics
    steps_done: int = 0
    train_seconds: float = 0.0


# ------------------------------------------------------------------------------- data
def _shapes():
    from ..data import shapes  # imported lazily: the data layer pulls in Pillow
    return shapes


class StepBatches:
    """Batch ``k`` of the run as a pure function of (seed, k), prepared ahead of the training step.

    The shapes world: a one-epoch stream of ``steps * batch_size`` fresh samples in order (sample
    ``i`` is drawn from ``default_rng([seed, split, i])``), so no image is ever seen twice. A CSV:
    epoch ``k // len(loader)`` in the loader's shuffled order, batch ``k % len(loader)``, the last
    partial batch dropped (a contrastive batch of 3 is a different problem from one of 128).
    ``iterate`` prepares them in a thread (``workers=0``) or in one separate process (``workers=1``).
    """

    def __init__(self, loader, steps, shuffled_epochs, world=None):
        self.loader, self.steps, self.shuffled_epochs = loader, steps, shuffled_epochs
        self.world = World() if world is None else world  # distributed: rank r makes only its shard

    def indices(self, k):
        b = self.loader.batch_size
        if not self.shuffled_epochs:
            return k, np.arange(k * b, (k + 1) * b)
        per_epoch = len(self.loader.dataset) // b
        epoch, position = divmod(k, per_epoch)
        return epoch, self.loader.order(epoch)[position * b:(position + 1) * b]

    def make(self, k):
        epoch, idx = self.indices(k)
        idx = shard(idx, self.world)  # distributed: rows [r n, (r + 1) n) of the global batch (one process: all)
        return self.loader.make_batch(idx, epoch)

    def iterate(self, start, workers=0, prefetch=3):
        """Yield (k, batch) for k = start .. steps-1, up to ``prefetch`` batches prepared ahead."""
        if workers == 0:
            yield from self._iterate_thread(start, prefetch)
        else:
            yield from self._iterate_process(start, prefetch)

    def _iterate_process(self, start, prefetch):
        """The batches made by one worker process that reads step numbers from one pipe and writes
        batches to another. A fresh interpreter (not a fork), so it is safe whatever threads (OpenMP,
        BLAS) this process runs; plain pipes (not multiprocessing's queues), so no resource-tracker
        process is started. It never outlives this process: on Linux the kernel kills it when its
        parent dies (``PR_SET_PDEATHSIG``), anywhere it exits when its request pipe closes."""
        import subprocess
        from multiprocessing.connection import Connection

        request_r, request_w = os.pipe()
        result_r, result_w = os.pipe()
        package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        path = os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p)
        code = f"from miniclip.training.run import _batch_worker; _batch_worker({request_r}, {result_w}, {os.getpid()})"
        worker = subprocess.Popen([sys.executable, "-c", code], pass_fds=(request_r, result_w),
                                  env={**os.environ, "PYTHONPATH": path})
        os.close(request_r)
        os.close(result_w)
        requests, results = Connection(request_w, readable=False), Connection(result_r, writable=False)
        try:
            requests.send(self)
            next_k = start
            for k in range(start, self.steps):
                while next_k < self.steps and next_k - k < prefetch:  # keep `prefetch` batches ordered ahead
                    requests.send(next_k)
                    next_k += 1
                try:
                    made, batch = results.recv()
                except EOFError:
                    raise RuntimeError(f"the batch worker process (pid {worker.pid}) ended unexpectedly "
                                       f"(exit code {worker.wait()})") from None
                if not made:
                    raise batch  # the worker's exception, e.g. an unreadable image
                yield k, batch
        finally:
            requests.close()  # the worker sees the end of its requests and exits
            results.close()
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()

    def _iterate_thread(self, start, prefetch):
        ready = queue.Queue(maxsize=prefetch)
        stop = threading.Event()

        def produce():
            for k in range(start, self.steps):
                try:
                    item = (k, self.make(k))
                except BaseException as exc:  # carried to the training thread and raised there
                    item = (k, exc)
                while not stop.is_set():
                    try:
                        ready.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set() or isinstance(item[1], BaseException):
                    return

        worker = threading.Thread(target=produce, name="miniclip-train-batches", daemon=True)
        worker.start()
        try:
            for _ in range(start, self.steps):
                k, batch = ready.get()
                if isinstance(batch, BaseException):
                    raise batch
                yield k, batch
        finally:
            stop.set()
            worker.join(timeout=5)


def _batch_worker(request_fd, result_fd, parent_pid):
    """The worker process of ``StepBatches._iterate_process``: a StepBatches, then step numbers, in;
    ``(True, batch)`` or ``(False, exception)`` out, until the requests end."""
    from multiprocessing.connection import Connection

    _die_with_parent(parent_pid)
    # Ctrl-C and SIGTERM are the training process's to handle; it closes the pipes when it is done
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    requests, results = Connection(request_fd, writable=False), Connection(result_fd, readable=False)
    try:
        batches = requests.recv()
        while True:
            k = requests.recv()
            try:
                reply = (True, batches.make(k))
            except Exception as exc:  # noqa: BLE001 - raised again in the training process
                reply = (False, exc)
            try:
                results.send(reply)
            except (TypeError, AttributeError, pickle.PicklingError):  # an exception that does not pickle
                results.send((False, RuntimeError(f"batch {k}: {type(reply[1]).__name__}: {reply[1]}")))
    except (EOFError, OSError):  # the training process is done (or gone)
        return


def _die_with_parent(parent_pid):
    """Ask Linux to SIGKILL this process when its parent dies (prctl PR_SET_PDEATHSIG); exit now if
    the parent is already gone. Elsewhere the closed request pipe ends the worker instead."""
    if sys.platform.startswith("linux"):
        import ctypes
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(0)


def _shapes_eval_set(n, seed, resolution, split, preprocess, styles=None):
    """``n`` freshly drawn shapes samples in ``styles`` (default: the diverse world's): (images (n, 3, R, R),
    labels (n,), captions, uint8 images when they all have the model's size)."""
    shapes = _shapes()
    styles = shapes.WORLDS["diverse"] if styles is None else styles
    samples = [shapes.draw_sample(seed, i, resolution, split, styles) for i in range(n)]
    images = np.stack([preprocess(s.image) for s in samples])  # (n, 3, R, R): any picture size, as a user's file
    same_size = all(s.image.shape == (resolution, resolution, 3) for s in samples)
    return {"images": images, "labels": np.array([s.label for s in samples]),
            "captions": [s.caption for s in samples],
            "pixels": np.stack([s.image for s in samples]) if same_size else None}


def shapes_eval_sets(config, n_all, n_heldout, seed, preprocess):
    """The evaluation sets of a shapes run: ``{"": (all names, held-out pairs)}`` in the training world's
    styles (in distribution), and the same for each held-out style, half as many images each."""
    shapes = _shapes()

    def pair(styles, n, m):
        return (_shapes_eval_set(n, seed, config.image_resolution, "all", preprocess, styles),
                _shapes_eval_set(m, seed, config.image_resolution, "held_out", preprocess, styles))

    sets = {"": pair(shapes.WORLDS[config.world], n_all, n_heldout)}
    for style in shapes.HELD_OUT_STYLES:
        sets[style] = pair((style,), max(1, n_all // 2), max(1, n_heldout // 2))
    return sets


def held_out_styles_text(record):
    """" held-out styles (all / pairs): pixel 93.1% / 88.0%, matplotlib ... |" for an evaluation line."""
    styles = [k[len("zeroshot_top1_all_"):] for k in record if k.startswith("zeroshot_top1_all_")]
    if not styles:
        return ""
    parts = [f"{style} {100 * record[f'zeroshot_top1_all_{style}']:.1f}% / "
             f"{100 * record[f'zeroshot_top1_heldout_{style}']:.1f}%" for style in styles]
    return " held-out styles (all / pairs): " + ", ".join(parts) + " |"


def shapes_train_dataset(config):
    """The stream of training samples of a shapes run: never a held-out pair, never a held-out style."""
    shapes = _shapes()
    return shapes.ShapesDataset(config.steps * config.batch_size, seed=config.seed,
                                resolution=config.image_resolution, split="train", styles=shapes.WORLDS[config.world])


# Evaluation images come from a seed far from the training one (and from other splits), so they are
# never training images.
EVAL_SEED_OFFSET = 1_000_003
FINAL_EVAL_SEED_OFFSET = 2_000_003


def train_tokenizer(config):
    """A BPE tokenizer learned from the training captions (plus the zero-shot prompt templates).

    Raises ``ValueError`` when one of those texts does not fit in ``config.context_length`` tokens,
    before any training starts (rather than at the first batch that holds it).
    """
    if config.train_data is not None:
        dataset = _csv_dataset(config.train_data, config, log=_quiet)  # (skipped rows: reported by _train)
        texts = list(dataset.captions)
        return BPETokenizer.train(texts, config.vocab_size)  # too-long captions: CsvDataset names the row
    shapes = _shapes()
    texts = [shapes.draw_sample(config.seed, i, 8, "train", shapes.WORLDS[config.world]).caption for i in range(2000)]
    # the prompts of the training pairs only: held-out names stay out of everything learned
    texts += [t.format(f"{c} {s}") for t in shapes.ZERO_SHOT_TEMPLATES for c, s in shapes.TRAIN_PAIRS]
    tokenizer = BPETokenizer.train(texts, config.vocab_size)
    prompts = [t.format(c) for t in shapes.ZERO_SHOT_TEMPLATES for c in shapes.CLASS_NAMES]
    longest = max(texts + prompts, key=lambda t: len(tokenizer.encode(t)))
    n = len(tokenizer.encode(longest)) + 2
    if n > config.context_length:
        raise ValueError(f"TrainConfig.context_length: {config.context_length} tokens is too short for "
                         f"{longest!r}, which takes {n} with start and end of text at vocab_size "
                         f"{config.vocab_size}; raise --context-length or --vocab-size")
    return tokenizer


# ------------------------------------------------------------------------- evaluation
RETRIEVAL_PAIRS = 256  # the retrieval gallery of a shapes evaluation


def evaluate_shapes(model, tokenizer, config, all_set, heldout_set, batch_size, retrieval_pairs=RETRIEVAL_PAIRS,
                    style_sets=None):
    """Zero-shot top-1/top-5 over the 48 names (all images; held-out images separately), the
    eval loss on one batch of pairs, and retrieval recall@k on ``retrieval_pairs`` image-caption pairs.

    ``style_sets``: ``{style: (all_set, heldout_set)}`` of held-out rendering styles; adds
    ``zeroshot_top1_all_<style>`` and ``zeroshot_top1_heldout_<style>`` (robustness to a shift).
    """
    if config.objective == "supervised":
        return evaluate_supervised(model, all_set, heldout_set, batch_size, style_sets)
    shapes = _shapes()
    tok = ContextTokenizer(tokenizer, config.context_length)
    classifier = zero_shot_classifier(model, tok, shapes.CLASS_NAMES, shapes.ZERO_SHOT_TEMPLATES)
    zs_all = zero_shot_accuracy(model, all_set["images"], all_set["labels"], classifier, batch_size)
    zs_held = zero_shot_accuracy(model, heldout_set["images"], heldout_set["labels"], classifier, batch_size)
    n_pairs = min(retrieval_pairs, len(all_set["captions"]))
    tokens = tok(all_set["captions"][:n_pairs])
    similarity = image_text_similarity(model, all_set["images"][:n_pairs], tokens, batch_size)
    record = {"zeroshot_top1_all": zs_all["top1"], "zeroshot_top5_all": zs_all["top5"],
              "zeroshot_top1_heldout": zs_held["top1"], "zeroshot_top5_heldout": zs_held["top5"]}
    for style, (style_all, style_held) in (style_sets or {}).items():
        for name, data in (("all", style_all), ("heldout", style_held)):
            record[f"zeroshot_top1_{name}_{style}"] = zero_shot_accuracy(
                model, data["images"], data["labels"], classifier, batch_size)["top1"]
    record["eval_loss"] = _eval_loss(model, all_set["images"], tokens, config, config.batch_size)
    record.update({f"retrieval_{k}": v for k, v in retrieval_metrics(similarity).items()})
    arrays = {"similarity": similarity[:32, :32], "similarity_captions": np.array(all_set["captions"][:32]),
              "confusion": zs_all["confusion"], "classnames": np.array(shapes.CLASS_NAMES)}
    # a sample grid: 6 images of all names, 6 of held-out pairs, with the model's top guess
    picks = [(s, z, i) for s, z in ((all_set, zs_all), (heldout_set, zs_held)) for i in range(min(6, len(s["labels"])))]
    arrays["sample_images"] = np.stack([s["pixels"][i] for s, _, i in picks])
    arrays["sample_captions"] = np.array([s["captions"][i] for s, _, i in picks])
    arrays["sample_guesses"] = np.array([shapes.CLASS_NAMES[z["predictions"][i]] for _, z, i in picks])
    arrays["sample_correct"] = np.array([z["predictions"][i] == s["labels"][i] for s, z, i in picks])
    return record, arrays


def evaluate_supervised(model, all_set, heldout_set, batch_size, style_sets=None):
    """The supervised baseline's evaluation, on the same images as ``evaluate_shapes``: top-1/top-5 of
    its learned head over the 48 names (``supervised_top1_all``, ``supervised_top1_heldout``, per held-out
    style ``supervised_top1_all_<style>``...) and the cross-entropy of the in-distribution images."""
    shapes = _shapes()
    acc = {"all": classifier_accuracy(model, all_set["images"], all_set["labels"], batch_size),
           "heldout": classifier_accuracy(model, heldout_set["images"], heldout_set["labels"], batch_size)}
    record = {f"supervised_top{k}_{name}": a[f"top{k}"] for name, a in acc.items() for k in (1, 5)}
    for style, (style_all, style_held) in (style_sets or {}).items():
        for name, data in (("all", style_all), ("heldout", style_held)):
            record[f"supervised_top1_{name}_{style}"] = classifier_accuracy(
                model, data["images"], data["labels"], batch_size)["top1"]
    logits = acc["all"]["logits"]
    with no_grad():
        record["eval_loss"] = float(ops.cross_entropy(Tensor(logits), all_set["labels"]).item())
    arrays = {"confusion": acc["all"]["confusion"], "classnames": np.array(shapes.CLASS_NAMES)}
    return record, arrays


def supervised_line(record):
    """The evaluation line of a supervised-baseline run."""
    styles = [k[len("supervised_top1_all_"):] for k in record if k.startswith("supervised_top1_all_")]
    parts = "".join(f", {style} {100 * record[f'supervised_top1_all_{style}']:.1f}% / "
                    f"{100 * record[f'supervised_top1_heldout_{style}']:.1f}%" for style in styles)
    return (f"step {record['step']:>5}: eval loss {record['eval_loss']:.3f} | supervised top-1 all 48 names "
            f"{100 * record['supervised_top1_all']:.1f}% (top-5 {100 * record['supervised_top5_all']:.1f}%) | "
            f"held-out pairs {100 * record['supervised_top1_heldout']:.1f}% (never seen labeled)"
            + (f" | held-out styles (all / pairs): {parts[2:]}" if parts else ""))


def _eval_loss(model, images, tokens, config, batch_size):
    """The training loss on the first ``batch_size`` eval pairs (the loss depends on the batch size)."""
    n = min(batch_size, len(tokens))
    with no_grad():
        loss = _loss_fn(config)(*model(images[:n], tokens[:n]))
    return float(loss.item())


def _loss_fn(config):
    return siglip_loss if config.loss == "siglip" else clip_loss


# --------------------------------------------------------------------------- run files
def default_run_dir(root="runs", stem="shapes"):
    """``runs/shapes-1``, ``runs/shapes-2``, ...: the first that does not exist."""
    n = 1
    while os.path.exists(os.path.join(root, f"{stem}-{n}")):
        n += 1
    return os.path.join(root, f"{stem}-{n}")


def _read_records(path):
    """The records of ``metrics.jsonl``; a torn last line (a write cut short by a kill or a full
    disk) is dropped, since the steps after the newest checkpoint are redone anyway."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        lines = [line for line in f if line.strip()]
    records = []
    for i, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i < len(lines) - 1:
                raise ValueError(f"{path}, line {i + 1}: not valid JSON") from None
    return records


def _rewrite_records(path, records):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    os.replace(tmp, path)


class _CtrlC:
    """First Ctrl-C (or SIGTERM, as ``kill`` sends): finish the current step, checkpoint, stop.
    A second one: stop at once. ``signals``: the signals handled so (distributed: Ctrl-C only, since
    ``mpiexec`` passes SIGTERM to every rank and the ranks could stop after different steps)."""

    def __init__(self, signals=(signal.SIGINT, signal.SIGTERM)):
        self.signals, self.requested, self.previous = signals, None, {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._handle) for s in self.signals}
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            signal.signal(s, handler)


@contextmanager
def _threads(n):
    """Limit BLAS and OpenMP (numpy's BLAS and our compiled kernels) to ``n`` threads inside."""
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    from ..backend import get_num_threads, set_num_threads
    before = get_num_threads()
    set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        set_num_threads(before)


# ------------------------------------------------------------------------------ train
def train(config, resume=False, on_step=None, log=print, world=None):
    """Train a CLIP as ``config`` says; returns a ``TrainResult``.

    ``resume=True`` continues the run in ``config.out`` from its newest checkpoint (the config is
    read from the run folder; the trajectory is the one an uninterrupted run follows); a run without
    a checkpoint starts over, a finished one is left as it is. The folder is this process's for the
    whole run (``run_folder.py``); ``RunFolderError`` when another process holds it, when it holds
    files that are not a run, or (fresh start) when it holds a run to resume.
    ``on_step(step, record, model)`` is called after every step (tests use it to interrupt a run).
    Ctrl-C or SIGTERM (or a KeyboardInterrupt from ``on_step``) writes a checkpoint and raises
    KeyboardInterrupt.

    ``world`` (``miniclip.training.distributed.init_distributed()``): with P > 1 ranks, each computes its shard
    of every global batch, the features are gathered and the gradients averaged (the result is the
    one-process run's); only rank 0 evaluates and writes the run folder, logs and shows progress.
    """
    reuse_freed_memory()  # every step frees and reallocates the same arrays: keep the pages (tools/memory.py)
    # ---- distributed: which rank am I (see miniclip/training/distributed.py); one process when world is None
    world = World() if world is None else world
    if world.size > 1:
        if not world.is_main:
            config.progress, config.plots, log = False, False, _quiet
        if config.out is None and not resume:
            config.out = world.broadcast_object(default_run_dir() if world.is_main else None)
    if resume:
        if config.out is None or not os.path.exists(os.path.join(config.out, CONFIG_FILE)):
            raise FileNotFoundError(f"resume: {config.out!r} is not a run folder (no {CONFIG_FILE} in it)")
        with open(os.path.join(config.out, CONFIG_FILE), encoding="utf-8") as f:
            saved = TrainConfig.from_dict(json.load(f))
        saved.out, saved.progress, saved.plots = config.out, config.progress, config.plots
        config = saved
    elif config.out is None:
        config.out = default_run_dir()
    if config.batch_size % world.size:  # distributed: every rank takes an equal shard
        raise ValueError(f"TrainConfig.batch_size: the global batch ({config.batch_size}) must be divisible by "
                         f"the number of ranks ({world.size})")
    if world.size > 1:
        if config.threads is None:  # distributed: share this machine's cores among its ranks, never oversubscribe
            config.threads = max(1, (os.cpu_count() or 1) // world.ranks_on_this_machine())
        log(f"data parallel: {world.size} ranks x {config.batch_size // world.size} pairs = global batch "
            f"{config.batch_size}{' (local loss)' if config.local_loss else ''}, {config.threads} thread(s) per rank")
    with _threads(config.threads), _claim_run_folder(config, resume, world, log) as ckpt, world.abort_on_error():
        return _train(config, ckpt, on_step, log, world)  # distributed: a failing rank (above) ends every rank


@contextmanager
def _claim_run_folder(config, resume, world, log):
    """Hold the run folder for this run (``run_folder.claim``: the lock, the marker, where to start) and
    yield the checkpoint to continue from (None: step 0). Distributed: only rank 0 claims the folder (only
    rank 0 writes it); the other ranks get its verdict, so a refusal ends every rank with the same error."""
    manager = CheckpointManager(os.path.join(config.out, CHECKPOINT_DIR), keep=config.keep_checkpoints)
    held, error = None, None
    if world.is_main:
        try:
            held = run_folder.claim(config.out, resume, asdict(config), manager, MODEL_FILE, log)
        except Exception as exc:  # noqa: BLE001 - carried to the other ranks, raised on all
            error = exc
    if world.size > 1:
        path = held.checkpoint.path if held is not None and held.checkpoint is not None else None
        error, path = world.broadcast_object((error, path))
        if not world.is_main and error is None:
            held = run_folder.Claim(config.out, checkpoint=load_checkpoint(path) if path else None)
    if error is not None:
        raise error
    with held:
        yield held.checkpoint


def _quiet(*args, **kwargs):
    """The log of ranks other than 0."""


def _train(config, ckpt, on_step, log, world):
    run_dir = config.out
    metrics_path = os.path.join(run_dir, METRICS_FILE)
    manager = CheckpointManager(os.path.join(run_dir, CHECKPOINT_DIR), keep=config.keep_checkpoints)
    dtype = np.dtype(config.dtype)
    resume = ckpt is not None

    # ---- tokenizer, model, optimizer: fresh, or restored from the newest checkpoint
    if resume:
        tokenizer = BPETokenizer.from_merges_text(ckpt.tokenizer_merges)
    else:
        if world.is_main:  # distributed: rank 0 writes (it holds the folder, see _claim_run_folder)
            with open(os.path.join(run_dir, CONFIG_FILE), "w", encoding="utf-8") as f:
                f.write(config.to_json())
        t0 = time.perf_counter()
        tokenizer = train_tokenizer(config)
        log(f"tokenizer: {len(tokenizer.merges)} merges learned from the captions "
            f"(vocab {tokenizer.vocab_size}) in {time.perf_counter() - t0:.1f} s")
    if world.size > 1:  # distributed: every rank uses rank 0's tokenizer
        tokenizer = BPETokenizer.from_merges_text(world.broadcast_object(tokenizer.merges_text()))
    model_args = config.model_args(tokenizer.vocab_size)
    if config.objective == "supervised" and world.size > 1:
        raise ValueError("TrainConfig.objective: the supervised baseline trains in one process, not under --distributed")
    if config.objective == "supervised":
        model = SupervisedClassifier(len(_shapes().CLASS_NAMES), **model_args, seed=config.seed)
    else:
        model = CLIP(**model_args, seed=config.seed)
    optimizer = AdamW(list(model.named_parameters()), lr=config.lr, betas=(config.beta1, config.beta2), eps=config.eps,
                      weight_decay=config.weight_decay)
    schedule = WarmupCosine(config.lr, config.warmup_steps, config.steps)
    start = 0
    if ckpt is not None:
        model.load_state_dict(ckpt.model_state)
        optimizer.load_state_dict(ckpt.optimizer_state)
        start = ckpt.step
        log(f"resuming {run_dir} from {ckpt.path} (step {start} of {config.steps})")
    broadcast_parameters(model.parameters(), world)  # distributed: every rank starts from rank 0's weights
    records = _read_records(metrics_path)
    if resume and start == config.steps and any(r["kind"] == "final" for r in records) and os.path.exists(
            os.path.join(run_dir, MODEL_FILE)):
        log(f"{run_dir} is finished (step {start} of {config.steps}); nothing to do. `miniclip eval {run_dir}` "
            f"evaluates it again")
        return TrainResult(run_dir=run_dir, model=model, tokenizer=ContextTokenizer(tokenizer, config.context_length),
                           final=[r for r in records if r["kind"] == "final"][-1], steps_done=start)
    # drop what came after the checkpoint, and the final evaluation (redone at the end)
    records = [r for r in records if r["step"] <= start and r["kind"] != "final"]
    world.barrier()  # distributed: every rank has read the records before rank 0 rewrites them
    if world.is_main:
        _rewrite_records(metrics_path, records)
    n_params = model.num_parameters()
    if not resume:
        towers = (f"text {config.transformer_layers}x{config.transformer_width}" if config.objective == "clip" else
                  f"supervised baseline: no text tower, a linear head over {model.n_classes} labels")
        log(f"model: {n_params / 1e6:.2f} M parameters, images {config.image_resolution}px patch "
            f"{config.vision_patch_size} ({(config.image_resolution // config.vision_patch_size) ** 2 + 1} tokens), "
            f"vision {config.vision_layers}x{config.vision_width}, {towers}, embed {config.embed_dim}, {config.dtype}")

    # ---- data
    from ..data import Loader, Preprocess
    preprocess = Preprocess(config.image_resolution, train=False, dtype=dtype)
    if config.train_data is None:
        dataset = shapes_train_dataset(config)
        loader = Loader(dataset, config.batch_size, preprocess, tokenizer, context_length=config.context_length,
                        shuffle=False, seed=config.seed, prefetch=0)
        batches = StepBatches(loader, config.steps, shuffled_epochs=False, world=world)
        eval_sets = shapes_eval_sets(config, config.eval_images, config.eval_heldout_images,
                                     config.seed + EVAL_SEED_OFFSET, preprocess)
    else:
        from ..data import CsvDataError
        dataset = _csv_dataset(config.train_data, config, tokenizer, log=log)
        if len(dataset) < config.batch_size:
            raise CsvDataError(f"{config.train_data} has {dataset.usable_rows()}, fewer than --batch-size "
                               f"{config.batch_size}: a training batch takes that many rows; lower --batch-size "
                               f"or add rows")
        train_pre = Preprocess(config.image_resolution, train=True, dtype=dtype, seed=config.seed)
        loader = Loader(dataset, config.batch_size, train_pre, tokenizer, context_length=config.context_length,
                        shuffle=True, seed=config.seed, drop_last=True, prefetch=0)
        batches = StepBatches(loader, config.steps, shuffled_epochs=True, world=world)
        eval_sets = None
        val_dataset = None if config.val_data is None else _csv_dataset(config.val_data, config, tokenizer, log=log)
        if val_dataset is not None:
            _check_held_out(dataset, val_dataset)

    def evaluate(step, final=False):
        """The step's evaluation record (None: a CSV run without --val-data has nothing to evaluate on)."""
        t = time.perf_counter()
        if eval_sets is None:
            if val_dataset is None:
                return None
            record, arrays = _evaluate_csv(model, tokenizer, config, val_dataset, preprocess,
                                           n=CSV_FINAL_EVAL_PAIRS if final else CSV_EVAL_PAIRS)
        else:
            sets = eval_sets
            if final:
                sets = shapes_eval_sets(config, config.final_eval_images, config.final_eval_heldout_images,
                                        config.seed + FINAL_EVAL_SEED_OFFSET, preprocess)
            in_distribution = sets.pop("") if final else sets[""]
            styles = sets if final else {k: v for k, v in sets.items() if k}
            record, arrays = evaluate_shapes(model, tokenizer, config, *in_distribution, batch_size=256,
                                             style_sets=styles)
        record = {"kind": "final" if final else "eval", "step": step, **record}
        atomic_write_npz(os.path.join(run_dir, ARRAYS_FILE), arrays)
        timing["eval_seconds"] += time.perf_counter() - t
        return record

    def checkpoint(step):
        if not world.is_main:  # distributed: only rank 0 writes
            return
        manager.save(step, model_state=model.state_dict(), optimizer_state=optimizer.state_dict(),
                     rng_state={"note": "batches and evaluation sets are pure functions of (seed, step)",
                                "seed": config.seed},
                     config=asdict(config), tokenizer_merges=tokenizer.merges_text(),
                     extra={"model_args": model_args})
        save_timing()  # with each checkpoint, so that a resumed run adds to the time up to it

    def save_timing():
        timing["wall_seconds"] = wall_before + time.perf_counter() - t_start
        if timing["steps"]:
            timing["seconds_per_step"] = timing["train_seconds"] / timing["steps"]
            timing["images_per_second"] = config.batch_size / timing["seconds_per_step"]
        with open(os.path.join(run_dir, TIMING_FILE + ".tmp"), "w", encoding="utf-8") as f:
            json.dump(timing, f, indent=2)
        os.replace(os.path.join(run_dir, TIMING_FILE + ".tmp"), os.path.join(run_dir, TIMING_FILE))

    def write(record):
        records.append(record)
        metrics.write(json.dumps(record) + "\n")
        metrics.flush()

    def eval_line(r):
        if "supervised_top1_all" in r:
            return supervised_line(r)
        return (f"step {r['step']:>5}: eval loss {r['eval_loss']:.3f} | zero-shot top-1 all 48 names "
                f"{100 * r['zeroshot_top1_all']:.1f}% (top-5 {100 * r['zeroshot_top5_all']:.1f}%) | held-out pairs "
                f"{100 * r['zeroshot_top1_heldout']:.1f}% |{held_out_styles_text(r)} retrieval R@1 i->t "
                f"{100 * r['retrieval_image_to_text_R@1']:.1f}% t->i {100 * r['retrieval_text_to_image_R@1']:.1f}%"
                if "zeroshot_top1_all" in r else
                f"step {r['step']:>5}: eval loss {r['eval_loss']:.3f} | retrieval R@1/5/10 on {r['val_pairs']} "
                f"--val-data pairs: i->t {_recalls(r, 'image_to_text')}% t->i {_recalls(r, 'text_to_image')}%")

    # ---- the loop
    from tqdm.auto import tqdm
    loss_fn = _loss_fn(config)
    timing = {"train_seconds": 0.0, "eval_seconds": 0.0, "steps": 0, "wall_seconds": 0.0}
    if resume and os.path.exists(os.path.join(run_dir, TIMING_FILE)):  # a resumed run adds to the earlier time
        with open(os.path.join(run_dir, TIMING_FILE), encoding="utf-8") as f:
            timing.update({k: v for k, v in json.load(f).items() if k in timing})
    wall_before = timing["wall_seconds"]
    step = start                      # optimizer steps completed so far
    updating = False                  # True while parameters are being written (not checkpointable)
    bar = tqdm(total=config.steps, initial=start, disable=not config.progress, unit="step", dynamic_ncols=True,
               desc="train")
    speed = None
    t_start = time.perf_counter()
    metrics = open(metrics_path if world.is_main else os.devnull, "a", encoding="utf-8")  # distributed: rank 0 writes
    ctrl_c = _CtrlC() if world.size == 1 else _CtrlC(signals=(signal.SIGINT,))
    try:
        with ctrl_c:
            if world.is_main and resume and step % config.eval_every == 0 and 0 < step < config.steps and not any(
                    r["kind"] == "eval" and r["step"] == step for r in records):
                r = evaluate(step)  # the run was stopped between the step and its evaluation
                if r is not None:
                    write(r)
            t_step = time.perf_counter()
            # distributed: ranks draw in a thread; a worker process spawned inside an MPI rank can
            # hang at start-up (the child re-imports the launcher's environment) and gains little there
            workers = config.data_workers if world.size == 1 else 0
            for k, batch in batches.iterate(start, workers=workers):
                lr = schedule(k)
                optimizer.lr = lr
                updating = True   # a second Ctrl-C inside the step: no checkpoint of half-updated weights
                try:
                    if config.objective == "supervised":
                        loss_value = supervised_step(model, batch, optimizer, grad_clip=config.grad_clip)
                    else:
                        loss_value = train_step(model, batch, loss_fn, optimizer, world, grad_clip=config.grad_clip,
                                                local_loss=config.local_loss)
                except NonFiniteError as exc:
                    raise NonFiniteError(f"step {k + 1}: {exc}") from None
                updating = False
                step = k + 1
                record = {"kind": "train", "step": step, "loss": loss_value, "lr": lr, "batch_size": config.batch_size}
                if config.objective == "clip":
                    logit_scale = float(model.logit_scale.data)
                    temperature = math.exp(-logit_scale)  # tau: logits = cosine / tau = cosine * exp(logit_scale)
                    record.update(logit_scale=logit_scale, temperature=temperature)
                write(record)
                now = time.perf_counter()
                dt, t_step = now - t_step, now
                timing["train_seconds"] += dt
                timing["steps"] += 1
                speed = config.batch_size / dt if speed is None else 0.9 * speed + 0.1 * config.batch_size / dt
                tau = f" tau {record['temperature']:.4f}" if "temperature" in record else ""
                bar.set_postfix_str(f"loss {loss_value:.3f}{tau} {speed:.0f} img/s", refresh=False)
                bar.update(1)
                if world.is_main and step % config.eval_every == 0 and step < config.steps:
                    r = evaluate(step)
                    if r is not None:
                        write(r)
                        (bar.write if config.progress else log)(eval_line(r))
                if step % config.checkpoint_every == 0 or step == config.steps:
                    checkpoint(step)
                if on_step is not None:
                    on_step(step, record, model)
                if ctrl_c.requested:
                    raise KeyboardInterrupt
                t_step = time.perf_counter()
    except KeyboardInterrupt:
        bar.close()
        metrics.close()
        if not updating and step > start and manager.latest() != manager.path_for(step):
            checkpoint(step)
        latest = manager.latest()
        how = f"stopped by {ctrl_c.requested}" if ctrl_c.requested else "interrupted"
        if latest is None:
            log(f"\n{how} after step {step}, before the first checkpoint; nothing to resume "
                f"(`miniclip train --resume {run_dir}` starts it over)")
        else:
            log(f"\n{how} after step {step}; newest checkpoint {latest}. "
                f"Continue with: miniclip train --resume {run_dir}")
        raise
    except BaseException:
        bar.close()
        metrics.close()
        raise
    bar.close()
    if not world.is_main:  # distributed: rank 0 evaluates and writes the end of the run
        metrics.close()
        return TrainResult(run_dir=run_dir, model=model, tokenizer=ContextTokenizer(tokenizer, config.context_length),
                           final={}, steps_done=step, train_seconds=timing["train_seconds"])

    # ---- the end: a final evaluation on a larger fresh set, model.npz, plots
    final = evaluate(step, final=True)
    if final is None:  # a CSV run without --val-data: the record only marks the end
        final = {"kind": "final", "step": step}
        log(f"final (step {step}): no validation data was given; pass --val-data VAL.csv (image-caption pairs "
            f"kept out of training) for retrieval R@1/5/10, or run: miniclip eval {run_dir} --data VAL.csv")
    else:
        seen = (f"{config.final_eval_images}+{config.final_eval_heldout_images} fresh images"
                if config.train_data is None else config.val_data)
        log(eval_line(final).replace(f"step {step:>5}", f"final (step {step}, {seen})"))
    write(final)
    metrics.close()
    save_checkpoint(os.path.join(run_dir, MODEL_FILE), model_state=model.state_dict(), step=step,
                    config=asdict(config), tokenizer_merges=tokenizer.merges_text(), extra={"model_args": model_args})
    save_timing()
    if config.plots:
        plot_run(run_dir)
    return TrainResult(run_dir=run_dir, model=model, tokenizer=ContextTokenizer(tokenizer, config.context_length),
                       final=final, steps_done=step, train_seconds=timing["train_seconds"])


# CSV runs: --val-data pairs used at each evaluation, and at the final one (as ``miniclip eval --data``)
CSV_EVAL_PAIRS = 256
CSV_FINAL_EVAL_PAIRS = 1000


def _csv_dataset(path, config, tokenizer=None, log=None):
    """``CsvDataset`` of ``path`` with the run's CSV options (columns, separator, --skip-bad-rows, context)."""
    from ..data import CsvDataset
    return CsvDataset(path, img_key=config.csv_img_key, caption_key=config.csv_caption_key, sep=config.csv_separator,
                      tokenizer=tokenizer, context_length=config.context_length, skip_bad_rows=config.skip_bad_rows,
                      log=log)


def _recalls(record, direction):
    """``"12.5/40.0/60.0"``: recall@1/5/10 of ``direction`` ("image_to_text" or "text_to_image") in percent."""
    return "/".join(f"{100 * record[f'retrieval_{direction}_R@{k}']:.1f}" for k in (1, 5, 10))


def _check_held_out(train_dataset, val_dataset):
    """Refuse --val-data that shares images with --train-data: retrieval on training pairs is no validation."""
    from ..data import CsvDataError
    trained = {p.resolve() for p in train_dataset.paths}
    shared = [line for p, line in zip(val_dataset.paths, val_dataset.lines) if p.resolve() in trained]
    if shared:
        raise CsvDataError(f"{val_dataset.csv_path}: {len(shared)} of {len(val_dataset)} rows use images of "
                           f"--train-data {train_dataset.csv_path} (first: line {shared[0]}); validation pairs "
                           f"must be kept out of training")


def _evaluate_csv(model, tokenizer, config, dataset, preprocess, n=CSV_EVAL_PAIRS):
    """Retrieval recall@k and the eval loss on the first ``n`` rows of a validation CSV (``--val-data``
    during training, ``miniclip eval --data`` after): pairs the model never trained on."""
    n = min(n, len(dataset))
    images = np.stack([preprocess(dataset[i][0]) for i in range(n)])
    captions = [dataset[i][1] for i in range(n)]
    tok = ContextTokenizer(tokenizer, config.context_length)
    tokens = tok(captions)  # (n, T): every caption fits (CsvDataset checked it with this tokenizer)
    similarity = image_text_similarity(model, images, tokens)
    record = {"val_pairs": n, "eval_loss": _eval_loss(model, images, tokens, config, config.batch_size)}
    record.update({f"retrieval_{k}": v for k, v in retrieval_metrics(similarity).items()})
    return record, {"similarity": similarity[:32, :32], "similarity_captions": np.array(captions[:32])}


def evaluate_checkpoint(path, images=None, heldout_images=None, seed=None, data=None, csv_img_key="filepath",
                        csv_caption_key="title", csv_separator=",", skip_bad_rows=False, pairs=CSV_FINAL_EVAL_PAIRS):
    """What ``miniclip eval`` prints: zero-shot top-1/top-5 over the 48 shapes names (all, and the
    held-out pairs separately) in the world the model was trained on, top-1 on each held-out style
    (half as many images), and retrieval recall@k on fresh shapes pairs; with ``data`` (a CSV),
    retrieval recall@k on its first ``pairs`` rows instead (a model trained on a CSV needs ``data``:
    the shapes prompts are not its words). Returns a dict of metrics.

    ``images``, ``heldout_images`` and ``seed`` default to those of the run's final evaluation, so
    that, by default, the numbers are the ones of training's final line."""
    from ..api import is_miniclip_checkpoint, load, resolve_model_path
    path = resolve_model_path(path)
    model, preprocess, tokenizer = load(path)
    if is_miniclip_checkpoint(path):
        ckpt_config = load_checkpoint(path).config or {}
    else:  # a converted OpenAI checkpoint has no run config: shapes at the model's resolution and context
        ckpt_config = {"image_resolution": model.image_resolution, "context_length": model.context_length}
    config = TrainConfig.from_dict({k: v for k, v in ckpt_config.items() if k != "out"})
    if data is not None:
        if isinstance(pairs, bool) or not isinstance(pairs, int) or pairs < 1:
            raise ValueError(f"--pairs: expected an integer >= 1 (CSV rows used for retrieval), got {pairs!r}")
        options = replace(config, csv_img_key=csv_img_key, csv_caption_key=csv_caption_key,
                          csv_separator=csv_separator, skip_bad_rows=skip_bad_rows)
        dataset = _csv_dataset(data, options, tokenizer.tokenizer)
        record, _ = _evaluate_csv(model, tokenizer.tokenizer, config, dataset, preprocess, n=pairs)
        record["pairs"] = record.pop("val_pairs")
        return {"data": str(data), **record}
    if config.train_data is not None:
        raise ValueError(f"{path} was trained on a CSV ({config.train_data}), not on the shapes world: pass "
                         f"--data VAL.csv (image-caption pairs kept out of training) for retrieval R@1/5/10")
    final = (config.final_eval_images, config.final_eval_heldout_images, config.seed + FINAL_EVAL_SEED_OFFSET)
    images, heldout_images, seed = (given if given is not None else default
                                    for given, default in zip((images, heldout_images, seed), final))
    sets = shapes_eval_sets(config, images, heldout_images, seed, preprocess)
    record, _ = evaluate_shapes(model, tokenizer.tokenizer, config, *sets.pop(""), batch_size=256, style_sets=sets)
    return {"world": config.world, "images": images, "heldout_images": heldout_images, "seed": seed,
            "style_images": max(1, images // 2), "style_heldout_images": max(1, heldout_images // 2),
            "final_images": (images, heldout_images, seed) == final, "gallery": min(RETRIEVAL_PAIRS, images),
            "loss_batch": min(config.batch_size, images), **record}
