"""Data parallelism on this machine: throughput of ranks vs threads, and accuracy vs global batch size.

    python benchmarks/bench_distributed.py throughput   # 1 rank x 2 threads  vs  2 ranks x 1 thread
    python benchmarks/bench_distributed.py batch-size   # zero-shot accuracy after a fixed number of images
    python benchmarks/bench_distributed.py gather       # the same batch with and without gathering
    python benchmarks/bench_distributed.py all

Needs the [mpi] extra for the 2-rank row (``pip install -e ".[mpi]"``); as root, Open MPI also needs
OMPI_ALLOW_RUN_AS_ROOT=1 and OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 (set here for the child processes).

Throughput: the default model of ``miniclip train`` (float32), a global batch of ``--batch-size``
random images and captions, and the whole training step -- encode the local shard, gather the
features, the loss, backward, all-reduce the gradients, AdamW. Images/s counts the global batch.
Data loading is left out (it is the same work split the same way). Communication time (the two
feature gathers and the gradient all-reduce) is measured on its own, so the table says what the
ranks cost in messages, not only in total.

Batch size: CLIP's contrastive loss asks each image to pick its caption out of the whole batch, so
the batch size sets how many negatives every example sees -- it is part of the objective, not only a
speed knob. The runs here train the same small model on the same number of images with several
global batch sizes (a data-parallel run with P ranks computes exactly the one-process result, see
tests/test_distributed.py, so one process stands for any number of ranks) and report zero-shot top-1.
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}

# the default model of `miniclip train` (TrainConfig's defaults)
DEFAULT_MODEL = dict(embed_dim=128, image_resolution=32, vision_layers=3, vision_width=128, vision_patch_size=4,
                     context_length=16, vocab_size=1024, transformer_width=128, transformer_heads=2,
                     transformer_layers=2, vision_heads=2)


# ------------------------------------------------------------------------------ throughput
def worker(args):
    """One rank (or the only process) of the throughput measurement; rank 0 prints a JSON line."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    from miniclip.training.distributed import (all_reduce_gradients, distributed_model_loss, init_distributed,
                                      local_batch_size)
    from miniclip.model import CLIP
    from miniclip.training.optim import AdamW, clamp_logit_scale

    world = init_distributed(required=args.distributed)
    with world.abort_on_error(), threadpool_limits(limits=args.threads):
        model = CLIP(**DEFAULT_MODEL, dtype=np.float32, seed=0)
        optimizer = AdamW(model.named_parameters(), lr=1e-4)
        n = local_batch_size(args.batch_size, world)
        rng = np.random.default_rng([0, world.rank])  # synthetic shards: throughput does not care what they show
        R, T, V = model.image_resolution, model.context_length, model.vocab_size
        images = rng.standard_normal((n, 3, R, R)).astype(np.float32)
        tokens = rng.integers(1, V - 1, size=(n, T))
        tokens[:, T - 4] = V - 1                     # end-of-text, then padding
        tokens[:, T - 3:] = 0

        def step():
            model.zero_grad()
            loss = distributed_model_loss(model, images, tokens, world)
            loss.backward()
            all_reduce_gradients(model.parameters(), world)
            optimizer.step()
            clamp_logit_scale(model)

        for _ in range(args.warmup):
            step()
        world.barrier()
        world.communication_seconds = 0.0  # the gathers, their reduce-scatters, the gradient all-reduce
        t0 = time.perf_counter()
        for _ in range(args.steps):
            step()
        world.barrier()
        seconds = time.perf_counter() - t0
        comm = world.mean(world.communication_seconds)
        if world.is_main:
            print(json.dumps({"ranks": world.size, "threads": args.threads, "batch_size": args.batch_size,
                              "steps": args.steps, "seconds": seconds,
                              "images_per_second": args.batch_size * args.steps / seconds,
                              "communication_fraction": comm / seconds}), flush=True)


def mpiexec():
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else shutil.which("mpiexec")


