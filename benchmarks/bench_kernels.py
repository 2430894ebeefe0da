"""Benchmark miniclip's compiled kernels against NumPy/OpenBLAS and (when installed) PyTorch.

    python benchmarks/bench_kernels.py                 # the full table, 1 and 2 threads
    python benchmarks/bench_kernels.py --skip-attention --rounds 5   # GEMM only (the issue 19 table)
    python benchmarks/bench_kernels.py --quick         # fewer shapes and rounds
    python benchmarks/bench_kernels.py --tokens 2176 --width 256 --threads 1

Prints, per GEMM shape and thread count: NumPy/OpenBLAS GFLOP/s (``np.matmul``), ours v1 (small
sizes only) and v2 (``gemm(version=...)``), v3 (``compiled.matmul``, the call the ops make), the
ratio v3 / OpenBLAS, and both as a fraction of the machine's peak (``compiled.measure_peak_gflops``:
a register-only FMA loop on the widest vectors miniclip runs, measured once per run and thread
count; ``--avx2`` adds v3 forced to its AVX2 micro-kernel); per attention shape: forward+backward milliseconds for the naive
NumPy formulas (``reference.attention_*``: matmul, softmax, matmul and their backward),
ours, PyTorch's ``scaled_dot_product_attention`` and PyTorch's unfused ops, and the ratios.

OpenBLAS at its best: machines may set ``OPENBLAS_CORETYPE`` (e.g. ``Haswell``) and
``OPENBLAS_L2_SIZE`` in the environment, which force OpenBLAS onto older kernels. This script
removes both from its own environment before NumPy is imported (never do this in tests or CI:
there the pinned kernels keep results reproducible), then prints the CPU model and the
kernel OpenBLAS chose (threadpoolctl's "architecture").

Method: everything runs in this one process with the same thread count (``--threads``: a
comma-separated list, default 1 and all cores) for OpenMP, OpenBLAS and PyTorch. Before starting we wait (at most
``--max-wait`` seconds) for the 1-minute load average to drop below ``--quiet-load``.
Each measurement repeats a call until it takes at least ``--min-time`` seconds, and is
repeated ``--rounds`` times with the implementations interleaved; the table keeps the
fastest round (the least disturbed by anything else on the machine). Between two
implementations we pause 0.3 s: OpenBLAS's idle threads keep spinning (sched_yield) for
about 0.1 s after each call, and measured right after NumPy our threads would share the
cores with them -- the very contention the compiled backend avoids in training by
limiting BLAS to one thread. The process keeps freed memory for the next call
(``miniclip.tools.memory.reuse_freed_memory``, as ``miniclip train`` does), so no implementation
pays a page fault per 4 KB of every fresh result array at every call: that cost belongs to the
allocator, not the kernel, and depends on the process's allocation history (it moved the naive
attention by up to 1.7x between runs). Shape legend: M, N, K GEMM sizes; B batch, H heads, T tokens, D head dim.
"""

import os

# before NumPy loads OpenBLAS: let it pick its best kernel for this CPU (see the docstring)
OPENBLAS_UNSET = {name: os.environ.pop(name) for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
                  if name in os.environ}

import argparse  # noqa: E402
import datetime  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_info, threadpool_limits  # noqa: E402

import miniclip  # noqa: E402
from miniclip.backend import compiled, reference  # noqa: E402
from miniclip.ops.attention import keeps_probabilities  # noqa: E402
from miniclip.tools.memory import reuse_freed_memory  # noqa: E402


def wait_for_quiet(max_wait, quiet_load):
    """Wait until the 1-minute load average is below ``quiet_load`` (at most ``max_wait`` s)."""
    if not hasattr(os, "getloadavg"):
        return None
    start = time.time()
    load = os.getloadavg()[0]
    while load > quiet_load and time.time() - start < max_wait:
        time.sleep(2.0)
        load = os.getloadavg()[0]
    return load


def time_call(fn, min_time):
    """Seconds per call of fn(), repeating it until the batch takes >= min_time."""
    fn()                                     # warm up (allocations, page faults, thread start)
    reps = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time:
            return elapsed / reps
        reps = max(reps * 2, int(reps * min_time / max(elapsed, 1e-9)) + 1)


