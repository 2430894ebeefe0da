"""The ``miniclip`` command: one entry point, argparse subcommands.

Each subcommand is a thin layer over a plain function that tests and tutorials
call too.
"""

import argparse
import errno
import json
import os
import re
import sys


def _cmd_gradcheck(args):
    from .backend import set_backend
    from .tools import gradcheck_suite
    from .tools.model_gradcheck_cases import all_cases

    if args.backend:
        set_backend(args.backend)
    cases = all_cases()
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
def vision_layers_arg(text):
    """``--vision-layers``: "3" (ViT blocks) or "1,1,1,1" (a ModifiedResNet's four stage depths)."""
    try:
        depths = tuple(int(part) for part in text.split(","))
    except ValueError:
        depths = ()
    if len(depths) == 1:
        return depths[0]
    if len(depths) != 4:
        raise argparse.ArgumentTypeError(f"expected an integer (ViT blocks) or four comma-separated stage "
                                         f"depths such as 1,1,1,1 (a ModifiedResNet), got {text!r}")
    return depths


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
    ("--vision-width", "vision_width", int, "W", "image tower width (the ResNet's stem; the ViT's "
                                                "residual stream)"),
    ("--vision-layers", "vision_layers", vision_layers_arg, "N", "four comma-separated stage depths: "
                                                                  "CLIP's ModifiedResNet; one number: a Vision "
                                                                  "Transformer of that many blocks"),
    ("--vision-heads", "vision_heads", int, "H", "image attention heads (a ModifiedResNet: its attention "
                                                 "pool's)"),
    ("--text-width", "transformer_width", int, "W", "text transformer width"),
    ("--text-layers", "transformer_layers", int, "N", "text transformer blocks"),
    ("--text-heads", "transformer_heads", int, "H", "text attention heads"),
    ("--embed-dim", "embed_dim", int, "E", "shared embedding dimension"),
    ("--context-length", "context_length", int, "T", "text tokens per caption, with start and end"),
    ("--vocab-size", "vocab_size", int, "V", "BPE vocabulary size learned from the captions"),
    ("--world", "world", str, "{diverse,classic}", "the shapes world's styles: diverse (filled, outline, shaded, "
                                                    "sketch; many backgrounds, blur, JPEG, noise) or classic "
                                                    "(one style: filled on dark noise)"),
    ("--train-data", "train_data", str, "FILE.csv", "train on an image-caption CSV instead of the shapes world"),
    ("--val-data", "val_data", str, "FILE.csv", "with --train-data: a second CSV, never trained on, for retrieval "
                                                "R@1/5/10 at each evaluation"),
    ("--csv-img-key", "csv_img_key", str, "COLUMN", "CSV column with image paths (relative to the CSV)"),
    ("--csv-caption-key", "csv_caption_key", str, "COLUMN", "CSV column with captions"),
    ("--csv-separator", "csv_separator", str, "SEP", "CSV field separator"),
    ("--loss", "loss", str, "{clip,siglip}", "contrastive loss: CLIP's softmax InfoNCE or SigLIP's sigmoid"),
    ("--objective", "objective", str, "{clip,supervised}", "clip, or supervised: the baseline of tutorial 12, "
                                                           "the same image tower with a linear head trained on "
                                                           "the 48 class labels"),
    ("--init-temperature", "init_temperature", float, "TAU", "starting temperature tau (learned; logits = "
                                                             "cosine / tau); default 0.07 for clip, 0.1 for siglip"),
    ("--dtype", "dtype", str, "{float32,float64}", "floating-point type of the model"),
    ("--seed", "seed", int, "S", "seed of the initialization and of the data stream"),
    ("--threads", "threads", int, "N", "compute threads for BLAS and the compiled kernels, in each rank "
                                       "(--processes); the next batches are drawn beside them"),
    ("--data-workers", "data_workers", int, "N", "1: draw batches in a separate process (the default of this "
                                                "command); 0: in a thread of the training process"),
    ("--processes", "processes", int, "P", "data-parallel ranks on this machine, no MPI needed: each trains on "
                                           "batch/P pairs of every batch (P must divide --batch-size) with --threads "
                                           "threads; P ranks train the one-process run but for BatchNorm, which "
                                           "normalizes over each rank's pairs (default: 2 on a machine with 2 or "
                                           "more cores, else 1)"),
    ("--eval-every", "eval_every", int, "N", "steps between evaluations"),
    ("--checkpoint-every", "checkpoint_every", int, "N", "steps between checkpoints"),
)

