/* gemm_naive_impl.h: GEMM v1 for one element type (REAL, SFX: real.h); gemm_naive.c says why. */
#include "real.h"

void SFX(gemm_naive)(idx_t M, idx_t N, idx_t K, REAL alpha,
                     const REAL *A, idx_t rs_a, idx_t cs_a,
                     const REAL *B, idx_t rs_b, idx_t cs_b,
                     REAL beta, REAL *C, idx_t rs_c, idx_t cs_c)
{
    for (idx_t i = 0; i < M; i++) {
        for (idx_t j = 0; j < N; j++) {
            REAL acc = 0;
            for (idx_t p = 0; p < K; p++)
                acc += A[i * rs_a + p * cs_a] * B[p * rs_b + j * cs_b];
            REAL *c = &C[i * rs_c + j * cs_c];
            /* beta == 0: C is write-only, as in BLAS (never read, so NaN cannot leak) */
            *c = (beta == 0) ? alpha * acc : alpha * acc + beta * (*c);
        }
    }
}

#include "real_end.h"
