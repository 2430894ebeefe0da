# _C.pyx: thin Cython wrappers that hand NumPy buffers to the C kernels in csrc/*.c.
#
# Each wrapper checks shapes, takes raw pointers and *element* strides from typed
# memoryviews (any layout: transposed and sliced views work without a copy), and
# releases the GIL around the C call. `floating` compiles every wrapper twice,
# for float32 and float64, from this one source.
#
# Shape legend: M, N, K the GEMM sizes (C is M x N, the sum runs over K).

from kernels cimport *

import numpy as _np

_FLOAT32 = _np.dtype(_np.float32)
_FLOAT64 = _np.dtype(_np.float64)

ctypedef fused floating:
    float
    double


def compile_flags():
    """The C compiler flags this extension was built with."""
    return miniclip_compile_flags().decode()


def has_openmp():
    """True when the kernels were compiled with OpenMP."""
    return bool(miniclip_has_openmp())


def max_threads():
    """Threads an OpenMP region will use (1 without OpenMP)."""
    return miniclip_max_threads()


def set_num_threads(int n):
    """Set the OpenMP thread count for every later kernel call."""
    if n < 1:
        raise ValueError(f"set_num_threads: expected n >= 1, got {n}")
    miniclip_set_num_threads(n)


def debug_build():
    """True when built with MINICLIP_DEBUG=1 (bounds checks on, -O0)."""
    return bool(miniclip_debug_build())


cdef tuple _shape3(Py_ssize_t *shape):
    return (shape[0], shape[1], shape[2])


cdef inline idx_t _stride(Py_ssize_t byte_stride, Py_ssize_t itemsize):
    return byte_stride // itemsize


_SIMD_MODES = {"auto": 0, "generic": 1, "avx2": 2, "avx512": 0}


def set_simd(str mode):
    """Choose the micro-kernels: "auto" (the best this CPU supports), "generic" (portable C),
    "avx2" (at most AVX2+FMA) or "avx512" (an error where the CPU has no AVX-512)."""
    if mode not in _SIMD_MODES:
        raise ValueError(f"set_simd: expected 'auto', 'generic', 'avx2' or 'avx512', got {mode!r}")
    miniclip_set_simd(_SIMD_MODES[mode])
    name = simd_name()
    if mode in ("avx2", "avx512") and not name.startswith(mode):
        miniclip_set_simd(0)
        raise ValueError(f"set_simd: expected a CPU with {mode}, this one runs {simd_name()!r} at best")


def simd_name():
    """The micro-kernel GEMM v3 uses now: "avx512", "avx2+fma" or "generic"."""
    return miniclip_simd_name().decode()


def peak_gflops(dtype, int nthreads, double seconds):
    """GFLOP/s of a register-only FMA loop (peak.c) on nthreads threads, float32 or float64."""
    cdef double g
    dt = _np.dtype(dtype)
    if dt != _FLOAT32 and dt != _FLOAT64:
        raise TypeError(f"peak_gflops: expected dtype float32 or float64, got {dt}")
    cdef bint f32 = dt == _FLOAT32
    with nogil:
        g = peak_gflops_f32(nthreads, seconds) if f32 else peak_gflops_f64(nthreads, seconds)
    return g


def gemm(A, B, C, double alpha=1.0, double beta=0.0, int version=3):
    """C = alpha * A @ B + beta * C, written into C, with GEMM v1 (naive), v2 (tiled) or v3 (packed).

    A (M, K), B (K, N), C (M, N): any strides (a transpose is a stride swap), one dtype,
    float32 or float64. beta == 0: C is write-only. C must not overlap A or B.
    """
    # choose the float or double version here from the dtype: a fused `def` would pick
    # it by trying each signature's buffer conversion, which costs microseconds, as much
    # as a whole 64 x 64 product
    dtype = getattr(A, "dtype", None)
    if dtype == _FLOAT32:
        _gemm[float](A, B, C, alpha, beta, version)
    elif dtype == _FLOAT64:
        _gemm[double](A, B, C, alpha, beta, version)
    else:
        raise TypeError(f"gemm: expected float32 or float64 arrays, got {dtype}")


