"""The ``miniclip`` command: one entry point, argparse subcommands.

Each subcommand is a thin layer over a plain function that tests and tutorials
call too.
"""

import argparse
import json
import os
import sys


def _cmd_gradcheck(args):
    from . import gradcheck_suite
    from .backend import set_backend

    if args.backend:
        set_backend(args.backend)
    cases = gradcheck_suite.all_cases()
    if args.only:
        cases = [c for c in cases if any(word in c.name for word in args.only)]
        if not cases:
            raise SystemExit(f"miniclip gradcheck: no case matches {args.only}")
    failures = gradcheck_suite.run(cases, seed=args.seed)
    return 1 if failures else 0


def _cmd_info(args):
    from . import build_info

    print(json.dumps(build_info(), indent=2))
    return 0


# ------------------------------------------------------------------- train / eval / zeroshot / plot
# (flag, TrainConfig field, type, metavar, help); defaults come from TrainConfig so --help shows the recipe
TRAIN_OPTIONS = (
    ("--out", "out", str, "DIR", "run folder (default: runs/shapes-N, the first free N)"),
    ("--steps", "steps", int, "N", "optimizer steps"),
    ("--batch-size", "batch_size", int, "B", "image-caption pairs per step (the contrastive batch)"),
    ("--lr", "lr", float, "LR", "peak learning rate (linear warmup, then cosine decay to 0)"),
    ("--warmup-steps", "warmup_steps", int, "N", "steps of linear learning-rate warmup (default: a tenth "
                                                 "of --steps)"),
    ("--weight-decay", "weight_decay", float, "WD", "AdamW decoupled weight decay (not on gains, biases, "
                                                    "logit_scale, class/positional embeddings)"),
    ("--grad-clip", "grad_clip", float, "NORM", "clip the global gradient norm to NORM (default: off)"),
    ("--image-resolution", "image_resolution", int, "R", "image side in pixels"),
    ("--patch-size", "vision_patch_size", int, "P", "ViT patch size (R must be a multiple)"),
    ("--vision-width", "vision_width", int, "W", "image transformer width"),
    ("--vision-layers", "vision_layers", int, "N", "image transformer blocks"),
    ("--vision-heads", "vision_heads", int, "H", "image attention heads"),
    ("--text-width", "transformer_width", int, "W", "text transformer width"),
    ("--text-layers", "transformer_layers", int, "N", "text transformer blocks"),
    ("--text-heads", "transformer_heads", int, "H", "text attention heads"),
    ("--embed-dim", "embed_dim", int, "E", "shared embedding dimension"),
    ("--context-length", "context_length", int, "T", "text tokens per caption, with start and end"),
    ("--vocab-size", "vocab_size", int, "V", "BPE vocabulary size learned from the captions"),
    ("--train-data", "train_data", str, "FILE.csv", "train on an image-caption CSV instead of the shapes world"),
    ("--csv-img-key", "csv_img_key", str, "COLUMN", "CSV column with image paths (relative to the CSV)"),
    ("--csv-caption-key", "csv_caption_key", str, "COLUMN", "CSV column with captions"),
    ("--csv-separator", "csv_separator", str, "SEP", "CSV field separator"),
    ("--loss", "loss", str, "{clip,siglip}", "contrastive loss: CLIP's softmax InfoNCE or SigLIP's sigmoid"),
    ("--init-temperature", "init_temperature", float, "TAU", "starting temperature tau (learned; logits = "
                                                             "cosine / tau); default 0.07 for clip, 0.1 for siglip"),
    ("--dtype", "dtype", str, "{float32,float64}", "floating-point type of the model"),
    ("--seed", "seed", int, "S", "seed of the initialization and of the data stream"),
    ("--threads", "threads", int, "N", "compute threads for BLAS and the compiled kernels; a second "
                                       "thread always draws the next batch"),
    ("--data-workers", "data_workers", int, "N", "1: draw batches in a separate process (the default of this "
                                                "command); 0: in a thread of the training process"),
    ("--eval-every", "eval_every", int, "N", "steps between evaluations"),
    ("--checkpoint-every", "checkpoint_every", int, "N", "steps between checkpoints"),
)

# where the command's default differs from TrainConfig's (a process is safe here: main() is guarded)
CLI_DEFAULTS = {"data_workers": 1}