# where the command's default differs from TrainConfig's (a process is safe here: main() is guarded)
CLI_DEFAULTS = {"data_workers": 1, "processes": None}


def _add_train_parser(sub):
    from .training import TrainConfig

    defaults = TrainConfig.__dataclass_fields__
    p = sub.add_parser(
        "train", help="train a CLIP (with no options: the default toy CLIP on the shapes world)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a CLIP from scratch on the CPU. With no options it trains the default toy model on the\n"
                    "shapes world (colored shapes with captions) in a few minutes, shows a progress bar and a\n"
                    "periodic evaluation line, and leaves runs/<name>/ with config.json, metrics.jsonl,\n"
                    "model.npz (for miniclip.load), checkpoints/ and plots. Ctrl-C or SIGTERM saves a checkpoint;\n"
                    "`miniclip train --resume runs/<name>` continues exactly where it stopped. On a machine with\n"
                    "2 or more cores it trains on 2 processes, each on half of every batch (--processes).",
        epilog="examples:\n  miniclip train\n  miniclip train --steps 200 --out runs/quick\n"
               "  miniclip train --resume runs/shapes-1\n"
               "  miniclip train --train-data my_pairs.csv --val-data my_val.csv --csv-img-key filepath "
               "--csv-caption-key title")
    for flag, name, typ, metavar, text in TRAIN_OPTIONS:
        default = defaults[name].default
        kwargs = {"choices": metavar.strip("{}").split(",")} if metavar.startswith("{") else {"metavar": metavar}
        default = CLI_DEFAULTS.get(name, default)
        if isinstance(default, tuple):  # stage depths, as typed: 1,1,1,1
            default = ",".join(map(str, default))
        shown = "" if default is None else f" (default: {default})"
        p.add_argument(flag, dest=name, type=typ, default=None, help=text + shown, **kwargs)
    p.add_argument("--skip-bad-rows", dest="skip_bad_rows", action="store_true", default=None,
                   help="skip unusable CSV rows (bytes not UTF-8, missing or unreadable images, empty or too "
                        "long captions) and report them in one line (default: stop at the first)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its newest checkpoint "
                                                       "(its saved config is used)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")
    p.add_argument("--no-plots", action="store_true", help="do not draw the PNG plots at the end")
    # distributed (miniclip/training/distributed.py): data parallelism over MPI ranks
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel training over MPI: run as `mpiexec -n P miniclip train --distributed`; "
                        "--batch-size is the global batch, split over the P ranks (needs pip install -e \".[mpi]\")")
    p.add_argument("--local-loss", dest="local_loss", action="store_true", default=None,
                   help="with several ranks (--processes, --distributed): each rank computes only its rows of "
                        "the logits against all columns "
                        "(open_clip's --local-loss; same loss and gradients, less work per rank)")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args):
    from .training.distributed import DistributedUnavailableError, init_distributed
    from .training import TrainConfig, train

    given = {name: getattr(args, name) for _, name, *_ in TRAIN_OPTIONS if getattr(args, name) is not None}
    if args.skip_bad_rows:
        given["skip_bad_rows"] = True
    if args.local_loss:
        given["local_loss"] = True
    if args.distributed and given.get("processes", 1) != 1:
        print("miniclip train: --processes starts its own ranks on this machine; it cannot be combined with "
              "--distributed (ranks started by mpiexec)", file=sys.stderr)
        return 1
    try:  # distributed: MPI when asked (--distributed) or when started by mpiexec; else one process
        world = init_distributed(required=args.distributed)
    except DistributedUnavailableError as exc:
        print(f"miniclip train: {exc}", file=sys.stderr)
        return 1
    args.reports_errors = world.is_main  # distributed: the ranks meet the same user error; rank 0 says it
    if args.distributed or world.comm is not None:  # under MPI, its ranks are the ranks: none started here
        given["processes"] = 1
    if args.distributed and world.size == 1:
        print("miniclip train --distributed: one rank only; start P ranks with `mpiexec -n P miniclip train "
              "--distributed`", file=sys.stderr)
    config = None
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
    except OSError as exc:
        if config is None or config.out is None or exc.errno in (None, errno.ENOENT, errno.EISDIR, errno.ENOTDIR):
            raise  # not a failed write: the message is enough
        raise _what_was_kept(exc, config.out) from exc
    if not world.is_main:  # distributed: rank 0 reports
        return 0
    print(f"run folder: {result.run_dir}  (model: {result.run_dir}/model.npz; "
          f"plots: miniclip plot {result.run_dir})")
    return 0