def fastest(fns, rounds, min_time, pause=0.3):
    """{name: best seconds per call}, the implementations interleaved round by round."""
    best = {name: float("inf") for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            time.sleep(pause)                # let the previous thread pool go idle
            best[name] = min(best[name], time_call(fn, min_time))
    return best


# --------------------------------------------------------------------------- GEMM
def gemm_shapes(tokens, width, quick):
    squares = [64, 128, 256, 512, 1024] if quick else [64, 128, 256, 512, 1024, 2048]
    shapes = [(f"square {n}", n, n, n, False, False) for n in squares]
    # the default model's products, as miniclip.nn.Linear makes them on x (R, C), R = batch x
    # tokens: y = x @ W^T (W^T a transposed view), dx = dy @ W, dW^T = x^T @ dy
    shapes += [
        ("qkv  x@W^T (R,C)x(C,3C)", tokens, 3 * width, width, False, True),
        ("fc   x@W^T (R,C)x(C,4C)", tokens, 4 * width, width, False, True),
        ("proj x@W^T (R,4C)x(4C,C)", tokens, width, 4 * width, False, True),
        ("dx  dy@W (R,4C)x(4C,C)", tokens, width, 4 * width, False, False),
        ("dW  x^T@dy (C,R)x(R,4C)", width, 4 * width, tokens, True, False),
    ]
    return shapes


def _v3(A, B, simd):
    def run():
        compiled.set_simd(simd)
        compiled.matmul(A, B)
    return run


def bench_gemm(args, dtype, rng, peak):
    """One row per shape: {implementation: GFLOP/s}; peak is the FMA loop's GFLOP/s."""
    rows = []
    for label, M, N, K, transpose_a, transpose_b in gemm_shapes(args.tokens, args.width, args.quick):
        A = rng.standard_normal((K, M) if transpose_a else (M, K)).astype(dtype)
        A = A.T if transpose_a else A                           # (M, K), maybe a transposed view
        B = rng.standard_normal((N, K) if transpose_b else (K, N)).astype(dtype)
        B = B.T if transpose_b else B                           # (K, N), maybe a transposed view
        C = np.empty((M, N), dtype=dtype)
        # numpy and v3 both through the matmul the ops call (each allocates its result);
        # v1 and v2 through gemm(version=...), writing into C
        fns = {"numpy": lambda: reference.matmul(A, B)}
        if args.versions and max(M, N, K) <= 256:
            fns["v1"] = lambda: compiled.gemm(A, B, C, version="v1")
        if args.versions and M * N * K <= 1024 ** 3:
            fns["v2"] = lambda: compiled.gemm(A, B, C, version="v2")
        if args.avx2:
            fns["v3_avx2"] = _v3(A, B, "avx2")
        fns["v3"] = _v3(A, B, "auto")
        try:
            best = fastest(fns, args.rounds, args.min_time)
        finally:
            compiled.set_simd("auto")
        gflops = {name: 2.0 * M * N * K / t / 1e9 for name, t in best.items()}
        rows.append((label, M, N, K, gflops))
        print(f"  {np.dtype(dtype).name:7s} {label:30s} M={M:5d} N={N:5d} K={K:5d}  "
              + "  ".join(f"{n} {g:6.1f}" for n, g in gflops.items())
              + f"  v3/numpy {gflops['v3'] / gflops['numpy']:.2f}"
              + f"  peak: v3 {gflops['v3'] / peak:.0%} numpy {gflops['numpy'] / peak:.0%}", flush=True)
    return rows


# ---------------------------------------------------------------------- attention
def attention_impls(q, k, v, dout, causal, torch):
    scale = 1.0 / np.sqrt(q.shape[-1])

    def naive():
        out, lse = reference.attention_forward(q, k, v, scale, causal)
        reference.attention_backward(dout, q, k, v, out, lse, scale, causal)

    def ours():  # as the model's op runs it: short sequences keep the probabilities for the backward
        B, H, T, D = q.shape
        p = np.empty((B, H, T, T), q.dtype) if keeps_probabilities(T, D) else None
        out, lse = compiled.attention_forward(q, k, v, scale, causal, p=p)
        compiled.attention_backward(dout, q, k, v, out, lse, scale, causal, p=p)

    fns = {"numpy": naive, "ours": ours}
    if torch is not None:
        tq, tk, tv = (torch.from_numpy(x).requires_grad_() for x in (q, k, v))
        tdout = torch.from_numpy(dout)
        T = q.shape[-2]
        mask = torch.triu(torch.full((T, T), float("-inf")), diagonal=1) if causal else None

        def sdpa():
            tq.grad = tk.grad = tv.grad = None
            out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=causal)
            out.backward(tdout)

        def unfused():
            tq.grad = tk.grad = tv.grad = None
            s = (tq @ tk.transpose(-1, -2)) * scale               # (B, H, T, T)
            if mask is not None:
                s = s + mask
            out = torch.softmax(s, dim=-1) @ tv
            out.backward(tdout)

        fns["torch_sdpa"] = sdpa
        fns["torch_unfused"] = unfused
    return fns