cdef _gemm(const floating[:, :] A, const floating[:, :] B, floating[:, :] C,
           double alpha, double beta, int version):
    cdef idx_t M = A.shape[0], K = A.shape[1], N = B.shape[1]
    if B.shape[0] != K or C.shape[0] != M or C.shape[1] != N:
        raise ValueError(
            f"gemm: expected A (M, K), B (K, N), C (M, N); got A ({A.shape[0]}, {A.shape[1]}), "
            f"B ({B.shape[0]}, {B.shape[1]}), C ({C.shape[0]}, {C.shape[1]})")
    if version not in (1, 2, 3):
        raise ValueError(f"gemm: expected version 1, 2 or 3, got {version}")
    if M == 0 or N == 0:
        return
    cdef Py_ssize_t s = sizeof(floating)
    cdef idx_t rs_a = _stride(A.strides[0], s), cs_a = _stride(A.strides[1], s)
    cdef idx_t rs_b = _stride(B.strides[0], s), cs_b = _stride(B.strides[1], s)
    cdef idx_t rs_c = _stride(C.strides[0], s), cs_c = _stride(C.strides[1], s)
    cdef const floating *pa = &A[0, 0] if K > 0 else NULL
    cdef const floating *pb = &B[0, 0] if K > 0 else NULL
    with nogil:
        if floating is float:
            if version == 1:
                gemm_naive_f32(M, N, K, <float>alpha, pa, rs_a, cs_a, pb, rs_b, cs_b,
                               <float>beta, &C[0, 0], rs_c, cs_c)
            elif version == 2:
                gemm_tiled_f32(M, N, K, <float>alpha, pa, rs_a, cs_a, pb, rs_b, cs_b,
                               <float>beta, &C[0, 0], rs_c, cs_c)
            else:
                gemm_packed_f32(M, N, K, <float>alpha, pa, rs_a, cs_a, pb, rs_b, cs_b,
                                <float>beta, &C[0, 0], rs_c, cs_c, 0)
        else:
            if version == 1:
                gemm_naive_f64(M, N, K, alpha, pa, rs_a, cs_a, pb, rs_b, cs_b,
                               beta, &C[0, 0], rs_c, cs_c)
            elif version == 2:
                gemm_tiled_f64(M, N, K, alpha, pa, rs_a, cs_a, pb, rs_b, cs_b,
                               beta, &C[0, 0], rs_c, cs_c)
            else:
                gemm_packed_f64(M, N, K, alpha, pa, rs_a, cs_a, pb, rs_b, cs_b,
                                beta, &C[0, 0], rs_c, cs_c, 0)


def gemm_bias(A, B, C, bias=None, R=None):
    """C = A @ B + bias + R, written into C, with GEMM v3 and its epilogue (see gemm_epilogue_f32).

    A (M, K), B (K, N), C (M, N), bias (N,) or None, R (M, N) or None: any strides, one dtype.
    The bias (a layer's b) and R (a residual stream) are added to each tile of C as soon as it
    is final, so there is no second pass over C. C must not overlap A, B or R.
    """
    dtype = getattr(A, "dtype", None)
    if dtype == _FLOAT32:
        _gemm_bias[float](A, B, C, bias, R)
    elif dtype == _FLOAT64:
        _gemm_bias[double](A, B, C, bias, R)
    else:
        raise TypeError(f"gemm_bias: expected float32 or float64 arrays, got {dtype}")


cdef _gemm_bias(const floating[:, :] A, const floating[:, :] B, floating[:, :] C,
                const floating[:] bias, const floating[:, :] R):
    cdef idx_t M = A.shape[0], K = A.shape[1], N = B.shape[1]
    if B.shape[0] != K or C.shape[0] != M or C.shape[1] != N:
        raise ValueError(
            f"gemm_bias: expected A (M, K), B (K, N), C (M, N); got A ({A.shape[0]}, {A.shape[1]}), "
            f"B ({B.shape[0]}, {B.shape[1]}), C ({C.shape[0]}, {C.shape[1]})")
    if bias is not None and bias.shape[0] != N:
        raise ValueError(f"gemm_bias: expected bias ({N},), got ({bias.shape[0]},)")
    if R is not None and (R.shape[0] != M or R.shape[1] != N):
        raise ValueError(f"gemm_bias: expected R ({M}, {N}) like C, got ({R.shape[0]}, {R.shape[1]})")
    if M == 0 or N == 0:
        return
    cdef Py_ssize_t s = sizeof(floating)
    cdef idx_t rs_a = _stride(A.strides[0], s), cs_a = _stride(A.strides[1], s)
    cdef idx_t rs_b = _stride(B.strides[0], s), cs_b = _stride(B.strides[1], s)
    cdef idx_t rs_c = _stride(C.strides[0], s), cs_c = _stride(C.strides[1], s)
    cdef const floating *pa = &A[0, 0] if K > 0 else NULL
    cdef const floating *pb = &B[0, 0] if K > 0 else NULL
    cdef const floating *pbias = &bias[0] if bias is not None else NULL
    cdef const floating *pr = &R[0, 0] if R is not None else NULL
    cdef idx_t cs_bias = _stride(bias.strides[0], s) if bias is not None else 0
    cdef idx_t rs_r = _stride(R.strides[0], s) if R is not None else 0
    cdef idx_t cs_r = _stride(R.strides[1], s) if R is not None else 0
    with nogil:
        if floating is float:
            gemm_epilogue_f32(M, N, K, 1.0, pa, rs_a, cs_a, pb, rs_b, cs_b, 0.0, &C[0, 0], rs_c, cs_c,
                              pbias, cs_bias, pr, rs_r, cs_r, 0)
        else:
            gemm_epilogue_f64(M, N, K, 1.0, pa, rs_a, cs_a, pb, rs_b, cs_b, 0.0, &C[0, 0], rs_c, cs_c,
                              pbias, cs_bias, pr, rs_r, cs_r, 0)


def gemm_naive(const floating[:, :] A, const floating[:, :] B, floating[:, :] C,
               double alpha=1.0, double beta=0.0):
    """C = alpha * A @ B + beta * C with the naive triple loop (GEMM v1); see gemm."""
    gemm(A, B, C, alpha, beta, 1)