def _add_train_parser(sub):
    from .train import TrainConfig

    defaults = TrainConfig.__dataclass_fields__
    p = sub.add_parser(
        "train", help="train a CLIP (with no options: the default toy CLIP on the shapes world)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a CLIP from scratch on the CPU. With no options it trains the default toy model on the\n"
                    "shapes world (colored shapes with captions) in a few minutes, shows a progress bar and a\n"
                    "periodic evaluation line, and leaves runs/<name>/ with config.json, metrics.jsonl,\n"
                    "model.npz (for miniclip.load), checkpoints/ and plots. Ctrl-C saves a checkpoint;\n"
                    "`miniclip train --resume runs/<name>` continues exactly where it stopped.",
        epilog="examples:\n  miniclip train\n  miniclip train --steps 200 --out runs/quick\n"
               "  miniclip train --resume runs/shapes-1\n"
               "  miniclip train --train-data my_pairs.csv --csv-img-key filepath --csv-caption-key title")
    for flag, name, typ, metavar, text in TRAIN_OPTIONS:
        default = defaults[name].default
        kwargs = {"choices": metavar.strip("{}").split(",")} if metavar.startswith("{") else {"metavar": metavar}
        default = CLI_DEFAULTS.get(name, default)
        shown = "" if default is None else f" (default: {default})"
        p.add_argument(flag, dest=name, type=typ, default=None, help=text + shown, **kwargs)
    p.add_argument("--skip-bad-rows", dest="skip_bad_rows", action="store_true", default=None,
                   help="skip unusable CSV rows with a warning that lists them (default: stop at the first)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its newest checkpoint "
                                                       "(its saved config is used)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")
    p.add_argument("--no-plots", action="store_true", help="do not draw the PNG plots at the end")
    # distributed (miniclip/distributed.py): data parallelism over MPI ranks
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel training over MPI: run as `mpiexec -n P miniclip train --distributed`; "
                        "--batch-size is the global batch, split over the P ranks (needs pip install -e \".[mpi]\")")
    p.add_argument("--local-loss", dest="local_loss", action="store_true", default=None,
                   help="with --distributed: each rank computes only its rows of the logits against all columns "
                        "(open_clip's --local-loss; same loss and gradients, less work per rank)")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args):
    from .checkpoint import CheckpointError
    from .distributed import DistributedUnavailableError, init_distributed
    from .train import NonFiniteError, TrainConfig, train

    given = {name: getattr(args, name) for _, name, *_ in TRAIN_OPTIONS if getattr(args, name) is not None}
    if args.skip_bad_rows:
        given["skip_bad_rows"] = True
    if args.local_loss:
        given["local_loss"] = True
    try:  # distributed: MPI when asked (--distributed) or when started by mpiexec; else one process
        world = init_distributed(required=args.distributed)
    except DistributedUnavailableError as exc:
        print(f"miniclip train: {exc}", file=sys.stderr)
        return 1
    if args.distributed and world.size == 1:
        print("miniclip train --distributed: one rank only; start P ranks with `mpiexec -n P miniclip train "
              "--distributed`", file=sys.stderr)
    try:
        if args.resume:
            ignored = sorted(given)
            if ignored:
                print(f"miniclip train --resume: using the run's saved config; ignoring {ignored}", file=sys.stderr)
            config = TrainConfig(out=args.resume, progress=not args.no_progress, plots=not args.no_plots)
            result = train(config, resume=True, world=world)
        else:
            config = TrainConfig(**{**CLI_DEFAULTS, **given}, progress=not args.no_progress, plots=not args.no_plots)
            result = train(config, world=world)
    except KeyboardInterrupt:
        return 130
    except (ValueError, FileNotFoundError, FileExistsError, CheckpointError, NonFiniteError) as exc:
        print(f"miniclip train: {exc}", file=sys.stderr)
        return 1
    if not world.is_main:  # distributed: rank 0 reports
        return 0
    print(f"run folder: {result.run_dir}  (model: {result.run_dir}/model.npz; "
          f"plots: miniclip plot {result.run_dir})")
    return 0


