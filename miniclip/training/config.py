"""TrainConfig: everything a run depends on, validated, saved as ``config.json`` in the run folder.

The defaults are the recipe of ``miniclip train`` (README: "The default run"). An invalid value raises
``ValueError`` naming the field, what was expected and what was given.
"""

import json
import math
import os
from dataclasses import asdict, dataclass, fields

from ..loss import SIGLIP_INIT_LOGIT_BIAS, SIGLIP_INIT_LOGIT_SCALE, clip_loss, siglip_loss


@dataclass
class TrainConfig:
    """Everything a run depends on; saved as ``config.json`` in the run folder.

    The defaults are the recipe of ``miniclip train`` (see README: "The default run"). Validation
    happens in ``__post_init__``; an error names the field, what was expected and what was given.
    """
    # where
    out: str = None                   # run folder; default runs/shapes-<n>, the first that is free
    # optimization
    steps: int = 2200
    batch_size: int = 128
    lr: float = 3e-3
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
    vision_width: int = 16
    vision_layers: tuple = (1, 1, 1, 1)  # four stage depths: CLIP's ModifiedResNet; an int: ViT blocks
    vision_heads: int = 2             # the ResNet's attention pool (None: the original's rule) or the ViT's heads
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
    # data parallelism: batch_size is the global batch, split over the ranks
    processes: int = 1                # ranks started on this machine (local_world.py), each with `threads`;
    # None (the `miniclip train` command's default): 2 on a machine with 2 or more cores when the batch
    # splits evenly, else 1. Not used under MPI (mpiexec -n P miniclip train --distributed).
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

        if isinstance(self.vision_layers, list):  # read back from config.json
            self.vision_layers = tuple(self.vision_layers)
        need("vision_layers", isinstance(self.vision_layers, int) and not isinstance(self.vision_layers, bool) or (
            isinstance(self.vision_layers, tuple) and len(self.vision_layers) == 4
            and all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in self.vision_layers)),
            "an integer >= 1 (ViT blocks) or four stage depths >= 1 (a ModifiedResNet)")
        for name in ("steps", "batch_size", "image_resolution", "vision_patch_size", "vision_width",
                     *(() if self.resnet else ("vision_layers",)), "embed_dim", "transformer_width", "transformer_layers",
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
        if self.resnet:  # stem and stages halve the picture 5 times; the pool's width is 32 * vision_width
            need("image_resolution", self.image_resolution % 32 == 0, "a multiple of 32 for a ModifiedResNet")
            need("vision_heads", self.vision_heads is None or (
                isinstance(self.vision_heads, int) and self.vision_heads >= 1
                and 32 * self.vision_width % self.vision_heads == 0),
                f"None or a divisor of the attention pool's width 32 * vision_width = {32 * self.vision_width}")
        else:
            positive_int("vision_heads")
            need("vision_width", self.vision_width % self.vision_heads == 0,
                 f"a multiple of vision_heads={self.vision_heads}")
        need("transformer_width", self.transformer_width % self.transformer_heads == 0,
             f"a multiple of transformer_heads={self.transformer_heads}")
        need("vocab_size", isinstance(self.vocab_size, int) and self.vocab_size >= 514,
             "an integer >= 514 (256 bytes, 256 bytes ending a word, 2 special tokens)")
        need("data_workers", self.data_workers in (0, 1), "0 (a thread) or 1 (a process)")
        if self.processes is None:  # as many ranks as cores, up to 2, when the batch splits evenly
            cores = os.cpu_count() or 1
            self.processes = 2 if cores >= 2 and self.batch_size % 2 == 0 and self.objective == "clip" else 1
        positive_int("processes")
        need("processes", self.batch_size % self.processes == 0,
             f"a divisor of batch_size={self.batch_size} (each rank takes an equal shard of the batch)")
        need("processes", self.processes == 1 or self.objective == "clip",
             "1 for objective='supervised' (the baseline trains in one process)")
        need("threads", self.threads is None or (isinstance(self.threads, int) and self.threads >= 1),
             "None or an integer >= 1")
        need("train_data", self.train_data is None or isinstance(self.train_data, str), "None or a CSV path")
        need("world", self.world in ("diverse", "classic"), "'diverse' or 'classic'")
        need("val_data", self.val_data is None or (isinstance(self.val_data, str) and self.train_data is not None),
             "None, or a CSV path given together with TrainConfig.train_data (the shapes world draws its "
             "own evaluation images)")
        need("local_loss", isinstance(self.local_loss, bool), "True or False")

    @property
    def resnet(self):
        """True when the image tower is a ModifiedResNet (``vision_layers`` four stage depths)."""
        return isinstance(self.vision_layers, (tuple, list))

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

    def loss_fn(self):
        """``clip_loss`` or ``siglip_loss``, as ``loss`` says."""
        return siglip_loss if self.loss == "siglip" else clip_loss

    def csv_dataset(self, path, tokenizer=None, log=None):
        """``CsvDataset`` of ``path`` with the run's CSV options (columns, separator, --skip-bad-rows, context)."""
        from ..data import CsvDataset
        return CsvDataset(path, img_key=self.csv_img_key, caption_key=self.csv_caption_key, sep=self.csv_separator,
                          tokenizer=tokenizer, context_length=self.context_length, skip_bad_rows=self.skip_bad_rows,
                          log=log)