def gemm_batched(const floating[:, :, :] A, const floating[:, :, :] B, floating[:, :, :] C,
                 double alpha=1.0, double beta=0.0):
    """C[b] = alpha * A[b] @ B[b] + beta * C[b] for every b, with GEMM v3.

    A (nb, M, K), B (nb, K, N), C (nb, M, N): any strides; a batch stride of 0 in A or B
    broadcasts one matrix over the batch. C's batch entries must not overlap.
    """
    cdef idx_t nb = C.shape[0], M = A.shape[1], K = A.shape[2], N = B.shape[2]
    if (A.shape[0] != nb or B.shape[0] != nb or B.shape[1] != K
            or C.shape[1] != M or C.shape[2] != N):
        raise ValueError(
            f"gemm_batched: expected A (nb, M, K), B (nb, K, N), C (nb, M, N); got "
            f"A {_shape3(A.shape)}, B {_shape3(B.shape)}, C {_shape3(C.shape)}")
    if nb == 0 or M == 0 or N == 0:
        return
    cdef Py_ssize_t s = sizeof(floating)
    cdef idx_t bs_a = _stride(A.strides[0], s), rs_a = _stride(A.strides[1], s), cs_a = _stride(A.strides[2], s)
    cdef idx_t bs_b = _stride(B.strides[0], s), rs_b = _stride(B.strides[1], s), cs_b = _stride(B.strides[2], s)
    cdef idx_t bs_c = _stride(C.strides[0], s), rs_c = _stride(C.strides[1], s), cs_c = _stride(C.strides[2], s)
    if nb > 1 and bs_c == 0:
        raise ValueError("gemm_batched: C must not broadcast over the batch (batch stride 0)")
    cdef const floating *pa = &A[0, 0, 0] if K > 0 else NULL
    cdef const floating *pb = &B[0, 0, 0] if K > 0 else NULL
    with nogil:
        if floating is float:
            gemm_batched_f32(nb, M, N, K, <float>alpha, pa, bs_a, rs_a, cs_a, pb, bs_b, rs_b, cs_b,
                             <float>beta, &C[0, 0, 0], bs_c, rs_c, cs_c)
        else:
            gemm_batched_f64(nb, M, N, K, alpha, pa, bs_a, rs_a, cs_a, pb, bs_b, rs_b, cs_b,
                             beta, &C[0, 0, 0], bs_c, rs_c, cs_c)


cdef attn_layout _layout(str name, str arg, Py_ssize_t *shape, Py_ssize_t *strides,
                         Py_ssize_t itemsize) except *:
    """Element strides of a (B, H, T, D) view whose D axis must have unit stride (or D = 1)."""
    cdef attn_layout l
    if strides[3] != itemsize and shape[3] != 1:
        raise ValueError(f"{name}: expected {arg} with a contiguous last axis (D), got a byte stride "
                         f"of {strides[3]} for items of {itemsize} bytes")
    l.batch = strides[0] // itemsize
    l.head = strides[1] // itemsize
    l.row = strides[2] // itemsize
    return l


def _check_heads(str name, tuple expected, **arrays):
    for arg, a in arrays.items():
        got = (a.shape[0], a.shape[1], a.shape[2], a.shape[3])
        if got != expected:
            raise ValueError(f"{name}: expected {arg} of shape {expected} like q, got {got}")


def _check_probabilities(str name, p, idx_t B, idx_t H, idx_t T):
    if p is not None and (p.shape[0] != B or p.shape[1] != H or p.shape[2] != T or p.shape[3] != T):
        raise ValueError(f"{name}: expected p ({B}, {H}, {T}, {T}), got {tuple(p.shape)[:4]}")


def attention_forward(const floating[:, :, :, :] q, const floating[:, :, :, :] k,
                      const floating[:, :, :, :] v, floating[:, :, :, :] out,
                      floating[:, :, ::1] lse, double scale, bint causal, floating[:, :, :, ::1] p=None):
    """Fused attention forward: q, k, v, out (B, H, T, D), any strides but unit stride along D
    (views into a packed qkv projection work; checked below, as a memoryview type cannot say
    "last axis contiguous, the others strided"); writes out and lse (B, H, T) contiguous, and
    the probabilities into p (B, H, T, T) contiguous when given."""
    cdef idx_t B = q.shape[0], H = q.shape[1], T = q.shape[2], D = q.shape[3]
    _check_heads("attention_forward", (B, H, T, D), k=k, v=v, out=out)
    if lse.shape[0] != B or lse.shape[1] != H or lse.shape[2] != T:
        raise ValueError(f"attention_forward: expected lse ({B}, {H}, {T}), "
                         f"got ({lse.shape[0]}, {lse.shape[1]}, {lse.shape[2]})")
    _check_probabilities("attention_forward", p, B, H, T)
    if B == 0 or H == 0 or T == 0:
        return
    if D == 0:
        raise ValueError("attention_forward: head dim D must be at least 1")
    cdef Py_ssize_t s = sizeof(floating)
    cdef str name = "attention_forward"
    cdef attn_layout lq = _layout(name, "q", q.shape, q.strides, s)
    cdef attn_layout lk = _layout(name, "k", k.shape, k.strides, s)
    cdef attn_layout lv = _layout(name, "v", v.shape, v.strides, s)
    cdef attn_layout lo = _layout(name, "out", out.shape, out.strides, s)
    cdef floating *pp = NULL if p is None else &p[0, 0, 0, 0]
    with nogil:
        if floating is float:
            attention_forward_f32(B, H, T, D, <float>scale, causal, &q[0, 0, 0, 0], lq, &k[0, 0, 0, 0], lk,
                                  &v[0, 0, 0, 0], lv, &out[0, 0, 0, 0], lo, &lse[0, 0, 0], pp)
        else:
            attention_forward_f64(B, H, T, D, scale, causal, &q[0, 0, 0, 0], lq, &k[0, 0, 0, 0], lk,
                                  &v[0, 0, 0, 0], lv, &out[0, 0, 0, 0], lo, &lse[0, 0, 0], pp)