def run_worker(ranks, threads, args):
    cmd = [sys.executable, str(HERE), "_worker", "--threads", str(threads), "--batch-size", str(args.batch_size),
           "--steps", str(args.steps), "--warmup", str(args.warmup)]
    env = dict(os.environ, **MPI_ENV, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    if ranks > 1:
        launcher = mpiexec()
        if launcher is None:
            return None
        cmd = [launcher, "--oversubscribe", "-n", str(ranks), "--bind-to", "none", *cmd, "--distributed"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def throughput(args):
    rows = []
    for ranks, threads in ((1, 1), (1, 2), (2, 1)):
        # best of --repeat runs: on a shared machine the fastest run is the one least disturbed
        runs = [run_worker(ranks, threads, args) for _ in range(args.repeat)]
        if runs[0] is None:
            print(f"(skipping {ranks} ranks: no mpiexec; pip install -e \".[mpi]\")")
            continue
        rows.append(max(runs, key=lambda r: r["images_per_second"]))
    base = rows[0]["images_per_second"]
    print(f"\nthroughput, default model, float32, global batch {args.batch_size}, {args.steps} timed steps, "
          f"best of {args.repeat} ({os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f})")
    print(f"{'ranks x threads':>16} {'images/s':>10} {'speed-up':>9} {'communication':>14}")
    for r in rows:
        print(f"{r['ranks']:>9} x {r['threads']:<5} {r['images_per_second']:>10.1f} "
              f"{r['images_per_second'] / base:>8.2f}x {100 * r['communication_fraction']:>13.1f}%")
    return rows


# ------------------------------------------------------------------------------ batch size
def batch_size_sweep(args):
    from miniclip.training import NonFiniteError, TrainConfig, train

    rows = []
    for b in args.batch_sizes:
        steps = args.images // b
        # --lr-scaling sqrt: lr * sqrt(B / 64), the usual rule for Adam when the batch grows (fewer, surer steps)
        lr = args.lr * (math.sqrt(b / 64) if args.lr_scaling == "sqrt" else 1.0)
        with tempfile.TemporaryDirectory() as tmp:
            config = TrainConfig(out=os.path.join(tmp, f"b{b}"), steps=steps, batch_size=b, lr=lr,
                                 warmup_steps=max(1, steps // 10), eval_every=steps, checkpoint_every=steps,
                                 eval_images=480, eval_heldout_images=160, final_eval_images=960,
                                 final_eval_heldout_images=320, threads=args.threads, progress=False,
                                 plots=False, seed=args.seed, **SMALL_MODEL)
            t = time.perf_counter()
            try:
                final = train(config, log=lambda *a, **k: None).final
            except NonFiniteError:  # a learning rate too large for this batch: report it, go on
                final = {key: float("nan") for key in ("zeroshot_top1_all", "zeroshot_top1_heldout",
                                                       "retrieval_image_to_text_R@1")}
            seconds = time.perf_counter() - t
        row = {"batch_size": b, "steps": steps, "images": steps * b, "lr": lr, "seconds": seconds,
               "zeroshot_top1_all": final["zeroshot_top1_all"],
               "zeroshot_top1_heldout": final["zeroshot_top1_heldout"],
               "retrieval_image_to_text_R@1": final["retrieval_image_to_text_R@1"]}
        print(json.dumps(row), flush=True)
        rows.append(row)
    print(f"\nzero-shot top-1 after {args.images} training images (48 names, chance 2.1%), "
          f"lr {args.lr}{' * sqrt(B / 64)' if args.lr_scaling == 'sqrt' else ''}")
    print(f"{'global batch':>12} {'steps':>6} {'lr':>8} {'all 48':>7} {'held-out':>9} {'R@1 i->t':>9} {'seconds':>8}")
    for r in rows:
        print(f"{r['batch_size']:>12} {r['steps']:>6} {r['lr']:>8.2g} {100 * r['zeroshot_top1_all']:>6.1f}% "
              f"{100 * r['zeroshot_top1_heldout']:>8.1f}% {100 * r['retrieval_image_to_text_R@1']:>8.1f}% "
              f"{r['seconds']:>8.1f}")
    return rows


# ------------------------------------------------------------------------------ gather or not
def gather_sweep(args):
    """The same global batch, images and steps, with and without gathering: only the negatives differ.

    Without a gather, each of P ranks contrasts its n = B / P pairs among themselves (n - 1 negatives
    per pair), and averaging the gradients gives the gradient of the mean of P small losses; with the
    gather every pair sees all B - 1 others. Simulated in one process: the P shards' losses are
    computed on slices of the batch's features (what P ranks without a gather would compute).
    """
    import numpy as np
    from threadpoolctl import threadpool_limits

    from miniclip import ops
    from miniclip.data import Loader, Preprocess, ShapesDataset
    from miniclip.loss import clip_loss
    from miniclip.model import CLIP
    from miniclip.training.optim import AdamW, WarmupCosine, clamp_logit_scale
    from miniclip.evaluation.runs import FINAL_EVAL_SEED_OFFSET, evaluate_shapes, shapes_eval_set
    from miniclip.training import TrainConfig
    from miniclip.training.batches import StepBatches
    from miniclip.training.run import train_tokenizer

    B = args.gather_batch
    steps = args.images // B
    config = TrainConfig(steps=steps, batch_size=B, lr=args.lr, warmup_steps=max(1, steps // 10), seed=args.seed,
                         **SMALL_MODEL)
    rows = []
    with threadpool_limits(limits=args.threads):
        tokenizer = train_tokenizer(config)
        preprocess = Preprocess(config.image_resolution, train=False, dtype=np.float32)
        dataset = ShapesDataset(steps * B, seed=config.seed, resolution=config.image_resolution, split="train")
        loader = Loader(dataset, B, preprocess, tokenizer, context_length=config.context_length, shuffle=False,
                        seed=config.seed, prefetch=0)
        eval_seed = config.seed + FINAL_EVAL_SEED_OFFSET
        eval_sets = (shapes_eval_set(960, eval_seed, config.image_resolution, "all", preprocess),
                     shapes_eval_set(320, eval_seed, config.image_resolution, "held_out", preprocess))
        for shards in args.shards:
            n = B // shards
            model = CLIP(**config.model_args(tokenizer.vocab_size), seed=config.seed)
            optimizer = AdamW(model.named_parameters(), lr=config.lr, betas=(config.beta1, config.beta2),
                              eps=config.eps, weight_decay=config.weight_decay)
            schedule = WarmupCosine(config.lr, config.warmup_steps, config.steps)
            t = time.perf_counter()
            for k, batch in StepBatches(loader, steps, shuffled_epochs=False).iterate(0):
                optimizer.lr = schedule(k)
                model.zero_grad()
                image = ops.normalize(model.encode_image(batch.images), axis=-1)  # (B, E)
                text = ops.normalize(model.encode_text(batch.tokens), axis=-1)    # (B, E)
                loss = 0.0
                for r in range(shards):                                          # rank r, no gather:
                    logits = model.logit_scale.exp() * (image[r * n:(r + 1) * n] @ text[r * n:(r + 1) * n].T)
                    loss = loss + clip_loss(logits, logits.T)                     # (n, n) logits only
                (loss / shards).backward()                                        # = the averaged gradients
                optimizer.step()
                clamp_logit_scale(model)
            seconds = time.perf_counter() - t
            record, _ = evaluate_shapes(model, tokenizer, config, *eval_sets, batch_size=256)
            row = {"global_batch": B, "shards": shards, "negatives_per_pair": n - 1, "steps": steps,
                   "seconds": seconds, "zeroshot_top1_all": record["zeroshot_top1_all"],
                   "zeroshot_top1_heldout": record["zeroshot_top1_heldout"],
                   "retrieval_image_to_text_R@1": record["retrieval_image_to_text_R@1"]}
            print(json.dumps(row), flush=True)
            rows.append(row)
    print(f"\nglobal batch {B}, {steps} steps, {steps * B} images: P ranks without a gather vs one gathered batch")
    print(f"{'ranks, no gather':>16} {'negatives':>9} {'all 48':>7} {'held-out':>9} {'R@1 i->t':>9}")
    for r in rows:
        label = "gathered" if r["shards"] == 1 else str(r["shards"])
        print(f"{label:>16} {r['negatives_per_pair']:>9} {100 * r['zeroshot_top1_all']:>6.1f}% "
              f"{100 * r['zeroshot_top1_heldout']:>8.1f}% {100 * r['retrieval_image_to_text_R@1']:>8.1f}%")
    return rows


# a smaller model than the default run, so that the sweep takes minutes, not an hour
SMALL_MODEL = dict(image_resolution=32, vision_patch_size=8, vision_width=64, vision_layers=2, vision_heads=2,
                   embed_dim=64, transformer_width=64, transformer_layers=2, transformer_heads=2)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["throughput", "batch-size", "gather", "all", "_worker"])
    parser.add_argument("--batch-size", type=int, default=128, help="global batch for throughput")
    parser.add_argument("--steps", type=int, default=5, help="timed steps for throughput")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="throughput: best of this many runs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--distributed", action="store_true")
    parser.add_argument("--images", type=int, default=65536, help="training images per batch-size run")
    parser.add_argument("--batch-sizes", type=lambda s: [int(x) for x in s.split(",")], default=[16, 64, 256, 1024])
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr-scaling", choices=["none", "sqrt"], default="none",
                        help="sqrt: lr * sqrt(B / 64) for global batch B")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gather-batch", type=int, default=64, help="global batch of the gather comparison")
    parser.add_argument("--shards", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 16],
                        help="ranks without a gather to compare (1: the gathered batch)")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    if args.what == "_worker":
        return worker(args)
    results = {}
    if args.what in ("throughput", "all"):
        results["throughput"] = throughput(args)
    if args.what in ("batch-size", "all"):
        results["batch_size"] = batch_size_sweep(args)
    if args.what in ("gather", "all"):
        results["gather"] = gather_sweep(args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