def _cmd_eval(args):
    from .train import evaluate_checkpoint

    metrics = evaluate_checkpoint(args.checkpoint, images=args.images, heldout_images=args.heldout_images,
                                  seed=args.seed, data=args.data, csv_img_key=args.csv_img_key,
                                  csv_caption_key=args.csv_caption_key, csv_separator=args.csv_separator,
                                  skip_bad_rows=args.skip_bad_rows, pairs=args.pairs)
    if args.json:
        print(json.dumps(metrics, indent=2))
        return 0
    if "zeroshot_top1_all" in metrics:
        print(f"zero-shot, all 48 names ({metrics['images']} fresh images): top-1 "
              f"{100 * metrics['zeroshot_top1_all']:.1f}%  top-5 {100 * metrics['zeroshot_top5_all']:.1f}%")
        print(f"zero-shot, held-out pairs ({metrics['heldout_images']} fresh images): top-1 "
              f"{100 * metrics['zeroshot_top1_heldout']:.1f}%  top-5 {100 * metrics['zeroshot_top5_heldout']:.1f}%")
    for direction in ("image_to_text", "text_to_image"):
        r = {k: metrics[f"retrieval_{direction}_{k}"] for k in ("R@1", "R@5", "R@10", "mean_rank", "median_rank")}
        print(f"retrieval {direction.replace('_', ' ')}: R@1 {100 * r['R@1']:.1f}%  R@5 {100 * r['R@5']:.1f}%  "
              f"R@10 {100 * r['R@10']:.1f}%  mean rank {r['mean_rank']:.1f}  median rank {r['median_rank']:.0f}")
    return 0


def _cmd_zeroshot(args):
    import numpy as np
    from PIL import Image

    from .api import load
    from .evaluate import zero_shot_classifier, zero_shot_probabilities

    labels = [label.strip() for label in args.labels.split(",") if label.strip()]
    if len(labels) < 2:
        raise SystemExit(f"miniclip zeroshot: --labels needs at least two comma-separated names, got {args.labels!r}")
    templates = args.template or ["{}"]
    model, preprocess, tokenizer = load(args.checkpoint)
    images = []
    for path in args.images:
        try:
            with Image.open(path) as im:
                images.append(preprocess(im.convert("RGB")))
        except (OSError, ValueError) as exc:
            raise SystemExit(f"miniclip zeroshot: cannot read image {path!r}: {exc}") from None
    classifier = zero_shot_classifier(model, tokenizer, labels, templates)
    probs = zero_shot_probabilities(model, np.stack(images), classifier)
    for path, p in zip(args.images, probs):
        order = np.argsort(-p, kind="stable")
        print(path)
        for i in order[:args.top]:
            print(f"  {100 * p[i]:6.2f}%  {labels[i]}")
    return 0


def _cmd_plot(args):
    from .plots import plot_run

    for path in plot_run(args.run_dir):
        print(path)
    return 0


