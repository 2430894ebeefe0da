"""Compiled kernels: the functions of ``reference`` that ``miniclip._C`` provides.

Each function here has the same name, arguments and results as its NumPy
reference in ``reference.py``; tests hold the two equal. A kernel missing here
falls back to the reference (see ``miniclip.backend.set_backend``).

Shape legend: M, N, K GEMM sizes (C is M x N, the sum runs over K); nb the number
of products in a batch; B batch, H heads, T tokens, D head dim.

Threads: the kernels run on OpenMP with ``MINICLIP_NUM_THREADS`` threads (falling
back to ``OMP_NUM_THREADS``, then to every core), set once when this module is
imported; ``set_num_threads`` changes it later.
"""

import os

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import _C  # ImportError here means the extension is not built
from . import reference
from .reference import check_gemm_args

__all__ = ["gemm", "gemm_naive", "matmul", "linear", "attention_forward", "attention_backward",
           "embedding_backward",
           "softmax", "softmax_backward", "log_softmax", "log_softmax_backward",
           "layer_norm_forward", "layer_norm_backward",
           "gelu_forward", "gelu_backward", "quick_gelu_forward", "quick_gelu_backward", "relu_backward",
           "im2col", "col2im", "conv2d", "conv2d_backward", "avg_pool2d", "avg_pool2d_backward",
           "batch_norm_stats", "batch_norm_apply", "batch_norm_backward",
           "adamw_step", "set_num_threads", "get_num_threads", "set_simd", "get_simd",
           "measure_peak_gflops"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_VERSION_NUMBER = {"v1": 1, "v2": 2, "v3": 3}


# --------------------------------------------------------------------------- threads
def set_num_threads(n):
    """Use ``n`` OpenMP threads in every later kernel call."""
    n = int(n)
    if n < 1:
        raise ValueError(f"set_num_threads: expected n >= 1, got {n}")
    _C.set_num_threads(n)


def get_num_threads():
    """The number of threads the kernels use."""
    return _C.max_threads()


def _threads_from_env():
    for var in ("MINICLIP_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "").strip()
        if value:
            try:
                n = int(value.split(",")[0])  # OMP_NUM_THREADS may list one count per level
            except ValueError:
                raise ValueError(f"{var}: expected a positive integer, got {value!r}") from None
            if n < 1:
                raise ValueError(f"{var}: expected a positive integer, got {value!r}")
            return n
    return None


def set_simd(mode):
    """Micro-kernels: ``"auto"`` (the best the CPU has: AVX-512, else AVX2+FMA, else generic),
    ``"generic"`` (portable C), ``"avx2"`` (at most AVX2+FMA: keeps that path in use on an
    AVX-512 CPU) or ``"avx512"`` (a ``ValueError`` where the CPU has none).

    ``MINICLIP_FORCE_GENERIC=1`` / ``MINICLIP_FORCE_AVX2=1`` in the environment select
    ``"generic"`` / ``"avx2"`` at import.
    """
    _C.set_simd(mode)


def get_simd():
    """The micro-kernels in use now: ``"avx512"``, ``"avx2+fma"`` or ``"generic"``."""
    return _C.simd_name()


def measure_peak_gflops(dtype, threads=None, seconds=0.05):
    """The machine's peak GFLOP/s for ``dtype`` on ``threads`` threads (default: ``get_num_threads()``).

    Measured (best of 3 runs of about ``seconds``) by a register-only loop of independent fused
    multiply-adds on the widest vectors the SIMD selection allows (csrc/peak.c): the rate no
    kernel can beat, the denominator of the benchmarks' "fraction of peak".
    """
    threads = get_num_threads() if threads is None else int(threads)
    if threads < 1:
        raise ValueError(f"measure_peak_gflops: expected threads >= 1, got {threads}")
    return _C.peak_gflops(dtype, threads, float(seconds))


_n = _threads_from_env()
if _n is not None:
    _C.set_num_threads(_n)


# --------------------------------------------------------------------------- GEMM
def gemm(A, B, C, alpha=1.0, beta=0.0, version="v3"):
    """C = alpha * A @ B + beta * C, written into C; ``version`` v1 naive, v2 tiled, v3 packed.

    Any strides: a transposed or sliced operand is passed as it is, never copied.
    """
    check_gemm_args("gemm", A, B, C, version)
    _C.gemm(A, B, C, alpha, beta, _VERSION_NUMBER[version])
    return C


def gemm_naive(A, B, C, alpha=1.0, beta=0.0):
    """GEMM v1, the naive triple loop in C; same contract as ``gemm``."""
    return gemm(A, B, C, alpha, beta, version="v1")


def linear(x, weight, bias=None, residual=None):
    """y = x W^T + b (+ residual) as one GEMM v3 call: the bias and the residual are added to each
    tile of y in the GEMM's epilogue, not in extra passes. Same contract as ``reference.linear``."""
    if not (_float_array(x, weight, *(a for a in (bias, residual) if a is not None))
            and x.ndim == 2 and weight.ndim == 2):
        return reference.linear(x, weight, bias, residual)
    y = np.empty((x.shape[0], weight.shape[0]), x.dtype)            # (R, C_out)
    _C.gemm_bias(x, weight.T, y, bias, residual)                     # (R, C_in) @ (C_in, C_out)
    return y


def _merge_batch_axes(batch, arrays):
    """Fold the broadcast batch axes of several arrays into as few axes as possible.

    ``arrays`` all have the leading axes ``batch`` (broadcast views, stride 0 where
    broadcast). Two neighbouring axes i, i+1 fold into one when, in every array,
    stepping axis i is the same as stepping axis i+1 shape[i+1] times. Returns
    ``[(size, [stride of each array])]``, outermost first; axes of size 1 vanish.
    """
    merged = []
    for axis, size in enumerate(batch):
        if size == 1:
            continue
        strides = [x.strides[axis] for x in arrays]
        if merged:
            prev_size, prev_strides = merged[-1]
            if all(ps == s * size for ps, s in zip(prev_strides, strides)):
                merged[-1] = (prev_size * size, strides)
                continue
        merged.append((size, strides))
    return merged


def matmul(a, b):
    """a @ b with NumPy's batch broadcasting over leading axes, on GEMM v3.

    (..., M, K) @ (..., K, N) -> (..., M, N). No operand is copied: the batch axes
    become one batch stride where the layout allows it (one C call over the whole
    batch), and a weight shared by the whole batch (x (B, T, C) @ W (C, N)) becomes
    one (B*T, C) @ (C, N) product. Anything not float32/float64 of one dtype, or
    with a 1-D operand, goes to NumPy (``reference.matmul``).
    """
    if (not isinstance(a, np.ndarray) or not isinstance(b, np.ndarray) or a.dtype != b.dtype
            or a.dtype not in _FLOATS or a.ndim < 2 or b.ndim < 2):
        return reference.matmul(a, b)
    M, K = a.shape[-2:]
    if b.shape[-2] != K:
        raise ValueError(f"matmul: inner sizes differ: {a.shape} @ {b.shape} ({K} != {b.shape[-2]})")
    N = b.shape[-1]
    if b.ndim == 2 and K > 0 and (a.ndim == 2 or a.flags.c_contiguous):
        # the common cases first, with as little Python as possible (it costs microseconds,
        # as much as a whole 64 x 64 product): (M, K) @ (K, N), and x (..., M, K) @ W (K, N)
        # as one (R, K) @ (K, N) product over the R = (...) * M rows of a contiguous x
        if a.ndim == 2:
            out = np.empty((M, N), a.dtype)
            if M and N:
                _C.gemm(a, b, out, 1.0, 0.0, 3)
            return out
        out = np.empty(a.shape[:-1] + (N,), a.dtype)                 # (..., M, N)
        if out.size:
            _C.gemm(a.reshape(-1, K), b, out.reshape(-1, N), 1.0, 0.0, 3)  # (R, K) @ (K, N)
        return out
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    out = np.empty(batch + (M, N), dtype=a.dtype)                  # (..., M, N)
    if out.size == 0:
        return out
    if K == 0:
        out.fill(0)
        return out
    a = np.broadcast_to(a, batch + (M, K))                          # views, stride 0 where broadcast
    b = np.broadcast_to(b, batch + (K, N))
    axes = _merge_batch_axes(batch, (a, b, out))
    s_a, s_b, s_c = a.strides[-2:], b.strides[-2:], out.strides[-2:]

    # one weight for the whole batch (b's batch stride 0) and a's rows stack evenly
    # (batch stride = M * row stride): the whole batch is one tall product
    shared_b = len(axes) == 0 or (len(axes) == 1 and axes[0][1][1] == 0 and axes[0][1][0] == M * s_a[0])
    if shared_b:
        nb = axes[0][0] if axes else 1
        a2 = as_strided(a, (nb * M, K), s_a, writeable=False)       # (nb*M, K)
        b2 = as_strided(b, (K, N), s_b, writeable=False)             # (K, N)
        c2 = as_strided(out, (nb * M, N), s_c)                       # (nb*M, N), out is C-contiguous
        _C.gemm(a2, b2, c2, 1.0, 0.0, 3)
        return out

    if not axes:
        axes = [(1, [0, 0, 0])]
    *outer, (nb, inner_strides) = axes
    outer_shape = tuple(size for size, _ in outer)

    def view(x, k, shape2, strides2, writeable):
        shape = outer_shape + (nb,) + shape2                          # (outer..., nb, rows, cols)
        strides = tuple(st[k] for _, st in outer) + (inner_strides[k],) + strides2
        return as_strided(x, shape, strides, writeable=writeable)

    a3 = view(a, 0, (M, K), s_a, False)
    b3 = view(b, 1, (K, N), s_b, False)
    c3 = view(out, 2, (M, N), s_c, True)
    for index in np.ndindex(*outer_shape):                           # usually no outer axes at all
        _C.gemm_batched(a3[index], b3[index], c3[index], 1.0, 0.0)
    return out


# ------------------------------------------------------------ multi-head attention
def _heads(name, arrays, dtype=None):
    """Check (B, H, T, D) arrays of one shape and dtype; return them as views the kernel reads.

    The C kernel takes any strides as long as D is the unit-stride axis, so views into a packed
    projection (q, k, v split out of one qkv array, heads transposed out of (B, T, H, D)) go in
    without a copy; only an array whose D axis is not contiguous is copied (O(B H T D), small
    next to the O(B H T^2 D) kernel).
    """
    first = arrays[0][1]
    if not isinstance(first, np.ndarray) or first.ndim != 4:
        raise ValueError(f"{name}: expected {arrays[0][0]} of shape (B, H, T, D), got "
                         f"{getattr(first, 'shape', type(first).__name__)}")
    dtype = first.dtype if dtype is None else dtype
    if dtype not in _FLOATS:
        raise TypeError(f"{name}: expected float32 or float64, got {dtype}")
    out = []
    for arg, x in arrays:
        if not isinstance(x, np.ndarray) or x.shape != first.shape or x.dtype != dtype:
            raise ValueError(f"{name}: expected {arg} of shape {first.shape} and dtype {dtype} "
                             f"like {arrays[0][0]}, got {getattr(x, 'shape', None)} "
                             f"{getattr(x, 'dtype', type(x).__name__)}")
        out.append(x if x.strides[-1] == x.itemsize or x.shape[-1] == 1 else np.ascontiguousarray(x))
    return out


def _out_heads(name, arrays, shape, dtype):
    """Check (B, H, T, D) output views: the kernel writes into them, so they cannot be copied."""
    for arg, x in arrays:
        if (not isinstance(x, np.ndarray) or x.shape != shape or x.dtype != dtype
                or (x.strides[-1] != x.itemsize and x.shape[-1] != 1) or not x.flags.writeable):
            raise ValueError(f"{name}: expected {arg} a writeable {shape} {dtype} array with a "
                             f"contiguous last axis, got {getattr(x, 'shape', type(x).__name__)} "
                             f"{getattr(x, 'dtype', '')} strides {getattr(x, 'strides', None)}")
    return [x for _, x in arrays]


def _probabilities(name, p, shape, dtype):
    """``p``, the (B, H, T, T) probabilities, checked: None, or a C-contiguous array of q's dtype."""
    B, H, T, _ = shape
    if p is not None and not (isinstance(p, np.ndarray) and p.shape == (B, H, T, T) and p.dtype == dtype
                              and p.flags.c_contiguous):
        raise ValueError(f"{name}: expected p a C-contiguous {(B, H, T, T)} {dtype} array, got "
                         f"{getattr(p, 'shape', type(p).__name__)} {getattr(p, 'dtype', '')}")
    return p


def attention_forward(q, k, v, scale, causal, out=None, p=None):
    """Fused attention (C, one head per OpenMP task); same contract as ``reference.attention_forward``.

    q, k, v (B, H, T, D), any strides with D the unit-stride axis (others are copied first).
    Returns out (B, H, T, D) and lse (B, H, T). ``out``, when given, is a (B, H, T, D) view to
    write into (for example the heads of a (B, T, H, D) array, so the caller needs no transpose);
    ``p``, when given, a C-contiguous (B, H, T, T) array that receives the probabilities.
    """
    q, k, v = _heads("attention_forward", [("q", q), ("k", k), ("v", v)])
    B, H, T, D = q.shape
    if out is None:
        out = np.empty((B, H, T, D), dtype=q.dtype)
    else:
        (out,) = _out_heads("attention_forward", [("out", out)], q.shape, q.dtype)
    lse = np.empty((B, H, T), dtype=q.dtype)
    p = _probabilities("attention_forward", p, q.shape, q.dtype)
    _C.attention_forward(q, k, v, out, lse, float(scale), bool(causal), p)
    return out, lse


def attention_backward(dout, q, k, v, out, lse, scale, causal, grads=None, p=None):
    """Fused attention backward (uses ``p``, the probabilities the forward kept, or recomputes
    them from lse); same contract as the reference.

    Returns dq, dk, dv, each (B, H, T, D). ``grads``, when given, is a tuple of three (B, H, T, D)
    views to write dq, dk, dv into (for example the thirds of a packed (B, T, 3C) gradient).
    """
    dout, q, k, v, out = _heads("attention_backward", [("dout", dout), ("q", q), ("k", k),
                                                       ("v", v), ("out", out)])
    B, H, T, D = q.shape
    if not isinstance(lse, np.ndarray) or lse.shape != (B, H, T) or lse.dtype != q.dtype:
        raise ValueError(f"attention_backward: expected lse of shape {(B, H, T)} and dtype {q.dtype}, "
                         f"got {getattr(lse, 'shape', None)} {getattr(lse, 'dtype', type(lse).__name__)}")
    lse = np.ascontiguousarray(lse)
    if grads is None:
        grads = tuple(np.empty((B, H, T, D), dtype=q.dtype) for _ in range(3))
    else:
        grads = tuple(_out_heads("attention_backward", list(zip(("dq", "dk", "dv"), grads)),
                                 q.shape, q.dtype))
    p = _probabilities("attention_backward", p, q.shape, q.dtype)
    _C.attention_backward(dout, q, k, v, out, lse, *grads, float(scale), bool(causal), p)
    return grads


def embedding_backward(ids, dout, num_embeddings):
    """The embedding gradient as one C loop (np.add.at takes a slow generic path); same contract as the reference."""
    if not (_float_array(dout) and dout.ndim == 2 and ids.ndim == 1):
        return reference.embedding_backward(ids, dout, num_embeddings)
    dweight = np.empty((num_embeddings, dout.shape[1]), dtype=dout.dtype)
    _C.embedding_backward(np.ascontiguousarray(ids, dtype=np.int64), np.ascontiguousarray(dout), dweight)
    return dweight


# ---------------------------------------------------------------- row-wise kernels
# Shape legend: R rows (every leading axis flattened), C the last axis.
def _float_array(*arrays):
    """True when every argument is a float32/float64 ndarray of one dtype."""
    first = arrays[0]
    return all(isinstance(x, np.ndarray) and x.dtype == first.dtype for x in arrays) \
        and first.dtype in _FLOATS


def _rows(x):
    """x (..., C) as a C-contiguous (R, C) array (a view when x is already contiguous)."""
    x = np.ascontiguousarray(x)
    return x.reshape(-1, x.shape[-1])                                # (R, C)


def _last_axis(x, axis):
    return x.ndim >= 1 and axis in (-1, x.ndim - 1)


def _softmax_rows(x, axis, log_space, fallback):
    if not (_float_array(x) and _last_axis(x, axis)):
        return fallback(x, axis)
    y = np.empty(x.shape, dtype=x.dtype)
    _C.softmax_rows(_rows(x), y.reshape(-1, x.shape[-1]), log_space)
    return y


def softmax(x, axis=-1):
    """softmax over ``axis`` in one C pass per row (the last axis; other axes use NumPy)."""
    return _softmax_rows(x, axis, False, reference.softmax)


def log_softmax(x, axis=-1):
    """log_softmax over ``axis`` (the last axis in C; other axes use NumPy)."""
    return _softmax_rows(x, axis, True, reference.log_softmax)


def softmax_backward(y, dy, axis=-1):
    """dx = y * (dy - sum(dy * y)) over the last axis, in C."""
    if not (_float_array(y, dy) and y.shape == dy.shape and _last_axis(y, axis)):
        return reference.softmax_backward(y, dy, axis)
    dx = np.empty(y.shape, dtype=y.dtype)
    _C.softmax_backward_rows(_rows(y), _rows(dy), dx.reshape(-1, y.shape[-1]), False)
    return dx


def log_softmax_backward(y, dy, axis=-1):
    """dx = dy - exp(y) * sum(dy) over the last axis, in C (float32; float64 stays NumPy, whose
    exp is vectorised where libm's is not)."""
    if not (_float_array(y, dy) and y.shape == dy.shape and _last_axis(y, axis)
            and y.dtype == np.float32):
        return reference.log_softmax_backward(y, dy, axis)
    dx = np.empty(y.shape, dtype=y.dtype)
    _C.softmax_backward_rows(_rows(y), _rows(dy), dx.reshape(-1, y.shape[-1]), True)
    return dx


# cross_entropy_forward / _backward stay NumPy (reference.py): at CLIP's sizes the logits are
# (batch, batch), a few thousand values, where the call overhead, not the arithmetic, is the cost
# (benchmarks/README.md, "Kernel notes").


def layer_norm_forward(x, weight, bias, eps=1e-5):
    """LayerNorm over the last axis in C; returns (y, mean, rstd), mean/rstd of shape (..., 1)."""
    params = [a for a in (weight, bias) if a is not None]
    if not (_float_array(x, *params) and x.ndim >= 1
            and all(a.shape == x.shape[-1:] for a in params)):
        return reference.layer_norm_forward(x, weight, bias, eps)
    C = x.shape[-1]
    y = np.empty(x.shape, dtype=x.dtype)
    mean = np.empty(x.shape[:-1] + (1,), dtype=x.dtype)              # (..., 1)
    rstd = np.empty(x.shape[:-1] + (1,), dtype=x.dtype)
    _C.layer_norm_forward_rows(_rows(x), None if weight is None else np.ascontiguousarray(weight),
                               None if bias is None else np.ascontiguousarray(bias), float(eps),
                               y.reshape(-1, C), mean.reshape(-1), rstd.reshape(-1))
    return y, mean, rstd


def layer_norm_backward(dy, x, weight, mean, rstd):
    """LayerNorm backward over the last axis in C; returns (dx, dweight or None, dbias)."""
    params = [a for a in (weight,) if a is not None]
    if not (_float_array(dy, x, mean, rstd, *params) and x.ndim >= 1 and dy.shape == x.shape
            and mean.shape == x.shape[:-1] + (1,) and rstd.shape == mean.shape
            and all(a.shape == x.shape[-1:] for a in params)):
        return reference.layer_norm_backward(dy, x, weight, mean, rstd)
    C = x.shape[-1]
    dx = np.empty(x.shape, dtype=x.dtype)
    dweight = None if weight is None else np.empty((C,), dtype=x.dtype)
    dbias = np.empty((C,), dtype=x.dtype)
    _C.layer_norm_backward_rows(_rows(dy), _rows(x), None if weight is None else np.ascontiguousarray(weight),
                                np.ascontiguousarray(mean).reshape(-1), np.ascontiguousarray(rstd).reshape(-1),
                                dx.reshape(-1, C), dweight, dbias)
    return dx, dweight, dbias


# ----------------------------------------------------------------------- activations
def _elementwise(name, x, *more):
    y = np.empty(x.shape, dtype=x.dtype)
    flat = [np.ascontiguousarray(a).reshape(-1) for a in (x,) + more]
    if more:
        _C.activation_backward(name, *flat, y.reshape(-1))
    else:
        _C.activation(name, flat[0], y.reshape(-1))
    return y


# float64 GELU stays NumPy: libm's tanh is scalar where NumPy's is vectorised; float32 goes
# through the vectorised exp (benchmarks/README.md, "Kernel notes").
def gelu_forward(x):
    """GELU (tanh form), one C pass (float32; float64 uses the NumPy reference)."""
    if not (_float_array(x) and x.dtype == np.float32):
        return reference.gelu_forward(x)
    return _elementwise("gelu", x)


def gelu_backward(x, dy):
    """dy * GELU'(x), one C pass (float32; float64 uses the NumPy reference)."""
    if not (_float_array(x, dy) and x.shape == dy.shape and x.dtype == np.float32):
        return reference.gelu_backward(x, dy)
    return _elementwise("gelu", x, dy)


def quick_gelu_forward(x):
    """QuickGELU x * sigmoid(1.702 x), one C pass."""
    return _elementwise("quick_gelu", x) if _float_array(x) else reference.quick_gelu_forward(x)


def quick_gelu_backward(x, dy):
    """dy * QuickGELU'(x), one C pass."""
    if not (_float_array(x, dy) and x.shape == dy.shape):
        return reference.quick_gelu_backward(x, dy)
    return _elementwise("quick_gelu", x, dy)


def relu_backward(y, dy):
    """dy where y > 0, else 0: one branch-free C pass (csrc/relu.c)."""
    if not (_float_array(y, dy) and y.shape == dy.shape):
        return reference.relu_backward(y, dy)
    dx = np.empty(y.shape, dtype=y.dtype)
    _C.relu_backward(*(np.ascontiguousarray(a).reshape(-1) for a in (y, dy)), dx.reshape(-1))
    return dx


# ----------------------------------------------------------------------- convolution
def _contiguous(*arrays):
    return [None if a is None else np.ascontiguousarray(a) for a in arrays]


def im2col(x, kh, kw, stride, padding, merged=False):
    """The windows of x (N, C, H, W) as columns (N, C*kh*kw, L), or (C*kh*kw, N*L) when ``merged``,
    in C; same contract as the reference."""
    plain_1x1 = kh == kw == 1 and stride == 1 and padding == 0 and not merged
    if not (_float_array(x) and x.ndim == 4) or plain_1x1:
        return reference.im2col(x, kh, kw, stride, padding, merged)     # 1x1: x itself, a view
    N, C, H, W = x.shape
    L = ((H + 2 * padding - kh) // stride + 1) * ((W + 2 * padding - kw) // stride + 1)
    CK = C * kh * kw
    cols = np.empty((CK, N, L) if merged else (N, CK, L), dtype=x.dtype)
    _C.im2col(np.ascontiguousarray(x), kh, kw, stride, padding, cols, merged)
    return cols.reshape(CK, N * L) if merged else cols


def col2im(cols, x_shape, kh, kw, stride, padding, merged=False):
    """The adjoint of im2col (either layout), in C (same order of additions as the reference, so
    equal to the bit)."""
    plain_1x1 = kh == kw == 1 and stride == 1 and padding == 0 and not merged
    if not (_float_array(cols) and cols.ndim == (2 if merged else 3)) or plain_1x1:
        return reference.col2im(cols, x_shape, kh, kw, stride, padding, merged)
    dx = np.empty(x_shape, dtype=cols.dtype)
    if merged:
        cols = cols.reshape(cols.shape[0], x_shape[0], -1)                # (CK, N*L) -> (CK, N, L)
    _C.col2im(np.ascontiguousarray(cols), kh, kw, stride, padding, dx, merged)
    return dx


# 3x3 convolutions (stride 1, padding 1) with at least this many input channels use Winograd's
# F(2x2, 3x3) (csrc/winograd.c: 2.25x fewer multiply-adds, in 16 GEMMs with C as their inner size);
# below it those GEMMs are too thin to run at speed and im2col is faster (benchmarks/README.md).
WINOGRAD_MIN_CHANNELS = 128


def conv2d(x, weight, stride, padding, scale=None, shift=None, residual=None, relu=False, method="auto"):
    """Convolution and its epilogue in C, block by block; same contract as the reference.

    ``method``: "im2col" (csrc/conv.c), "winograd" (csrc/winograd.c; 3x3, stride 1, padding 1) or
    "auto" (Winograd for such convolutions with at least WINOGRAD_MIN_CHANNELS input channels).
    """
    extra = [a for a in (scale, shift, residual) if a is not None]
    if not (_float_array(x, weight, *extra) and x.ndim == 4 and weight.ndim == 4):
        return reference.conv2d(x, weight, stride, padding, scale, shift, residual, relu, method)
    N, C, H, W = x.shape
    O, _, kh, kw = weight.shape
    Ho, Wo = (H + 2 * padding - kh) // stride + 1, (W + 2 * padding - kw) // stride + 1
    if method == "auto":
        winograd = kh == kw == 3 and stride == padding == 1 and C >= WINOGRAD_MIN_CHANNELS
        method = "winograd" if winograd else "im2col"
    elif method not in ("im2col", "winograd"):
        raise ValueError(f"conv2d: expected method 'auto', 'im2col' or 'winograd', got {method!r}")
    y = np.empty((N, O, Ho, Wo), dtype=x.dtype)
    x, w2, scale, shift, residual = _contiguous(x, weight.reshape(O, -1), scale, shift, residual)
    _C.conv2d_forward(x, w2, kh, kw, stride, padding, scale, shift, residual, relu, y, method)
    return y


# The backward's columns and dy for a block of images take at most this many bytes, so that they
# stay in L2 from im2col to the GEMMs and from the GEMM to col2im, beside the GEMM's packed copy of
# the columns (a quarter of a 2 MiB L2; benchmarks/README.md, "The convolutions' backward, again").
CONV_BACKWARD_BLOCK_BYTES = 1 << 19


def conv2d_backward(x, weight, dy, stride, padding, needs_dx=True, needs_dw=True):
    """The reference's formula in C (csrc/conv.c states how it runs: blocks of whole images shared
    between the threads). Same contract as the reference; for one thread count the same result in
    every run, and between thread counts dx is the same and dW differs by float rounding."""
    if not (_float_array(x, weight, dy) and x.ndim == 4 and weight.ndim == 4 and dy.ndim == 4):
        return reference.conv2d_backward(x, weight, dy, stride, padding, needs_dx, needs_dw)
    O, C, kh, kw = weight.shape
    dx = np.empty(x.shape, x.dtype) if needs_dx else None
    dw = np.empty(weight.shape, x.dtype) if needs_dw else None
    if needs_dx or needs_dw:
        x, w2, dy = _contiguous(x, weight.reshape(O, C * kh * kw), dy)  # w2 (O, CK)
        _C.conv2d_backward(x, w2, dy, kh, kw, stride, padding, CONV_BACKWARD_BLOCK_BYTES, dx,
                           None if dw is None else dw.reshape(O, C * kh * kw))
    return dx, dw


def avg_pool2d(x, k):
    """The means of x's k x k blocks in C (csrc/pool.c); same contract as the reference."""
    if not (_float_array(x) and x.ndim == 4):
        return reference.avg_pool2d(x, k)
    N, C, H, W = x.shape
    y = np.empty((N, C, H // k, W // k), dtype=x.dtype)
    _C.avg_pool2d(np.ascontiguousarray(x).reshape(N * C, H, W), k, y.reshape(N * C, H // k, W // k))
    return y


def avg_pool2d_backward(dy, x_shape, k):
    """The backward of avg_pool2d in C (csrc/pool.c); same contract as the reference."""
    if not (_float_array(dy) and dy.ndim == 4 and len(x_shape) == 4):
        return reference.avg_pool2d_backward(dy, x_shape, k)
    N, C, H, W = x_shape
    dx = np.empty(x_shape, dtype=dy.dtype)
    _C.avg_pool2d_backward(np.ascontiguousarray(dy).reshape(N * C, H // k, W // k), k, dx.reshape(N * C, H, W))
    return dx


# ------------------------------------------------------------------------ batch norm
# csrc/batchnorm.c: each kernel views x (N, C, H, W) as (N, C, H*W); same contracts as the reference.
def _bn_rows(x):
    return np.ascontiguousarray(x).reshape(x.shape[0], x.shape[1], -1)     # (N, C, HW)


def batch_norm_stats(x):
    """mean, var (C,) of x's channels, in C: two passes (the mean, then the squared deviations)."""
    if not (_float_array(x) and x.ndim == 4 and x.size):
        return reference.batch_norm_stats(x)
    mean, var = np.empty(x.shape[1], x.dtype), np.empty(x.shape[1], x.dtype)
    _C.batchnorm_stats(_bn_rows(x), mean, var)
    return mean, var


def batch_norm_apply(x, scale, shift):
    """y = x * scale[c] + shift[c] in one C pass."""
    if not (_float_array(x, scale, shift) and x.ndim == 4 and x.size):
        return reference.batch_norm_apply(x, scale, shift)
    y = np.empty(x.shape, x.dtype)
    _C.batchnorm_apply(_bn_rows(x), np.ascontiguousarray(scale), np.ascontiguousarray(shift), _bn_rows(y))
    return y


def batch_norm_backward(x, dy, mu, rstd, weight, training):
    """(dx, dweight, dbias) in C: one pass for the two sums, one for dx."""
    if not (_float_array(x, dy, mu, rstd, weight) and x.ndim == 4 and x.shape == dy.shape and x.size):
        return reference.batch_norm_backward(x, dy, mu, rstd, weight, training)
    C = x.shape[1]
    dx = np.empty(x.shape, x.dtype)
    dweight, dbias = np.empty(C, x.dtype), np.empty(C, x.dtype)
    _C.batchnorm_backward(_bn_rows(x), _bn_rows(dy), *_contiguous(mu, rstd, weight), bool(training),
                          _bn_rows(dx), dweight, dbias)
    return dx, dweight, dbias


# ----------------------------------------------------------------------------- AdamW
def adamw_step(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, step):
    """One AdamW update in place, in one C pass; same formula as ``reference.adamw_step``.

    param, m, v must be C-contiguous and writeable (they are updated where they are;
    otherwise the NumPy reference runs); grad may have any layout.
    """
    if step < 1:
        raise ValueError(f"adamw_step: expected step >= 1 (the number of this update), got {step}")
    if not (_float_array(param, grad, m, v) and param.shape == grad.shape == m.shape == v.shape
            and all(a.flags.c_contiguous and a.flags.writeable for a in (param, m, v))):
        return reference.adamw_step(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, step)
    bc1 = 1.0 - beta1 ** step
    bc2 = 1.0 - beta2 ** step
    _C.adamw_step(param.reshape(-1), np.ascontiguousarray(grad).reshape(-1), m.reshape(-1), v.reshape(-1),
                  1.0 - lr * weight_decay, beta1, beta2, lr / bc1, 1.0 / np.sqrt(bc2), eps)