def attention_backward(const floating[:, :, :, :] dout, const floating[:, :, :, :] q,
                       const floating[:, :, :, :] k, const floating[:, :, :, :] v,
                       const floating[:, :, :, :] out, const floating[:, :, ::1] lse,
                       floating[:, :, :, :] dq, floating[:, :, :, :] dk, floating[:, :, :, :] dv,
                       double scale, bint causal, const floating[:, :, :, ::1] p=None):
    """Fused attention backward, (B, H, T, D) arrays as in attention_forward: writes dq, dk, dv;
    p, the probabilities the forward kept (B, H, T, T), or None: recomputed from lse."""
    cdef idx_t B = q.shape[0], H = q.shape[1], T = q.shape[2], D = q.shape[3]
    _check_heads("attention_backward", (B, H, T, D), dout=dout, k=k, v=v, out=out, dq=dq, dk=dk, dv=dv)
    if lse.shape[0] != B or lse.shape[1] != H or lse.shape[2] != T:
        raise ValueError(f"attention_backward: expected lse ({B}, {H}, {T}), "
                         f"got ({lse.shape[0]}, {lse.shape[1]}, {lse.shape[2]})")
    _check_probabilities("attention_backward", p, B, H, T)
    if B == 0 or H == 0 or T == 0:
        return
    if D == 0:
        raise ValueError("attention_backward: head dim D must be at least 1")
    cdef Py_ssize_t s = sizeof(floating)
    cdef str name = "attention_backward"
    cdef attn_layout ldo = _layout(name, "dout", dout.shape, dout.strides, s)
    cdef attn_layout lq = _layout(name, "q", q.shape, q.strides, s)
    cdef attn_layout lk = _layout(name, "k", k.shape, k.strides, s)
    cdef attn_layout lv = _layout(name, "v", v.shape, v.strides, s)
    cdef attn_layout lo = _layout(name, "out", out.shape, out.strides, s)
    cdef attn_layout ldq = _layout(name, "dq", dq.shape, dq.strides, s)
    cdef attn_layout ldk = _layout(name, "dk", dk.shape, dk.strides, s)
    cdef attn_layout ldv = _layout(name, "dv", dv.shape, dv.strides, s)
    cdef const floating *pp = NULL if p is None else &p[0, 0, 0, 0]
    with nogil:
        if floating is float:
            attention_backward_f32(B, H, T, D, <float>scale, causal, &dout[0, 0, 0, 0], ldo,
                                   &q[0, 0, 0, 0], lq, &k[0, 0, 0, 0], lk, &v[0, 0, 0, 0], lv,
                                   &out[0, 0, 0, 0], lo, &lse[0, 0, 0], pp,
                                   &dq[0, 0, 0, 0], ldq, &dk[0, 0, 0, 0], ldk, &dv[0, 0, 0, 0], ldv)
        else:
            attention_backward_f64(B, H, T, D, scale, causal, &dout[0, 0, 0, 0], ldo,
                                   &q[0, 0, 0, 0], lq, &k[0, 0, 0, 0], lk, &v[0, 0, 0, 0], lv,
                                   &out[0, 0, 0, 0], lo, &lse[0, 0, 0], pp,
                                   &dq[0, 0, 0, 0], ldq, &dk[0, 0, 0, 0], ldk, &dv[0, 0, 0, 0], ldv)


def embedding_backward(const long long[::1] ids, const floating[:, ::1] dout, floating[:, ::1] dweight):
    """dweight = 0, then dweight[ids[n]] += dout[n] for every n (ids checked to lie in [0, V))."""
    cdef idx_t N = ids.shape[0], C = dout.shape[1], V = dweight.shape[0]
    if dout.shape[0] != N or dweight.shape[1] != C:
        raise ValueError(f"embedding_backward: expected dout ({N}, C) and dweight (V, C); got dout "
                         f"({dout.shape[0]}, {dout.shape[1]}), dweight ({V}, {dweight.shape[1]})")
    cdef idx_t n
    for n in range(N):
        if ids[n] < 0 or ids[n] >= V:
            raise IndexError(f"embedding_backward: ids must lie in [0, {V}), got {ids[n]} at position {n}")
    if V == 0 or C == 0:
        return
    with nogil:
        if floating is float:
            embedding_backward_f32(N, C, V, &ids[0] if N else NULL, &dout[0, 0] if N else NULL, &dweight[0, 0])
        else:
            embedding_backward_f64(N, C, V, &ids[0] if N else NULL, &dout[0, 0] if N else NULL, &dweight[0, 0])