def _add_eval_parsers(sub):
    p = sub.add_parser("eval", help="zero-shot and retrieval evaluation of a trained model",
                       description="Evaluate a model.npz, checkpoint or run folder: zero-shot top-1/top-5 over "
                                   "all 48 shapes names and over the held-out pairs separately (prompt-template "
                                   "ensembling), and image<->text recall@1/5/10 on fresh image-caption pairs; with "
                                   "--data, recall@k on a CSV dataset.")
    p.add_argument("checkpoint", help="model.npz, checkpoints/step_*.npz, or a run folder")
    p.add_argument("--images", type=int, default=2400, help="fresh images over all names (default: 2400)")
    p.add_argument("--heldout-images", type=int, default=800, help="fresh held-out-pair images (default: 800)")
    p.add_argument("--seed", type=int, default=12345, help="seed of the fresh images (default: 12345)")
    p.add_argument("--data", metavar="FILE.csv", help="evaluate retrieval on this image-caption CSV instead")
    p.add_argument("--pairs", type=int, default=1000, help="CSV rows used for retrieval (default: 1000)")
    p.add_argument("--csv-img-key", default="filepath", help="CSV image-path column (default: filepath)")
    p.add_argument("--csv-caption-key", default="title", help="CSV caption column (default: title)")
    p.add_argument("--csv-separator", default=",", help="CSV separator (default: ,)")
    p.add_argument("--skip-bad-rows", action="store_true", help="skip unusable CSV rows with a warning")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("zeroshot", help="classify images among labels you give",
                       description="Print each image's probabilities over --labels: softmax of 100 x cosine "
                                   "similarity between the image and each label's text embedding.",
                       epilog='example: miniclip zeroshot runs/shapes-1 img1.png img2.png '
                              '--labels "red circle,blue star,green square"')
    p.add_argument("checkpoint", help="model.npz, checkpoints/step_*.npz, or a run folder")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    p.add_argument("--labels", required=True, help="comma-separated class names")
    p.add_argument("--template", action="append", metavar="TEXT",
                   help="prompt template with {} for the label; repeat to ensemble (default: the label alone)")
    p.add_argument("--top", type=int, default=5, help="labels printed per image (default: 5)")
    p.set_defaults(func=_cmd_zeroshot)

    p = sub.add_parser("plot", help="redraw a run's plots from its metrics.jsonl",
                       description="Redraw loss, learning rate and temperature, zero-shot accuracy, similarity, "
                                   "confusion and sample plots of RUN_DIR as PNGs inside it.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.set_defaults(func=_cmd_plot)

def _cmd_convert(args):
    from .model.convert import convert_checkpoint

    out = convert_checkpoint(args.model, args.out, vocab=args.vocab, dtype=args.dtype)
    print(f"wrote {out}")
    return 0


def _cmd_data(args):
    from .data.shapes import run_data_command

    return run_data_command(args)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="miniclip",
        description="miniclip: a from-scratch CLIP in NumPy and Cython. "
                    "Run `miniclip <command> --help` for each command's options.")
    sub = parser.add_subparsers(dest="command", metavar="<command>")

    p = sub.add_parser("gradcheck", help="prove every op's backward against finite differences",
                       description="Gradient-check every op (and layer) in float64 with central "
                                   "differences and a random upstream gradient; print a table.")
    p.add_argument("--only", nargs="+", metavar="NAME", help="check only cases whose name contains NAME")
    p.add_argument("--backend", choices=("numpy", "compiled"), help="kernels to check (default: active)")
    p.add_argument("--seed", type=int, default=0, help="seed of the inputs and upstream gradients")
    p.set_defaults(func=_cmd_gradcheck)

    _add_train_parser(sub)
    _add_eval_parsers(sub)

    p = sub.add_parser("convert", help="convert an original OpenAI CLIP checkpoint (.pt) to .npz",
                       description="Convert an original CLIP checkpoint (TorchScript archive or plain "
                                   "state dict) into an .npz that miniclip.build_model loads. Needs "
                                   "PyTorch only for reading the .pt file (pip install torch).")
    p.add_argument("model", help="the .pt file, e.g. ViT-B-32.pt")
    p.add_argument("out", help="the .npz to write (atomically)")
    p.add_argument("--vocab", metavar="FILE", help="the original bpe_simple_vocab_16e6.txt.gz: store the tokenizer "
                                                   "in the .npz, so that miniclip.load / zeroshot / eval can read text")
    p.add_argument("--dtype", choices=("float32", "float16", "float64"),
                   help="store the weights as this type (default: float16 becomes float32, the released "
                        "files' float16 weights as miniclip computes them; others are kept)")
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser("data", help="the shapes world: save a grid of samples, or export PNGs + CSV",
                       description="Draw the built-in shapes world. `miniclip data grid out.png` saves "
                                   "a grid of samples with their captions; `miniclip data export DIR "
                                   "--n N` writes N PNGs and a captions CSV (open_clip's convention).")
    from .data.shapes import add_data_commands
    add_data_commands(p.add_subparsers(dest="data_command", required=True, metavar="{grid,export}"))
    p.set_defaults(func=_cmd_data)

    p = sub.add_parser("info", help="print what was built (compiled extension, OpenMP, threads, BLAS)")
    p.set_defaults(func=_cmd_info)
    return parser


# Errors a user can cause (a missing file, a bad value): one clear line, no traceback.
# Set MINICLIP_TRACEBACK=1 to see the traceback anyway.
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, IsADirectoryError, PermissionError, ImportError)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except USER_ERRORS as exc:
        if os.environ.get("MINICLIP_TRACEBACK"):
            raise
        print(f"miniclip {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