def bench_attention(args, dtype, rng, torch):
    rows = []
    Ts = [17, 77, 128] if args.quick else [17, 50, 65, 77, 128]
    for D in (32, 64):
        for T in Ts:
            for causal in (False, True):
                B, H = args.batch_heads // 16, 16                 # B * H = 256 by default
                q, k, v, dout = (rng.standard_normal((B, H, T, D)).astype(dtype) for _ in range(4))
                best = fastest(attention_impls(q, k, v, dout, causal, torch), args.rounds, args.min_time)
                ms = {name: t * 1e3 for name, t in best.items()}
                rows.append((T, D, causal, ms))
                ratios = "  ".join(f"{n}/ours {ms[n] / ms['ours']:.2f}" for n in ms if n != "ours")
                print(f"  T={T:3d} D={D:2d} causal={causal!s:5s}  "
                      + "  ".join(f"{n} {t:7.2f}" for n, t in ms.items()) + "  |  " + ratios, flush=True)
    return rows


def markdown(gemm_rows, attn_rows, peaks, header):
    """gemm_rows, attn_rows: {(threads, dtype): rows}; peaks: {(threads, dtype): GFLOP/s}."""
    lines = [header, "", "### GEMM (GFLOP/s; ratio = v3 / NumPy-OpenBLAS; % of peak = GFLOP/s / the FMA loop's)", "",
             "peak (register-only FMA loop): " + ", ".join(
                 f"{dtype} {threads} thread{'s' * (threads > 1)} {g:.0f}" for (threads, dtype), g in peaks.items()),
             "", "| threads | dtype | shape | M | N | K | OpenBLAS | v1 | v2 | v3 AVX2 | v3 | ratio | "
             "OpenBLAS % peak | v3 % peak |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (threads, dtype), rows in gemm_rows.items():
        peak = peaks[threads, dtype]
        for label, M, N, K, g in rows:
            cell = lambda n: f"{g[n]:.1f}" if n in g else "-"  # noqa: E731
            lines.append(f"| {threads} | {dtype} | {label} | {M} | {N} | {K} | {cell('numpy')} | {cell('v1')} | "
                         f"{cell('v2')} | {cell('v3_avx2')} | {cell('v3')} | {g['v3'] / g['numpy']:.2f} | "
                         f"{g['numpy'] / peak:.0%} | {g['v3'] / peak:.0%} |")
    if not attn_rows:
        return "\n".join(lines)
    lines += ["", "### Attention forward + backward (ms, B*H = 256; x = their time / ours)", "",
              "| threads | dtype | T | D | causal | NumPy naive | ours | torch SDPA | torch unfused | naive/ours "
              "| SDPA/ours | unfused/ours |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (threads, dtype), rows in attn_rows.items():
        for T, D, causal, ms in rows:
            def cell(n):
                return f"{ms[n]:.2f}" if n in ms else "-"

            def ratio(n):
                return f"{ms[n] / ms['ours']:.2f}x" if n in ms else "-"
            lines.append(f"| {threads} | {dtype} | {T} | {D} | {causal} | {cell('numpy')} | {cell('ours')} | "
                         f"{cell('torch_sdpa')} | {cell('torch_unfused')} | {ratio('numpy')} | "
                         f"{ratio('torch_sdpa')} | {ratio('torch_unfused')} |")
    return "\n".join(lines)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def openblas_kernel():
    """The kernel OpenBLAS runs for this CPU, e.g. "OpenBLAS 0.3.31 SkylakeX" (threadpoolctl)."""
    blas = [p for p in threadpool_info() if p["user_api"] == "blas"]
    return ", ".join(f"{p['internal_api']} {p.get('version')} {p.get('architecture')}" for p in blas) or "none"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tokens", type=int, default=128 * 17, help="rows of the model's products (batch x tokens)")
    p.add_argument("--width", type=int, default=256, help="the model's width C")
    p.add_argument("--batch-heads", type=int, default=256, help="B * H for attention (a multiple of 16)")
    p.add_argument("--threads", default=",".join(dict.fromkeys(["1", str(os.cpu_count())])),
                   help="thread counts for every library, comma-separated (default 1 and all cores)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the fastest is kept")
    p.add_argument("--min-time", type=float, default=0.05, help="seconds per timed batch of calls")
    p.add_argument("--max-wait", type=float, default=30.0, help="seconds to wait for a quiet machine")
    p.add_argument("--quiet-load", type=float, default=0.5, help="load average that counts as quiet")
    p.add_argument("--dtypes", default="float32,float64")
    p.add_argument("--skip-gemm", action="store_true")
    p.add_argument("--skip-attention", action="store_true")
    p.add_argument("--no-versions", dest="versions", action="store_false", help="GEMM: skip v1 and v2")
    p.add_argument("--avx2", action="store_true", help="GEMM: also v3 forced to its AVX2 micro-kernel")
    p.add_argument("--quick", action="store_true", help="fewer shapes and rounds")
    p.add_argument("--markdown", help="also write the table to this file")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds = min(args.rounds, 2)
    thread_counts = [int(t) for t in args.threads.split(",")]

    try:
        import torch
    except ImportError:
        torch = None

    miniclip.set_backend("compiled")
    malloc_tuned = reuse_freed_memory()
    load = wait_for_quiet(args.max_wait, args.quiet_load)
    info = miniclip.build_info()
    unset = ", ".join(f"{k}={v}" for k, v in OPENBLAS_UNSET.items()) or "none was set"
    omp_env = ", ".join(f"{k}={os.environ[k]}" for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT") if k in os.environ)
    header = (f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {cpu_model()}, "
              f"{os.cpu_count()} cores, threads {args.threads}, load average at start "
              f"{load if load is None else round(load, 2)}; numpy {np.__version__} "
              f"({openblas_kernel()}; unset here: {unset}), "
              f"torch {torch.__version__ if torch else 'not installed'}, miniclip simd {info.get('simd')}, "
              f"freed memory {'kept for reuse' if malloc_tuned else 'returned (malloc not tuned)'}"
              f"{', ' + omp_env if omp_env else ''}, "
              f"flags `{info.get('compile_flags')}`")
    print(header, flush=True)

    gemm_rows, attn_rows, peaks = {}, {}, {}
    for threads in thread_counts:
        miniclip.set_num_threads(threads)
        if torch is not None:
            torch.set_num_threads(threads)
        rng = np.random.default_rng(0)
        # numpy's BLAS gets the same threads as ours while it is measured (the compiled
        # backend otherwise limits it to 1 to keep one thread pool on the hot path)
        with threadpool_limits(limits=threads, user_api="blas"):
            for name in args.dtypes.split(","):
                dtype = np.dtype(name)
                peaks[threads, name] = compiled.measure_peak_gflops(dtype, threads, seconds=0.2)
                print(f"{threads} thread(s), {name}: peak {peaks[threads, name]:.1f} GFLOP/s "
                      f"(FMA loop, {compiled.get_simd()})", flush=True)
                if not args.skip_gemm:
                    print(f"GEMM {name}, {threads} thread(s)", flush=True)
                    gemm_rows[threads, name] = bench_gemm(args, dtype, rng, peaks[threads, name])
                if not args.skip_attention:
                    print(f"attention {name}, {threads} thread(s)", flush=True)
                    attn_rows[threads, name] = bench_attention(args, dtype, rng, torch)
    table = markdown(gemm_rows, attn_rows, peaks, header)
    print()
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    sys.exit(main())
