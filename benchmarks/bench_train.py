"""One full training step of the default model: miniclip (compiled, NumPy backend) beside PyTorch.

A step is what ``miniclip train`` does per batch: forward, symmetric InfoNCE loss, backward, AdamW
update (with zero_grad and the logit_scale clamp). The model is ``TrainConfig()``'s default (``--model
default``: CLIP's ModifiedResNet with stage depths (1, 1, 1, 1), width 16, at 32 px; text 2x64, context
12) or the former default that issue 19's step targets were written for (``--model vit``: a ViT 3x64,
patch 8), float32; the PyTorch model is ``tests/torch_clip.py``'s ``TorchCLIP`` (the original CLIP
layout, either image tower) with ``torch.optim.AdamW`` and the same hyperparameters.

Each (mode, batch, threads) runs in its own process, so peak RSS (``ru_maxrss``) is that mode's own.
Inputs are real shapes-world batches drawn once by the parent (images + tokens, as the loop makes them).

    python benchmarks/bench_train.py                      # default threads (TrainConfig) and 2
    python benchmarks/bench_train.py --markdown table.md  # also write the tables as Markdown
    python benchmarks/bench_train.py --model vit          # the former default, a ViT

The step's FLOPs are counted from the shapes (``step_flops``, the count is documented there), so
the table also shows GFLOP/s and, when the compiled backend has a peak-FMA kernel
(``compiled.measure_peak_gflops``), the fraction of the measured peak at that thread count. The script
runs OpenBLAS at its best: ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` are removed from its own
process before NumPy loads (``benchmarks/machine.py``), and it prints the CPU and OpenBLAS's kernel.

Shape legend: B batch, R image resolution, P patch size, T context length, C width, E embed dim.
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from machine import blas_kernels, cpu_model, unforce_openblas

OPENBLAS_WAS = unforce_openblas()  # before NumPy loads OpenBLAS; the workers inherit the environment

import numpy as np  # noqa: E402  (after unforce_openblas)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

MODES = ("compiled", "numpy", "torch")
GROUPS = ("convolutions", "batch_norm", "attention", "GEMMs", "layer_norm", "GELU", "softmax+loss", "other ops",
          "graph overhead", "optimizer")
_GROUP_OF = {"Conv2d": "convolutions", "BatchNorm2d": "batch_norm",
             "Attention": "attention", "QKVAttention": "attention", "MatMul": "GEMMs", "Linear": "GEMMs", "LayerNorm": "layer_norm",
             "GELU": "GELU", "QuickGELU": "GELU", "CrossEntropy": "softmax+loss", "Softmax": "softmax+loss",
             "LogSoftmax": "softmax+loss", "LogSumExp": "softmax+loss", "Normalize": "softmax+loss",
             "LogSigmoid": "softmax+loss"}


# ----------------------------------------------------------------------------- FLOPs
def step_flops(args, batch):
    """Floating-point operations of one training step of ``CLIP(**args)`` on ``batch`` pairs, from the shapes.

    A product of an (M x K) and a (K x N) matrix counts 2 M N K (a multiply and an add). Forward:

        image tower       vit_image_flops or resnet_image_flops
        text tower        24 B T C^2 + 4 B T^2 C per block, T = context length, C = Ct (as a ViT block)
        projections       2 B Ct E (text; the image tower's is counted with it),  logits 2 B^2 E

    Backward: twice each product (the gradients of both operands), except the image tower's first
    product (the images need no gradient: once). Attention counts the full T x T products, causal or
    not (the model's arithmetic; the kernel skips the masked half and recomputes the scores in the
    backward, neither of which is counted). Normalizations, activations, pooling, the loss and AdamW
    are O(B T C) and left out (about 1% of the total at the default sizes).
    """
    B, E = batch, args["embed_dim"]
    T, Ct, Lt = args["context_length"], args["transformer_width"], args["transformer_layers"]
    image = resnet_image_flops if isinstance(args["vision_layers"], (tuple, list)) else vit_image_flops
    first, rest = image(args, B)
    products = rest + _blocks(B, T, Ct, Lt) + 2 * B * Ct * E + 2 * B * B * E
    return (first + products) + (first + 2 * products)


def _blocks(B, tokens, width, layers):
    """Transformer blocks: in_proj, out_proj, c_fc, c_proj (24 B T C^2) and q k^T, P v (4 B T^2 C)."""
    return layers * (24 * B * tokens * width ** 2 + 4 * B * tokens ** 2 * width)


def vit_image_flops(args, B):
    """(first product, the rest) of a ViT's forward: patch embedding 2 B Np (3 P^2) Cv (conv1 as a
    GEMM, Np = (R / P)^2 patches), blocks on T = Np + 1 tokens, projection 2 B Cv E."""
    R, P, Cv, Lv = args["image_resolution"], args["vision_patch_size"], args["vision_width"], args["vision_layers"]
    Np = (R // P) ** 2
    return 2 * B * Np * 3 * P * P * Cv, _blocks(B, Np + 1, Cv, Lv) + 2 * B * Cv * args["embed_dim"]


def resnet_image_flops(args, B):
    """(first product, the rest) of a ModifiedResNet's forward (``model/resnet.py``).

    A convolution from C to O channels with a k x k kernel onto an Ho x Wo map is a product of
    2 B O (Ho Wo) (C k^2). Stem: 3x3 convolutions 3 -> w/2 (stride 2), w/2 -> w/2, w/2 -> w at R/2,
    then a 2x2 pool. Stage k (planes p = w 2^k, stride 1 then 2, 2, 2): each Bottleneck 1x1 in -> p and
    3x3 p -> p at its input size, 1x1 p -> 4p at the output size, and the first block's downsample
    1x1 in -> 4p. Attention pooling over T = 1 + (R/32)^2 tokens of C = 32 w: q of the first token
    (2 B C^2), k and v of all (4 B T C^2), q k^T and P v (4 B T C), c_proj 2 B C E.
    """
    R, w, E, layers = args["image_resolution"], args["vision_width"], args["embed_dim"], args["vision_layers"]

    def conv(C, O, k, size):
        return 2 * B * O * size * size * C * k * k

    first = conv(3, w // 2, 3, R // 2)
    rest = conv(w // 2, w // 2, 3, R // 2) + conv(w // 2, w, 3, R // 2)
    size, inplanes = R // 4, w
    for k, blocks in enumerate(layers):
        planes, out_size = w * 2 ** k, (R // 4) // (2 ** k if k else 1)
        for b in range(blocks):
            rest += conv(inplanes, planes, 1, size) + conv(planes, planes, 3, size) + conv(planes, 4 * planes, 1, out_size)
            if b == 0 and (k > 0 or inplanes != 4 * planes):
                rest += conv(inplanes, 4 * planes, 1, out_size)
            inplanes, size = 4 * planes, out_size
    C, T = 32 * w, 1 + (R // 32) ** 2
    rest += 2 * B * C * C + 4 * B * T * C * C + 4 * B * T * C + 2 * B * C * E
    return first, rest


def peak_gflops_function():
    """The compiled backend's peak measurement, ``measure_peak_gflops(dtype, threads)`` (a register-only
    FMA loop, csrc/peak.c), or None when this build has no peak-FMA kernel."""
    from miniclip.backend import compiled
    return getattr(compiled, "measure_peak_gflops", None)


# ----------------------------------------------------------------------------- parent side
def wait_for_quiet(max_load, max_wait):
    """Wait up to ``max_wait`` s for the 1-minute load average to drop below ``max_load``; return it."""
    t0 = time.time()
    while os.getloadavg()[0] > max_load and time.time() - t0 < max_wait:
        time.sleep(2)
    return os.getloadavg()[0]


def make_inputs(batch, path):
    """Draw ``batch`` shapes-world samples, preprocess and tokenize them (as the train loop); save them.

    Returns the data pipeline's images/s (draw + preprocess + tokenize of a batch, median of 3)."""
    from miniclip.data import Loader, Preprocess, shapes
    from miniclip.training import TrainConfig
    from miniclip.training.run import train_tokenizer
    config = TrainConfig(progress=False, plots=False)
    tokenizer = train_tokenizer(config)
    dataset = shapes.ShapesDataset(10 * batch, seed=config.seed, resolution=config.image_resolution, split="train")
    loader = Loader(dataset, batch, Preprocess(config.image_resolution, train=False, dtype=np.float32),
                    tokenizer, context_length=config.context_length, shuffle=False, seed=config.seed, prefetch=0)
    times = []
    for k in range(3):
        t = time.perf_counter()
        b = loader.make_batch(np.arange(k * batch, (k + 1) * batch), 0)
        times.append(time.perf_counter() - t)
    np.savez(path, images=np.asarray(b.images, np.float32), tokens=np.asarray(b.tokens),
             vocab_size=tokenizer.vocab_size)
    return batch / statistics.median(times)