# ------------------------------------------------------------------ row kernels
# Rows are (R, C) C-contiguous views: the Python wrappers in miniclip/backend/compiled.py
# flatten the leading axes and make the arrays contiguous first.

def softmax_rows(const floating[:, ::1] x, floating[:, ::1] y, bint log_space):
    """y = softmax(x) (or log_softmax when log_space) over each row."""
    cdef idx_t R = x.shape[0], C = x.shape[1]
    if y.shape[0] != R or y.shape[1] != C:
        raise ValueError("softmax_rows: y must have the shape of x")
    if R == 0 or C == 0:
        return
    with nogil:
        if floating is float:
            softmax_rows_f32(R, C, &x[0, 0], &y[0, 0], log_space)
        else:
            softmax_rows_f64(R, C, &x[0, 0], &y[0, 0], log_space)


def softmax_backward_rows(const floating[:, ::1] y, const floating[:, ::1] dy,
                          floating[:, ::1] dx, bint log_space):
    """dx from y = softmax(x) (or log_softmax) and dy, row by row."""
    cdef idx_t R = y.shape[0], C = y.shape[1]
    if dy.shape[0] != R or dy.shape[1] != C or dx.shape[0] != R or dx.shape[1] != C:
        raise ValueError("softmax_backward_rows: y, dy, dx must have one shape")
    if R == 0 or C == 0:
        return
    with nogil:
        if floating is float:
            softmax_backward_rows_f32(R, C, &y[0, 0], &dy[0, 0], &dx[0, 0], log_space)
        else:
            softmax_backward_rows_f64(R, C, &y[0, 0], &dy[0, 0], &dx[0, 0], log_space)


def layer_norm_forward_rows(const floating[:, ::1] x, const floating[::1] weight,
                            const floating[::1] bias, double eps, floating[:, ::1] y,
                            floating[::1] mean, floating[::1] rstd):
    """LayerNorm of each row of x (R, C); weight/bias (C,) or None; writes y, mean (R,), rstd (R,)."""
    cdef idx_t R = x.shape[0], C = x.shape[1]
    if (y.shape[0] != R or y.shape[1] != C or mean.shape[0] != R or rstd.shape[0] != R
            or (weight is not None and weight.shape[0] != C) or (bias is not None and bias.shape[0] != C)):
        raise ValueError("layer_norm_forward_rows: shapes differ")
    if R == 0 or C == 0:
        return
    cdef const floating *pw = &weight[0] if weight is not None else NULL
    cdef const floating *pb = &bias[0] if bias is not None else NULL
    with nogil:
        if floating is float:
            layer_norm_forward_f32(R, C, &x[0, 0], pw, pb, <float>eps, &y[0, 0], &mean[0], &rstd[0])
        else:
            layer_norm_forward_f64(R, C, &x[0, 0], pw, pb, eps, &y[0, 0], &mean[0], &rstd[0])


def layer_norm_backward_rows(const floating[:, ::1] dy, const floating[:, ::1] x,
                             const floating[::1] weight, const floating[::1] mean,
                             const floating[::1] rstd, floating[:, ::1] dx,
                             floating[::1] dweight, floating[::1] dbias):
    """LayerNorm backward over rows: writes dx (R, C), dweight (C,) (when weight given), dbias (C,)."""
    cdef idx_t R = x.shape[0], C = x.shape[1]
    if (dy.shape[0] != R or dy.shape[1] != C or dx.shape[0] != R or dx.shape[1] != C
            or mean.shape[0] != R or rstd.shape[0] != R or dbias.shape[0] != C
            or (weight is not None and (weight.shape[0] != C or dweight is None or dweight.shape[0] != C))):
        raise ValueError("layer_norm_backward_rows: shapes differ")
    if C == 0:
        return
    cdef const floating *pw = &weight[0] if weight is not None else NULL
    cdef floating *pdw = &dweight[0] if weight is not None else NULL
    cdef int ok = 1
    if R == 0:
        for j in range(C):
            dbias[j] = 0
            if pdw != NULL:
                pdw[j] = 0
        return
    with nogil:
        if floating is float:
            ok = layer_norm_backward_f32(R, C, &dy[0, 0], &x[0, 0], pw, &mean[0], &rstd[0],
                                         &dx[0, 0], pdw, &dbias[0])
        else:
            ok = layer_norm_backward_f64(R, C, &dy[0, 0], &x[0, 0], pw, &mean[0], &rstd[0],
                                         &dx[0, 0], pdw, &dbias[0])
    if not ok:
        raise MemoryError("layer_norm_backward: out of memory")


