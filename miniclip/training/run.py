"""train(): a run of ``miniclip train``, from its config to a trained model in its run folder.

    the run folder, claimed (one writer, ``run_folder.py``), config.json
    a BPE tokenizer learned from the training captions (or the checkpoint's)
    the model, AdamW and the warmup-cosine schedule (fresh, or from the newest checkpoint)
    the batches (``batches.py``) and the evaluation sets (``evaluation/runs.py``)
    fit(): the loop around train_step, its checkpoints, evaluations, Ctrl-C, progress (``fit.py``)

Reproducibility: batch k is a pure function of (seed, k) -- the shapes world draws sample i from
``default_rng([seed, split, i])`` and a CSV epoch's order from ``default_rng([seed, epoch])`` -- so a
resumed run sees exactly the batches an uninterrupted one would. With the same seed, thread count and
number of processes, ``metrics.jsonl`` is identical byte for byte (wall-clock numbers go to
``timing.json`` instead).

Run folder (``runs/<name>/``): config.json, metrics.jsonl, timing.json, model.npz (weights, model
arguments, tokenizer: what ``miniclip.load`` reads), checkpoints/step_*.npz, eval_arrays.npz, *.png, and
.miniclip-run, the marker and lock that keep one writer per folder (``run_folder.py``). SIGTERM stops
a run like Ctrl-C.
"""

import json
import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import numpy as np

from ..evaluation.plots import METRICS_FILE
from ..evaluation.runs import RunEvaluation, check_held_out
from ..model import CLIP
from ..model.supervised import SupervisedClassifier
from ..tokenizer import BPETokenizer, ContextTokenizer
from ..tools.memory import reuse_freed_memory
from . import run_folder
from .batches import StepBatches
from .checkpoint import CheckpointManager, load_checkpoint
from .config import TrainConfig
from .distributed import World, broadcast_parameters
from .fit import MODEL_FILE, RunFiles, fit, read_records, rewrite_records
from .local_world import start_ranks
from .optim import AdamW, WarmupCosine
from .step import supervised_step, train_step

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"