def run_worker(mode, batch, threads, steps, inputs):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    env["MINICLIP_BACKEND"] = "numpy" if mode == "numpy" else "compiled"
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", mode, "--batch", str(batch),
           "--threads", str(threads), "--steps", str(steps), "--inputs", inputs, "--model", MODEL]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        print(f"[{mode} B={batch} threads={threads}] failed:\n{out.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- worker side
def peak_rss_mb():
    """This process's peak resident memory in MB.

    Linux's ``ru_maxrss`` carries the parent's peak across fork + exec (the parent here has drawn
    the inputs and trained the tokenizer), so the process's own high-water mark ``VmHWM`` is read
    where /proc has it; ``ru_maxrss`` (KB on Linux) otherwise.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024           # "VmHWM:   123456 kB"
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --model: TrainConfig's default, or the former default (a ViT) that issue 19's step targets name
MODELS = {"default": {}, "vit": {"vision_layers": 3, "vision_width": 64, "vision_heads": 2, "vision_patch_size": 8}}
MODEL = "default"


def _config():
    from miniclip.training import TrainConfig
    return TrainConfig(progress=False, plots=False, **MODELS[MODEL])


def worker_miniclip(batch, threads, steps, inputs):
    from threadpoolctl import threadpool_limits

    from miniclip.autograd.profiler import profile
    from miniclip.backend import set_num_threads
    from miniclip.loss import clip_loss
    from miniclip.tools.memory import reuse_freed_memory
    from miniclip.model import CLIP
    from miniclip.training.optim import AdamW, clamp_logit_scale

    reuse_freed_memory()  # as miniclip.training.train does
    set_num_threads(threads)
    threadpool_limits(limits=threads)
    config = _config()
    data = np.load(inputs)
    images, tokens = data["images"][:batch], data["tokens"][:batch]   # (B, 3, R, R), (B, T)
    model = CLIP(**config.model_args(int(data["vocab_size"])), seed=config.seed)
    optimizer = AdamW(list(model.named_parameters()), lr=config.lr, betas=(config.beta1, config.beta2),
                      eps=config.eps, weight_decay=config.weight_decay)

    def forward_backward():
        loss = clip_loss(*model(images, tokens))
        optimizer.zero_grad()
        loss.backward()
        return loss

    def update():
        optimizer.step()
        clamp_logit_scale(model)

    times, cpu = [], []
    for i in range(steps + 3):  # 3 warm-up steps
        t, c = time.perf_counter(), time.process_time()
        forward_backward()
        update()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    step = statistics.median(times[3:])
    peak = peak_gflops_function()
    peak = peak(np.float32, threads) if peak else None

    # the profile: a few more steps, ops timed by the profiler, the optimizer timed on its own
    shares = dict.fromkeys(GROUPS, 0.0)
    opt_time, wall, n = 0.0, 0.0, max(3, steps // 2)
    for _ in range(n):
        with profile() as prof:
            forward_backward()
        t = time.perf_counter()
        update()
        opt_time += time.perf_counter() - t
        wall += prof.wall
        inside = 0.0
        for op, seconds in prof.by_op().items():
            seconds = seconds if isinstance(seconds, float) else sum(seconds)
            shares[_GROUP_OF.get(op, "other ops")] += seconds
            inside += seconds
        shares["graph overhead"] += prof.wall - inside
    shares["optimizer"] = opt_time
    total = wall + opt_time
    return {"step_s": step, "cpu_s": statistics.median(cpu[3:]), "images_per_s": batch / step,
            "peak_gflops": peak, "blas": blas_kernels(),
            "profile": {g: s / total for g, s in shares.items()}}


def worker_torch(batch, threads, steps, inputs):
    import torch
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from torch_clip import TorchCLIP, torch_adamw, torch_clip_loss

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = _config()
    data = np.load(inputs)
    images = torch.from_numpy(data["images"][:batch])
    tokens = torch.from_numpy(data["tokens"][:batch].astype(np.int64))
    args = config.model_args(int(data["vocab_size"]))
    args.pop("dtype")
    model = TorchCLIP(**args).float()
    optimizer = torch_adamw(model, lr=config.lr, betas=(config.beta1, config.beta2), eps=config.eps,
                            weight_decay=config.weight_decay)
    times, cpu, opt_time = [], [], 0.0
    for i in range(steps + 3):
        t, c = time.perf_counter(), time.process_time()
        loss = torch_clip_loss(*model(images, tokens))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t_opt = time.perf_counter()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, np.log(100))
        now = time.perf_counter()
        times.append(now - t)
        cpu.append(time.process_time() - c)
        if i >= 3:
            opt_time += now - t_opt
    step = statistics.median(times[3:])
    return {"step_s": step, "cpu_s": statistics.median(cpu[3:]), "images_per_s": batch / step, "blas": blas_kernels(),
            "profile": {"optimizer": opt_time / sum(times[3:])}}


# ----------------------------------------------------------------------------- report
def format_tables(results, pipeline, load, threads_list, batches, markdown=False):
    lines = []
    args = _config().model_args(vocab_size=1)           # the FLOPs do not depend on the vocabulary
    with_peak = any(r.get("peak_gflops") for r in results.values())
    head = ["threads", "batch", "mode", "images/s", "ms/step", "vs PyTorch", "CPU ms/step", "GFLOP/s"]
    head += ["of peak"] if with_peak else []
    head += ["peak RSS MB"]
    rows = []
    for t in threads_list:
        for b in batches:
            ref = results.get(("torch", b, t))
            for mode in MODES:
                r = results.get((mode, b, t))
                if r is None:
                    continue
                ratio = f"{r['images_per_s'] / ref['images_per_s']:.2f}x" if ref else "-"
                gflops = step_flops(args, b) / r["step_s"] / 1e9
                row = [str(t), str(b), mode, f"{r['images_per_s']:.0f}", f"{1e3 * r['step_s']:.1f}", ratio,
                       f"{1e3 * r['cpu_s']:.1f}" if "cpu_s" in r else "-", f"{gflops:.0f}"]
                if with_peak:
                    row.append(f"{100 * gflops / r['peak_gflops']:.0f}%" if r.get("peak_gflops") else "-")
                rows.append(row + [f"{r['rss_mb']:.0f}"])
    prof_head = ["mode (B, threads)"] + list(GROUPS)
    prof_rows = []
    for t in threads_list:
        for b in batches:
            for mode in ("compiled", "numpy"):
                r = results.get((mode, b, t))
                if r is not None:
                    prof_rows.append([f"{mode} ({b}, {t})"] + [f"{100 * r['profile'][g]:.0f}%" for g in GROUPS])
    for b in batches:
        r = results.get(("torch", b, threads_list[0]))
        if r is not None:
            prof_rows.append([f"torch ({b}, {threads_list[0]})"] + ["" for _ in GROUPS[:-1]]
                             + [f"{100 * r['profile']['optimizer']:.0f}%"])

    def table(header, body):
        if markdown:
            out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
            return out + ["| " + " | ".join(r) + " |" for r in body]
        widths = [max(len(x) for x in col) for col in zip(header, *body)]
        fmt = "  ".join("{:>%d}" % w for w in widths)
        return [fmt.format(*header)] + [fmt.format(*r) for r in body]

    blas = sorted({f"{m}: {k}" for (m, _, _), r in results.items() for k in r.get("blas", [])})
    lines.append(f"machine: {cpu_model()}, {os.cpu_count()} cores, "
                 f"Python {platform.python_version()}, NumPy {np.__version__}; "
                 f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load before runs {load:.2f}")
    lines.append(f"BLAS: {'; '.join(blas) or '-'} (OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset; were {OPENBLAS_WAS})")
    lines.append(f"model: --model {MODEL} ({_config().model_args(vocab_size=1)['vision_layers']} vision layers); "
                 f"FLOPs per step (step_flops: forward + backward products): "
                 + ", ".join(f"B={b}: {step_flops(args, b) / 1e9:.2f} GFLOP" for b in batches))
    if not with_peak:
        lines.append("of peak: - (this build has no peak-FMA kernel, compiled.measure_peak_gflops)")
    for b in batches:
        one, two = results.get(("compiled", b, 1)), results.get(("compiled", b, 2))
        if one and two:
            lines.append(f"compiled, B={b}: 2 threads / 1 thread = {one['step_s'] / two['step_s']:.2f}x")
    lines.append("")
    lines.append("images/s: median over the timed steps of one run, the fastest of the repeated runs; CPU ms/step:"
                 " the process's CPU time per step (all its threads; steadier than wall time on a busy machine)")
    lines.append("")
    lines += table(head, rows)
    lines.append("")
    lines.append("share of the step (profile: ops timed by miniclip's profiler, optimizer timed apart):")
    lines.append("")
    lines += table(prof_head, prof_rows)
    lines.append("")
    lines.append(f"data pipeline (draw + preprocess + tokenize, one thread): {pipeline:.0f} images/s")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=None, help="compute threads (default: TrainConfig's, and 2)")
    p.add_argument("--batches", type=int, nargs="+", default=[128, 256])
    p.add_argument("--steps", type=int, default=8, help="timed steps per run (after 3 warm-up steps)")
    p.add_argument("--repeats", type=int, default=2,
                   help="runs per (mode, batch, threads), in rounds; the fastest is kept (the machine is shared)")
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    p.add_argument("--max-load", type=float, default=0.8, help="wait for the load average below this")
    p.add_argument("--markdown", help="also write the tables as Markdown to this file")
    p.add_argument("--model", choices=sorted(MODELS), default="default",
                   help="default: TrainConfig's model (the ResNet); vit: the former default, a ViT 3x64 patch 8")
    p.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    p.add_argument("--inputs", help=argparse.SUPPRESS)
    a = p.parse_args()
    global MODEL
    MODEL = a.model

    if a.worker:
        fn = worker_torch if a.worker == "torch" else worker_miniclip
        result = fn(a.batch, a.threads, a.steps, a.inputs)
        result["rss_mb"] = peak_rss_mb()
        print(json.dumps(result))
        return

    if a.threads is None:
        default = _config().threads or 1
        threads_list = sorted({default, 2})
    else:
        threads_list = [a.threads]
    modes = list(a.modes)
    if "torch" in modes:
        try:
            import torch  # noqa: F401
        except ImportError:
            modes.remove("torch")
            print("torch not installed: PyTorch column skipped")
    with tempfile.TemporaryDirectory() as tmp:
        inputs = os.path.join(tmp, "inputs.npz")
        pipeline = make_inputs(max(a.batches), inputs)
        load = wait_for_quiet(a.max_load, max_wait=60)
        print(f"load average before runs: {load:.2f}")
        results = {}
        for rnd in range(a.repeats):  # rounds over every configuration, so a busy spell hits all modes alike
            for t in threads_list:
                for b in a.batches:
                    for mode in modes:
                        r = run_worker(mode, b, t, a.steps, inputs)
                        if r is None:
                            continue
                        print(f"  round {rnd + 1}: {mode:>8} B={b:<4} threads={t}: {r['images_per_s']:7.0f} "
                              f"images/s ({1e3 * r['step_s']:.1f} ms/step), peak RSS {r['rss_mb']:.0f} MB", flush=True)
                        best = results.get((mode, b, t))
                        if best is None or r["images_per_s"] > best["images_per_s"]:
                            results[(mode, b, t)] = r
    print()
    print(format_tables(results, pipeline, load, threads_list, a.batches))
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(format_tables(results, pipeline, load, threads_list, a.batches, markdown=True) + "\n")


if __name__ == "__main__":
    main()