def _what_was_kept(exc, run_dir):
    """An OSError while training (a full disk, a read-only file system) as one line that names the
    file and says what is intact: checkpoints are written atomically, so the newest one is whole."""
    from .training.checkpoint import CheckpointManager
    from .training.run_folder import RunFolderError
    from .training.run import CHECKPOINT_DIR

    latest = CheckpointManager(os.path.join(run_dir, CHECKPOINT_DIR)).latest()
    kept = (f"the newest checkpoint {latest} is intact; once fixed, continue with: miniclip train --resume {run_dir}"
            if latest else f"no checkpoint was written yet; once fixed, start again (or --resume {run_dir})")
    return RunFolderError(f"cannot write {exc.filename or run_dir}: {exc.strerror or exc} "
                          f"[errno {exc.errno}]; {kept}")


def _at_least(flag, value, minimum=1):
    if value is not None and value < minimum:
        raise ValueError(f"{flag}: expected an integer >= {minimum}, got {value}")


def _cmd_eval(args):
    from .evaluation.saved import evaluate_checkpoint

    for flag, value in (("--images", args.images), ("--heldout-images", args.heldout_images), ("--pairs", args.pairs)):
        _at_least(flag, value)
    metrics = evaluate_checkpoint(args.checkpoint, images=args.images, heldout_images=args.heldout_images,
                                  seed=args.seed, data=args.data, csv_img_key=args.csv_img_key,
                                  csv_caption_key=args.csv_caption_key, csv_separator=args.csv_separator,
                                  skip_bad_rows=args.skip_bad_rows, pairs=args.pairs)
    if args.json:
        print(json.dumps(metrics, indent=2))
        return 0
    if "supervised_top1_all" in metrics:  # the supervised baseline: its own head, no text, no retrieval
        from .evaluation.runs import supervised_line
        print(supervised_line({"step": metrics.get("step", 0), **metrics}).split(": ", 1)[1]
              + f" ({metrics['images']} + {metrics['heldout_images']} fresh images, seed {metrics['seed']})")
        return 0
    if "zeroshot_top1_all" in metrics:
        print(f"fresh images drawn with seed {metrics['seed']}"
              + (" (those of the run's final evaluation: the numbers match its final line)"
                 if metrics.get("final_images") else " (other images than the run's final line, which used "
                 "the run's own; pass no --seed, --images or --heldout-images to see those)"))
        print(f"zero-shot, all 48 names ({metrics['images']} fresh images): top-1 "
              f"{100 * metrics['zeroshot_top1_all']:.1f}%  top-5 {100 * metrics['zeroshot_top5_all']:.1f}%  "
              f"(in the {metrics['world']} world it was trained on)")
        print(f"zero-shot, held-out pairs ({metrics['heldout_images']} fresh images): top-1 "
              f"{100 * metrics['zeroshot_top1_heldout']:.1f}%  top-5 {100 * metrics['zeroshot_top5_heldout']:.1f}%")
        for style in [k[len("zeroshot_top1_all_"):] for k in metrics if k.startswith("zeroshot_top1_all_")]:
            print(f"zero-shot, held-out style {style} ({metrics['style_images']} + {metrics['style_heldout_images']} "
                  f"images): top-1 all 48 names {100 * metrics[f'zeroshot_top1_all_{style}']:.1f}%  held-out pairs "
                  f"{100 * metrics[f'zeroshot_top1_heldout_{style}']:.1f}%")
    for direction in ("image_to_text", "text_to_image"):
        r = {k: metrics[f"retrieval_{direction}_{k}"] for k in ("R@1", "R@5", "R@10", "mean_rank", "median_rank")}
        print(f"retrieval {direction.replace('_', ' ')}: R@1 {100 * r['R@1']:.1f}%  R@5 {100 * r['R@5']:.1f}%  "
              f"R@10 {100 * r['R@10']:.1f}%  mean rank {r['mean_rank']:.1f}  median rank {r['median_rank']:.0f}")
    batch = f" (the training loss on a batch of {metrics['loss_batch']} of them)" if "loss_batch" in metrics else ""
    print(f"retrieval gallery: {metrics.get('gallery', metrics.get('pairs'))} image-caption pairs; "
          f"eval loss {metrics['eval_loss']:.3f}{batch}")
    return 0