# ------------------------------------------------------------------ elementwise
def activation(str name, const floating[::1] x, floating[::1] y):
    """y = name(x) for name in gelu, quick_gelu; x and y flat and contiguous."""
    cdef idx_t n = x.shape[0]
    if y.shape[0] != n:
        raise ValueError("activation: x and y differ in size")
    if n == 0:
        return
    cdef int which = 0 if name == "gelu" else 1 if name == "quick_gelu" else -1
    if which < 0:
        raise ValueError(f"activation: expected 'gelu' or 'quick_gelu', got {name!r}")
    with nogil:
        if floating is float:
            if which == 0:
                gelu_forward_f32(n, &x[0], &y[0])
            else:
                quick_gelu_forward_f32(n, &x[0], &y[0])
        else:
            if which == 0:
                gelu_forward_f64(n, &x[0], &y[0])
            else:
                quick_gelu_forward_f64(n, &x[0], &y[0])


def activation_backward(str name, const floating[::1] x, const floating[::1] dy, floating[::1] dx):
    """dx = dy * name'(x) for name in gelu, quick_gelu."""
    cdef idx_t n = x.shape[0]
    if dy.shape[0] != n or dx.shape[0] != n:
        raise ValueError("activation_backward: x, dy, dx differ in size")
    if n == 0:
        return
    cdef int which = 0 if name == "gelu" else 1 if name == "quick_gelu" else -1
    if which < 0:
        raise ValueError(f"activation_backward: expected 'gelu' or 'quick_gelu', got {name!r}")
    with nogil:
        if floating is float:
            if which == 0:
                gelu_backward_f32(n, &x[0], &dy[0], &dx[0])
            else:
                quick_gelu_backward_f32(n, &x[0], &dy[0], &dx[0])
        else:
            if which == 0:
                gelu_backward_f64(n, &x[0], &dy[0], &dx[0])
            else:
                quick_gelu_backward_f64(n, &x[0], &dy[0], &dx[0])


def adamw_step(floating[::1] p, const floating[::1] g, floating[::1] m, floating[::1] v,
               double decay, double beta1, double beta2, double step_size, double inv_sqrt_bc2,
               double eps):
    """One AdamW update of flat contiguous p, m, v in place (coefficients from compiled.adamw_step)."""
    cdef idx_t n = p.shape[0]
    if g.shape[0] != n or m.shape[0] != n or v.shape[0] != n:
        raise ValueError("adamw_step: p, g, m, v differ in size")
    if n == 0:
        return
    with nogil:
        if floating is float:
            adamw_step_f32(n, &p[0], &g[0], &m[0], &v[0], <float>decay, <float>beta1, <float>beta2,
                           <float>step_size, <float>inv_sqrt_bc2, <float>eps)
        else:
            adamw_step_f64(n, &p[0], &g[0], &m[0], &v[0], decay, beta1, beta2, step_size,
                           inv_sqrt_bc2, eps)


# ------------------------------------------------------------------ convolution
def conv2d_forward(const floating[:, :, :, ::1] x, const floating[:, ::1] w, int kh, int kw, int stride,
                   int padding, const floating[::1] scale, const floating[::1] shift,
                   const floating[:, :, :, ::1] res, bint relu, floating[:, :, :, ::1] y,
                   str method="im2col"):
    """y (N, O, Ho, Wo) = conv(x (N, C, H, W), w (O, C*kh*kw)), then y * scale + shift (per
    channel) + res, then ReLU; scale, shift, res may be None. All contiguous. method "im2col"
    (conv.c) or "winograd" (winograd.c: 3x3, stride 1, padding 1 only)."""
    cdef idx_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3], O = w.shape[0]
    cdef idx_t Ho = (H + 2 * padding - kh) // stride + 1, Wo = (W + 2 * padding - kw) // stride + 1
    if (w.shape[1] != C * kh * kw or y.shape[0] != N or y.shape[1] != O or y.shape[2] != Ho
            or y.shape[3] != Wo or (scale is not None and scale.shape[0] != O)
            or (shift is not None and shift.shape[0] != O)
            or (res is not None and (res.shape[0] != N or res.shape[1] != O or res.shape[2] != Ho
                                     or res.shape[3] != Wo))):
        raise ValueError("conv2d_forward: shapes differ")
    if y.size == 0:
        return
    cdef const floating *ps = &scale[0] if scale is not None else NULL
    cdef const floating *pt = &shift[0] if shift is not None else NULL
    cdef const floating *pr = &res[0, 0, 0, 0] if res is not None else NULL
    cdef const floating *pw = &w[0, 0] if w.size else NULL
    cdef const floating *px = &x[0, 0, 0, 0] if x.size else NULL
    cdef int ok
    cdef bint winograd = method == "winograd"
    if winograd and not (kh == 3 and kw == 3 and stride == 1 and padding == 1):
        raise ValueError("conv2d_forward: winograd needs a 3x3 kernel, stride 1, padding 1")
    with nogil:
        if floating is float:
            if winograd:
                ok = winograd3x3_forward_f32(N, C, H, W, O, px, pw, ps, pt, pr, relu, &y[0, 0, 0, 0])
            else:
                ok = conv2d_forward_f32(N, C, H, W, O, kh, kw, stride, padding, px, pw, ps, pt, pr, relu,
                                        &y[0, 0, 0, 0])
        else:
            if winograd:
                ok = winograd3x3_forward_f64(N, C, H, W, O, px, pw, ps, pt, pr, relu, &y[0, 0, 0, 0])
            else:
                ok = conv2d_forward_f64(N, C, H, W, O, kh, kw, stride, padding, px, pw, ps, pt, pr, relu,
                                        &y[0, 0, 0, 0])
    if not ok:
        raise MemoryError("conv2d_forward: out of memory")


