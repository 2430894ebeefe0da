# _C.pyx: thin Cython wrappers that hand NumPy buffers to the C kernels in csrc/*.c.
#
# Each wrapper checks shapes, takes raw pointers and *element* strides from typed
# memoryviews (any layout: transposed and sliced views work without a copy), and
# releases the GIL around the C call. `floating` compiles every wrapper twice,
# for float32 and float64, from this one source.
#
# Shape legend: M, N, K the GEMM sizes (C is M x N, the sum runs over K).

from kernels cimport *

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


cdef inline idx_t _stride(Py_ssize_t byte_stride, Py_ssize_t itemsize):
    return byte_stride // itemsize


def gemm_naive(const floating[:, :] A, const floating[:, :] B, floating[:, :] C,
               double alpha=1.0, double beta=0.0):
    """C = alpha * A @ B + beta * C with the naive triple loop (GEMM v1).

    A (M, K), B (K, N), C (M, N): any strides, one dtype. Writes C in place.
    """
    cdef idx_t M = A.shape[0], K = A.shape[1], N = B.shape[1]
    if B.shape[0] != K or C.shape[0] != M or C.shape[1] != N:
        raise ValueError(
            f"gemm_naive: expected A (M, K), B (K, N), C (M, N); got A ({A.shape[0]}, {A.shape[1]}), "
            f"B ({B.shape[0]}, {B.shape[1]}), C ({C.shape[0]}, {C.shape[1]})")
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
            gemm_naive_f32(M, N, K, <float>alpha, pa, rs_a, cs_a, pb, rs_b, cs_b,
                           <float>beta, &C[0, 0], rs_c, cs_c)
        else:
            gemm_naive_f64(M, N, K, alpha, pa, rs_a, cs_a, pb, rs_b, cs_b,
                           beta, &C[0, 0], rs_c, cs_c)