def _cmd_zeroshot(args):
    import numpy as np
    from PIL import Image

    from .api import load
    from .data.transforms import fully_transparent
    from .evaluation.zeroshot import check_template, parse_labels, zero_shot_classifier, zero_shot_probabilities

    labels = parse_labels(args.labels)
    templates = args.template or ["{}"]
    for template in templates:
        check_template(template, flag="--template")
    _at_least("--top", args.top)
    model, preprocess, tokenizer = load(args.checkpoint)
    if not args.truncate:  # a prompt longer than the model's context: say which, and the way out
        for text in (t.format(label) for label in labels for t in templates):
            n = len(tokenizer.encode(text)) + 2
            if n > tokenizer.context_length:
                raise ValueError(f"--labels: the prompt {text!r} takes {n} tokens with start and end, more than "
                                 f"the model's context of {tokenizer.context_length}; shorten it or pass --truncate")
    images = []
    for path in args.images:
        try:
            with Image.open(path) as im:
                transparent = fully_transparent(im)
                if not transparent:
                    images.append(preprocess(im))  # any mode: 16-bit scaled, alpha on black
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read image {path!r}: {exc}") from None
        if transparent:
            raise ValueError(f"image {path!r} is fully transparent: nothing to classify")
    classifier = zero_shot_classifier(model, lambda texts: tokenizer(texts, truncate=args.truncate), labels,
                                      templates)
    probs = zero_shot_probabilities(model, np.stack(images), classifier)
    for path, p in zip(args.images, probs):
        order = np.argsort(-p, kind="stable")
        print(path)
        for i in order[:args.top]:
            print(f"  {100 * p[i]:6.2f}%  {labels[i]}")
    return 0


def _cmd_plot(args):
    from .evaluation.plots import plot_run

    for path in plot_run(args.run_dir):
        print(path)
    return 0


