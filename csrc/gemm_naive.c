/* gemm_naive.c: GEMM v1, the triple loop straight from the definition.
 *
 *     C[i, j] = alpha * sum_p A[i, p] * B[p, j] + beta * C[i, j]
 *
 * Kept as the reference and the first step of the teaching sequence
 * (v1 naive -> v2 tiled -> v3 packed + micro-kernel). It is slow because the
 * inner loop walks B down a column: every step touches a new cache line.
 * The sum runs in the output's precision, in order p = 0 .. K-1.
 */
#include "miniclip.h"

#define DEFINE_GEMM_NAIVE(NAME, T)                                               \
void NAME(idx_t M, idx_t N, idx_t K, T alpha,                                    \
          const T *A, idx_t rs_a, idx_t cs_a,                                    \
          const T *B, idx_t rs_b, idx_t cs_b,                                    \
          T beta, T *C, idx_t rs_c, idx_t cs_c)                                  \
{                                                                                \
    for (idx_t i = 0; i < M; i++) {                                              \
        for (idx_t j = 0; j < N; j++) {                                          \
            T acc = 0;                                                           \
            for (idx_t p = 0; p < K; p++)                                        \
                acc += A[i * rs_a + p * cs_a] * B[p * rs_b + j * cs_b];          \
            T *c = &C[i * rs_c + j * cs_c];                                      \
            /* beta == 0: C is write-only, as in BLAS (never read, so NaN cannot leak) */ \
            *c = (beta == 0) ? alpha * acc : alpha * acc + beta * (*c);          \
        }                                                                        \
    }                                                                            \
}

DEFINE_GEMM_NAIVE(gemm_naive_f32, float)
DEFINE_GEMM_NAIVE(gemm_naive_f64, double)