def conv2d_backward(const floating[:, :, :, ::1] x, const floating[:, ::1] w, const floating[:, :, :, ::1] dy,
                    int kh, int kw, int stride, int padding, Py_ssize_t block_bytes,
                    floating[:, :, :, ::1] dx, floating[:, ::1] dw):
    """dx (N, C, H, W) and dw (O, C*kh*kw), the gradients of y = conv(x, w) from dy (N, O, Ho, Wo)
    (conv.c), on blocks of whole images whose columns and dy take at most block_bytes; dx or dw may
    be None (not computed). All contiguous."""
    cdef idx_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3], O = w.shape[0]
    cdef idx_t Ho = (H + 2 * padding - kh) // stride + 1, Wo = (W + 2 * padding - kw) // stride + 1
    if (w.shape[1] != C * kh * kw or dy.shape[0] != N or dy.shape[1] != O or dy.shape[2] != Ho
            or dy.shape[3] != Wo or (dw is not None and (dw.shape[0] != O or dw.shape[1] != C * kh * kw))
            or (dx is not None and (dx.shape[0] != N or dx.shape[1] != C or dx.shape[2] != H
                                    or dx.shape[3] != W))):
        raise ValueError("conv2d_backward: shapes differ")
    cdef const floating *px = &x[0, 0, 0, 0] if x.size else NULL
    cdef const floating *pw = &w[0, 0] if w.size else NULL
    cdef const floating *pdy = &dy[0, 0, 0, 0] if dy.size else NULL
    cdef floating *pdx = &dx[0, 0, 0, 0] if dx is not None and dx.size else NULL
    cdef floating *pdw = &dw[0, 0] if dw is not None and dw.size else NULL
    cdef int ok
    with nogil:
        if floating is float:
            ok = conv2d_backward_f32(N, C, H, W, O, kh, kw, stride, padding, px, pw, pdy, block_bytes, pdx, pdw)
        else:
            ok = conv2d_backward_f64(N, C, H, W, O, kh, kw, stride, padding, px, pw, pdy, block_bytes, pdx, pdw)
    if not ok:
        raise MemoryError("conv2d_backward: out of memory")