@dataclass
class TrainResult:
    run_dir: str
    model: object
    tokenizer: object
    final: dict = field(default_factory=dict)   # the final evaluation's metrics
    steps_done: int = 0
    train_seconds: float = 0.0


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
    one-process run's, but for BatchNorm: see below); only rank 0 evaluates and writes the run folder,
    logs and shows progress. Without a world of several ranks, ``config.processes`` > 1 makes this
    process rank 0 of that many ranks on this machine (``local_world.py``), which end with it.

    BatchNorm (in the ModifiedResNet) normalizes over each rank's shard of n = N / P images, as
    PyTorch's DistributedDataParallel without SyncBatchNorm, and the running statistics saved are
    rank 0's: a ResNet run on P ranks is not the one-process run (a ViT run is, up to rounding).
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
    if world.size == 1 and world.comm is None and config.processes > 1:  # ranks of this machine, no MPI
        with start_ranks(config.processes, _train_rank, config, resume) as world:
            return train(config, resume, on_step, log, world)  # as rank 0
    if config.batch_size % world.size:  # distributed: every rank takes an equal shard
        raise ValueError(f"TrainConfig.batch_size: the global batch ({config.batch_size}) must be divisible by "
                         f"the number of ranks ({world.size})")
    if world.size > 1:
        if config.threads is None:  # distributed: share this machine's cores among its ranks, never oversubscribe
            config.threads = max(1, (os.cpu_count() or 1) // world.ranks_on_this_machine())
        log(f"data parallel: {world.size} ranks x {config.batch_size // world.size} pairs = global batch "
            f"{config.batch_size}{' (local loss)' if config.local_loss else ''}, {config.threads} thread(s) per rank")
    with _threads(config.threads), _claim_run_folder(config, resume, world, log) as ckpt, world.abort_on_error():
        return _run(config, ckpt, on_step, log, world)  # distributed: a failing rank (above) ends every rank


def _train_rank(world, config, resume):
    """Rank q > 0 of ``config.processes`` (``start_ranks`` runs it in a new process)."""
    train(config, resume, world=world)


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


def _run(config, ckpt, on_step, log, world):
    """The run in its claimed folder, from ``ckpt`` (None: step 0): what ``fit`` needs, then ``fit``."""
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
    records = read_records(metrics_path)
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
        rewrite_records(metrics_path, records)
    n_params = model.num_parameters()
    if not resume:
        towers = (f"text {config.transformer_layers}x{config.transformer_width}" if config.objective == "clip" else
                  f"supervised baseline: no text tower, a linear head over {model.n_classes} labels")
        if config.resnet:
            vision = (f"images {config.image_resolution}px, vision ModifiedResNet stages "
                      f"{','.join(map(str, config.vision_layers))} width {config.vision_width}")
        else:
            vision = (f"images {config.image_resolution}px patch {config.vision_patch_size} "
                      f"({(config.image_resolution // config.vision_patch_size) ** 2 + 1} tokens), "
                      f"vision {config.vision_layers}x{config.vision_width}")
        log(f"model: {n_params / 1e6:.2f} M parameters, {vision}, {towers}, embed {config.embed_dim}, {config.dtype}")

    # ---- data: the training batches and what the run is evaluated on
    from ..data import Loader, Preprocess
    preprocess = Preprocess(config.image_resolution, train=False, dtype=dtype)
    val_dataset = None
    if config.train_data is None:
        dataset = shapes_train_dataset(config)
        loader = Loader(dataset, config.batch_size, preprocess, tokenizer, context_length=config.context_length,
                        shuffle=False, seed=config.seed, prefetch=0)
        batches = StepBatches(loader, config.steps, shuffled_epochs=False, world=world)
    else:
        from ..data import CsvDataError
        dataset = config.csv_dataset(config.train_data, tokenizer, log=log)
        if len(dataset) < config.batch_size:
            raise CsvDataError(f"{config.train_data} has {dataset.usable_rows()}, fewer than --batch-size "
                               f"{config.batch_size}: a training batch takes that many rows; lower --batch-size "
                               f"or add rows")
        train_pre = Preprocess(config.image_resolution, train=True, dtype=dtype, seed=config.seed)
        loader = Loader(dataset, config.batch_size, train_pre, tokenizer, context_length=config.context_length,
                        shuffle=True, seed=config.seed, drop_last=True, prefetch=0)
        batches = StepBatches(loader, config.steps, shuffled_epochs=True, world=world)
        if config.val_data is not None:
            val_dataset = config.csv_dataset(config.val_data, tokenizer, log=log)
            check_held_out(dataset, val_dataset)
    evaluate = RunEvaluation(model, tokenizer, config, preprocess, val_dataset)

    # ---- the loop
    if config.objective == "supervised":
        def step_fn(batch):
            return supervised_step(model, batch, optimizer, grad_clip=config.grad_clip)
    else:
        loss_fn = config.loss_fn()

        def step_fn(batch):
            return train_step(model, batch, loss_fn, optimizer, world, grad_clip=config.grad_clip,
                              local_loss=config.local_loss)
    run = RunFiles(config, world, manager, records, model, optimizer, tokenizer, model_args, resume, log)
    # under MPI, ranks draw in a thread: a worker process spawned inside an MPI rank can hang at
    # start-up (the child re-imports the launcher's environment) and gains little there
    workers = config.data_workers if world.size == 1 or world.comm is None else 0
    steps_done, final = fit(model, optimizer, schedule, step_fn, batches, evaluate, run, start, on_step, workers)
    return TrainResult(run_dir=run_dir, model=model, tokenizer=ContextTokenizer(tokenizer, config.context_length),
                       final=final, steps_done=steps_done, train_seconds=run.timing["train_seconds"])


def shapes_train_dataset(config):
    """The stream of training samples of a shapes run: never a held-out pair, never a held-out style."""
    shapes = _shapes()
    return shapes.ShapesDataset(config.steps * config.batch_size, seed=config.seed,
                                resolution=config.image_resolution, split="train", styles=shapes.WORLDS[config.world])


def train_tokenizer(config):
    """A BPE tokenizer learned from the training captions (plus the zero-shot prompt templates).

    Raises ``ValueError`` when one of those texts does not fit in ``config.context_length`` tokens,
    before any training starts (rather than at the first batch that holds it).
    """
    if config.train_data is not None:
        dataset = config.csv_dataset(config.train_data, log=_quiet)  # (skipped rows: reported by _run)
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


def _shapes():
    from ..data import shapes  # imported lazily: the data layer pulls in Pillow
    return shapes


def default_run_dir(root="runs", stem="shapes"):
    """``runs/shapes-1``, ``runs/shapes-2``, ...: the first that does not exist."""
    n = 1
    while os.path.exists(os.path.join(root, f"{stem}-{n}")):
        n += 1
    return os.path.join(root, f"{stem}-{n}")


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