def _cmd_probe(args):
    from .evaluation.fewshot import SHOTS, probe_checkpoint

    if args.shots is not None and args.shots < 1:
        raise ValueError(f"--shots must be a positive number of labeled images per class, got {args.shots}")
    if args.pool < 48 or args.seeds < 1:
        raise ValueError(f"--pool must be >= 48 images and --seeds >= 1, got --pool {args.pool} --seeds {args.seeds}")
    sizes = {"pool": args.pool, "val": args.pool // 4, "test": args.pool // 2, "heldout": args.pool // 6}
    r = probe_checkpoint(args.checkpoint, shots=args.shots, seed=args.seed, few_shot=args.few_shot,
                         seeds=args.seeds, plot=args.plot, sizes=sizes)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    shots = "all" if args.shots is None else args.shots
    print(f"linear probe on frozen image features of {r['model']}: {shots} labeled images per class of the "
          f"40 training pairs (pool {r['pool_images']}), L2 strength {r['l2']:.3g} chosen on {r['val_images']} "
          f"validation images")
    print(f"probe top-1: train {100 * r['train']:.1f}% | val {100 * r['val']:.1f}% | test {100 * r['test']:.1f}% "
          f"({r['test_images']} images) | held-out pairs {100 * r['heldout']:.1f}% (it never saw them labeled)")
    if "head_test" in r:
        print(f"the supervised baseline's own head on the same images: test {100 * r['head_test']:.1f}% | "
              f"held-out pairs {100 * r['head_heldout']:.1f}% (no zero-shot: it has no text encoder)")
    else:
        print(f"zero-shot top-1 on the same images (among all 48 names, no labels): test "
              f"{100 * r['zeroshot_test']:.1f}% | held-out pairs {100 * r['zeroshot_heldout']:.1f}%")
    if args.few_shot:
        print("labels per class | probe test top-1 (mean ± std over seeds)")
        for k in SHOTS:
            if k in r["few_shot_left_out"]:
                print(f"{k:>16} | left out: some class has fewer than {k} images in the pool (raise --pool)")
                continue
            row = r["few_shot"]["all" if k is None else str(k)]
            print(f"{'all' if k is None else k:>16} | {100 * row['mean']:5.1f}% ± {100 * row['std']:.1f}")
        print(f"plot: {r['plot']}")
    return 0


def _cmd_embeddings(args):
    from .evaluation.embedding_space import embedding_report

    if args.images < 2 or not 2 <= args.pairs <= args.images:
        raise ValueError(f"--images must be >= 2 and --pairs in [2, --images], got --images {args.images} "
                         f"--pairs {args.pairs}")
    r = embedding_report(args.checkpoint, n=args.images, pairs=args.pairs, seed=args.seed, plot=args.plot)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    print(f"modality gap of {r['model']}: {r['modality_gap']:.3f} (distance between the centroids of "
          f"{r['images']} normalized image embeddings and their captions'; learned tau {r['learned_temperature']:.4f})")
    print(f"CLIP loss on {r['pairs']} pairs after closing the gap by a fraction (columns), at each temperature:")
    print("     tau | " + " ".join(f"{s:>6.2f}" for s in r["shifts"]))
    for tau, row in zip(r["temperatures"], r["loss"]):
        mark = " (learned)" if abs(tau - round(r["learned_temperature"], 4)) < 1e-12 else ""
        print(f"{tau:8.4f} | " + " ".join(f"{v:6.3f}" for v in row) + mark)
    print(f"plot: {r['plot']}")
    return 0


PROBE_JSON_KEYS = ("model, shots (null: all), l2, train, val, test, heldout (probe top-1 in [0, 1]), "
                   "zeroshot_test, zeroshot_heldout (a supervised baseline: head_test, head_heldout instead), "
                   "pool_images, val_images, test_images, heldout_images; "
                   "with --few-shot: few_shot {k: {mean, std, runs}}, few_shot_left_out (k the pool cannot give) and plot")


def _add_eval_parsers(sub):
    p = sub.add_parser("eval", help="zero-shot and retrieval evaluation of a trained model",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Evaluate a model.npz, checkpoint or run folder: zero-shot top-1/top-5 over "
                                   "all 48 shapes names and over the\nheld-out pairs separately (prompt-template "
                                   "ensembling) in the world it was trained on, zero-shot top-1 on\neach held-out "
                                   "rendering style (never drawn for training: robustness to a distribution shift),\n"
                                   "image<->text recall@1/5/10 on fresh image-caption pairs (a gallery of 256) and the "
                                   "eval loss;\nwith --data, recall@k on a CSV dataset. By default it draws the images "
                                   "of the run's final evaluation,\nso it prints the numbers of training's final line; "
                                   "another --seed, --images or --heldout-images draws\nother images (the numbers then "
                                   "differ by sampling noise).",
                       epilog="--json prints one JSON object; for the shapes world its keys are\n"
                              "  world                           the training world (diverse or classic)\n"
                              "  images, heldout_images          images drawn over all 48 names / of the held-out "
                              "pairs\n"
                              "  style_images, style_heldout_images  the same per held-out style\n"
                              "  seed, final_images              the images' seed; true if they are the run's final "
                              "evaluation's\n"
                              "  gallery, loss_batch             retrieval gallery size; pairs in the eval-loss batch\n"
                              "  zeroshot_top1_all, zeroshot_top5_all          in distribution, all 48 names\n"
                              "  zeroshot_top1_heldout, zeroshot_top5_heldout  in distribution, held-out pairs\n"
                              "  zeroshot_top1_all_<style>, zeroshot_top1_heldout_<style>  each held-out style "
                              "(pixel, matplotlib)\n"
                              "  eval_loss, retrieval_image_to_text_R@1 (R@5, R@10, mean_rank, median_rank), "
                              "retrieval_text_to_image_...\n"
                              "with --data: data, pairs, eval_loss and the retrieval keys.\n"
                              "Accuracies are fractions in [0, 1].")
    p.add_argument("checkpoint", help="model.npz, checkpoints/step_*.npz, or a run folder")
    p.add_argument("--images", type=int, help="fresh images over all names (default: the run's final evaluation's, "
                                              "2400 for the default run)")
    p.add_argument("--heldout-images", type=int, help="fresh held-out-pair images (default: the run's final "
                                                      "evaluation's, 800 for the default run)")
    p.add_argument("--seed", type=int, help="seed of the fresh images (default: the one of the run's final "
                                            "evaluation)")
    p.add_argument("--data", metavar="FILE.csv", help="evaluate retrieval on this image-caption CSV instead")
    p.add_argument("--pairs", type=int, default=1000, help="CSV rows used for retrieval (default: 1000)")
    p.add_argument("--csv-img-key", default="filepath", help="CSV image-path column (default: filepath)")
    p.add_argument("--csv-caption-key", default="title", help="CSV caption column (default: title)")
    p.add_argument("--csv-separator", default=",", help="CSV separator (default: ,)")
    p.add_argument("--skip-bad-rows", action="store_true", help="skip unusable CSV rows and report them in one line")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("probe", help="linear probe of the frozen image features, and few-shot vs zero-shot",
                       description="Fit a multinomial logistic regression (L2, L-BFGS via SciPy, strength "
                                   "chosen on a validation split) on the model's image features of fresh "
                                   "shapes images, and compare it with zero-shot on the same images. "
                                   "--few-shot fits it with 1, 2, 4, 8, 16 and all labeled images per class "
                                   "and draws fewshot.png.",
                       epilog=f"--json keys: {PROBE_JSON_KEYS}")
    p.add_argument("checkpoint", help="model.npz, checkpoints/step_*.npz, or a run folder")
    p.add_argument("--shots", type=int, metavar="K", help="labeled images per class (default: all of --pool)")
    p.add_argument("--few-shot", action="store_true", help="the whole few-shot curve, a table and fewshot.png")
    p.add_argument("--seeds", type=int, default=5, help="draws of the labeled images per k (default: 5)")
    p.add_argument("--pool", type=int, default=4800,
                   help="labeled images drawn for the probe (default: 4800, 120 per class); validation, "
                        "test and held-out sets are a quarter, a half and a sixth of it")
    p.add_argument("--plot", metavar="PNG", help="where --few-shot draws (default: fewshot.png beside the model)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fresh images (default: 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object (keys below)")
    p.set_defaults(func=_cmd_probe)

    p = sub.add_parser("embeddings", help="the modality gap and a 2-D picture of the embedding space",
                       description="Embed fresh shapes images and their captions; print the modality gap "
                                   "(distance between the centroids of the normalized image and text "
                                   "embeddings) and the CLIP loss after closing it partway at several "
                                   "temperatures; draw embedding_space.png (PCA of both modalities).",
                       epilog="--json keys: model, images, pairs, modality_gap, learned_temperature, "
                              "temperatures, shifts, loss (a list per temperature), plot")
    p.add_argument("checkpoint", help="model.npz, checkpoints/step_*.npz, or a run folder")
    p.add_argument("--images", type=int, default=960, help="fresh images and captions (default: 960)")
    p.add_argument("--pairs", type=int, default=256, help="pairs in the loss table (default: 256)")
    p.add_argument("--plot", metavar="PNG", help="default: embedding_space.png beside the model")
    p.add_argument("--seed", type=int, default=0, help="seed of the fresh images (default: 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object (keys below)")
    p.set_defaults(func=_cmd_embeddings)

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
    p.add_argument("--truncate", action="store_true",
                   help="cut prompts longer than the model's context (default: refuse them, naming the label)")
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

    from .apps.commands import add_app_commands  # index, search, tag, serve
    add_app_commands(sub)

    p = sub.add_parser("info", help="print what was built (compiled extension, OpenMP, threads, BLAS)",
                       description="Print, as JSON, what this installation runs on: whether the compiled "
                                   "extension was built and with OpenMP, the compute threads, NumPy's BLAS, and "
                                   "the versions. Paste it into a bug report.")
    p.set_defaults(func=_cmd_info)
    return parser


def user_errors():
    """Errors a user can cause (a missing or broken file, a bad value, a full disk, a busy run folder):
    one clear line, exit code 1, no traceback. Set MINICLIP_TRACEBACK=1 to see the traceback anyway."""
    from .training.checkpoint import CheckpointError
    from .training.run_folder import RunFolderError
    from .training import NonFiniteError
    from .training.local_world import RankFailedError

    return (ValueError, TypeError, OSError, ImportError, CheckpointError, RunFolderError, NonFiniteError,
            RankFailedError)


def user_message(exc):
    """The one line for ``exc``: OS errors as "path: reason", TrainConfig's field names as the flags typed."""
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    text = str(exc)
    if "TrainConfig." not in text:
        return text
    flags = {name: flag for flag, name, *_ in TRAIN_OPTIONS}
    text = re.sub(r"TrainConfig\.(\w+)", lambda m: flags.get(m[1], m[0]), text)
    return re.sub(r"\b(\w+)=", lambda m: f"{flags[m[1]]}=" if m[1] in flags else m[0], text)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except Exception as exc:
        if os.environ.get("MINICLIP_TRACEBACK") or not isinstance(exc, user_errors()):
            raise
        if not getattr(args, "reports_errors", True):
            return 1
        print(f"miniclip {args.command}: error: {user_message(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