def im2col(const floating[:, :, :, ::1] x, int kh, int kw, int stride, int padding, floating[:, :, ::1] cols,
           bint merged=False):
    """cols = the windows of x (N, C, H, W) (conv.c): (N, C*kh*kw, Ho*Wo), or when merged
    (C*kh*kw, N, Ho*Wo), the images side by side."""
    cdef idx_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef idx_t L = ((H + 2 * padding - kh) // stride + 1) * ((W + 2 * padding - kw) // stride + 1)
    if (cols.shape[0], cols.shape[1], cols.shape[2]) != ((C * kh * kw, N, L) if merged else (N, C * kh * kw, L)):
        raise ValueError("im2col: shapes differ")
    if cols.size == 0:
        return
    with nogil:
        if floating is float:
            im2col_f32(N, C, H, W, kh, kw, stride, padding, &x[0, 0, 0, 0], &cols[0, 0, 0], merged)
        else:
            im2col_f64(N, C, H, W, kh, kw, stride, padding, &x[0, 0, 0, 0], &cols[0, 0, 0], merged)


def col2im(const floating[:, :, ::1] cols, int kh, int kw, int stride, int padding, floating[:, :, :, ::1] dx,
           bint merged=False):
    """dx (N, C, H, W) = the adjoint of im2col applied to cols (N, C*kh*kw, Ho*Wo), or when merged
    (C*kh*kw, N, Ho*Wo) (conv.c)."""
    cdef idx_t N = dx.shape[0], C = dx.shape[1], H = dx.shape[2], W = dx.shape[3]
    cdef idx_t L = ((H + 2 * padding - kh) // stride + 1) * ((W + 2 * padding - kw) // stride + 1)
    if (cols.shape[0], cols.shape[1], cols.shape[2]) != ((C * kh * kw, N, L) if merged else (N, C * kh * kw, L)):
        raise ValueError("col2im: shapes differ")
    if dx.size == 0:
        return
    if cols.size == 0:
        dx[...] = 0
        return
    with nogil:
        if floating is float:
            col2im_f32(N, C, H, W, kh, kw, stride, padding, &cols[0, 0, 0], &dx[0, 0, 0, 0], merged)
        else:
            col2im_f64(N, C, H, W, kh, kw, stride, padding, &cols[0, 0, 0], &dx[0, 0, 0, 0], merged)


def avg_pool2d_backward(const floating[:, :, ::1] dy, int k, floating[:, :, ::1] dx):
    """dx (P, H, W) = the backward of avg_pool2d from dy (P, H/k, W/k) (pool.c)."""
    cdef idx_t P = dx.shape[0], H = dx.shape[1], W = dx.shape[2]
    if k < 1 or dy.shape[0] != P or dy.shape[1] != H // k or dy.shape[2] != W // k:
        raise ValueError("avg_pool2d_backward: shapes differ")
    if dx.size == 0:
        return
    with nogil:
        if floating is float:
            avg_pool2d_backward_f32(P, H, W, k, &dy[0, 0, 0], &dx[0, 0, 0])
        else:
            avg_pool2d_backward_f64(P, H, W, k, &dy[0, 0, 0], &dx[0, 0, 0])


def relu_backward(const floating[::1] y, const floating[::1] dy, floating[::1] dx):
    """dx = dy where y > 0, else 0; flat and contiguous (relu.c)."""
    cdef idx_t n = y.shape[0]
    if dy.shape[0] != n or dx.shape[0] != n:
        raise ValueError("relu_backward: y, dy, dx differ in size")
    if n == 0:
        return
    with nogil:
        if floating is float:
            relu_backward_f32(n, &y[0], &dy[0], &dx[0])
        else:
            relu_backward_f64(n, &y[0], &dy[0], &dx[0])


def batchnorm_stats(const floating[:, :, ::1] x, floating[::1] mean, floating[::1] var):
    """mean, var (C,) = the mean and biased variance of each channel of x (N, C, HW) (batchnorm.c)."""
    cdef idx_t N = x.shape[0], C = x.shape[1], HW = x.shape[2]
    if mean.shape[0] != C or var.shape[0] != C or N * HW == 0:
        raise ValueError("batchnorm_stats: shapes differ")
    if C == 0:
        return
    cdef int ok
    with nogil:
        if floating is float:
            ok = batchnorm_stats_f32(N, C, HW, &x[0, 0, 0], &mean[0], &var[0])
        else:
            ok = batchnorm_stats_f64(N, C, HW, &x[0, 0, 0], &mean[0], &var[0])
    if not ok:
        raise MemoryError("batchnorm_stats: out of memory")


def batchnorm_apply(const floating[:, :, ::1] x, const floating[::1] scale, const floating[::1] shift,
                    floating[:, :, ::1] y):
    """y (N, C, HW) = x * scale[c] + shift[c] (batchnorm.c)."""
    cdef idx_t N = x.shape[0], C = x.shape[1], HW = x.shape[2]
    if (scale.shape[0] != C or shift.shape[0] != C or y.shape[0] != N or y.shape[1] != C
            or y.shape[2] != HW):
        raise ValueError("batchnorm_apply: shapes differ")
    if y.size == 0:
        return
    with nogil:
        if floating is float:
            batchnorm_apply_f32(N, C, HW, &x[0, 0, 0], &scale[0], &shift[0], &y[0, 0, 0])
        else:
            batchnorm_apply_f64(N, C, HW, &x[0, 0, 0], &scale[0], &shift[0], &y[0, 0, 0])


def batchnorm_backward(const floating[:, :, ::1] x, const floating[:, :, ::1] dy, const floating[::1] mu,
                       const floating[::1] rstd, const floating[::1] weight, bint training,
                       floating[:, :, ::1] dx, floating[::1] dweight, floating[::1] dbias):
    """dx (N, C, HW), dweight, dbias (C,) = BatchNorm2d's backward (batchnorm.c)."""
    cdef idx_t N = x.shape[0], C = x.shape[1], HW = x.shape[2]
    if (dy.shape[0] != N or dy.shape[1] != C or dy.shape[2] != HW or dx.shape[0] != N or dx.shape[1] != C
            or dx.shape[2] != HW or mu.shape[0] != C or rstd.shape[0] != C or weight.shape[0] != C
            or dweight.shape[0] != C or dbias.shape[0] != C):
        raise ValueError("batchnorm_backward: shapes differ")
    if C == 0:
        return
    cdef int ok
    with nogil:
        if floating is float:
            ok = batchnorm_backward_f32(N, C, HW, &x[0, 0, 0], &dy[0, 0, 0], &mu[0], &rstd[0], &weight[0],
                                        training, &dx[0, 0, 0], &dweight[0], &dbias[0])
        else:
            ok = batchnorm_backward_f64(N, C, HW, &x[0, 0, 0], &dy[0, 0, 0], &mu[0], &rstd[0], &weight[0],
                                        training, &dx[0, 0, 0], &dweight[0], &dbias[0])
    if not ok:
        raise MemoryError("batchnorm_backward: out of memory")


def avg_pool2d(const floating[:, :, ::1] x, int k, floating[:, :, ::1] y):
    """y (P, H/k, W/k) = the means of the k x k blocks of x (P, H, W) (pool.c)."""
    cdef idx_t P = x.shape[0], H = x.shape[1], W = x.shape[2]
    if k < 1 or y.shape[0] != P or y.shape[1] != H // k or y.shape[2] != W // k:
        raise ValueError("avg_pool2d: shapes differ")
    if y.size == 0:
        return
    with nogil:
        if floating is float:
            avg_pool2d_f32(P, H, W, k, &x[0, 0, 0], &y[0, 0, 0])
        else:
            avg_pool2d_f64(P, H, W, k, &x[0, 0, 0], &y[0, 0, 0])
