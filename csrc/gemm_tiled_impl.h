/* gemm_tiled_impl.h: GEMM v2 for one element type (REAL, SFX: real.h); gemm_tiled.c says why. */
#include "real.h"

void SFX(gemm_tiled)(idx_t M, idx_t N, idx_t K, REAL alpha,
                     const REAL *A, idx_t rs_a, idx_t cs_a,
                     const REAL *B, idx_t rs_b, idx_t cs_b,
                     REAL beta, REAL *C, idx_t rs_c, idx_t cs_c)
{
    /* enough work per thread to pay for waking the team up */
    int parallel = (double)M * N * K > 1e6;
    (void)parallel;
    #pragma omp parallel for schedule(static) if(parallel)
    for (idx_t i0 = 0; i0 < M; i0 += TILE_M) {
        idx_t i1 = i0 + TILE_M < M ? i0 + TILE_M : M;
        /* C = beta * C first (or 0), then accumulate alpha * A B into it */
        for (idx_t i = i0; i < i1; i++)
            for (idx_t j = 0; j < N; j++)
                C[i * rs_c + j * cs_c] = (beta == 0) ? (REAL)0 : beta * C[i * rs_c + j * cs_c];
        for (idx_t p0 = 0; p0 < K; p0 += TILE_K) {                 /* a slice of the sum */
            idx_t p1 = p0 + TILE_K < K ? p0 + TILE_K : K;
            for (idx_t j0 = 0; j0 < N; j0 += TILE_N) {             /* a block of columns */
                idx_t j1 = j0 + TILE_N < N ? j0 + TILE_N : N;
                for (idx_t i = i0; i < i1; i++) {                  /* every row of the tile */
                    REAL *c_row = C + i * rs_c;
                    for (idx_t p = p0; p < p1; p++) {
                        REAL a_ip = alpha * A[i * rs_a + p * cs_a];
                        const REAL *b_row = B + p * rs_b;
                        if (cs_b == 1 && cs_c == 1) {               /* unit stride: vectorisable */
                            for (idx_t j = j0; j < j1; j++)
                                c_row[j] += a_ip * b_row[j];
                        } else {
                            for (idx_t j = j0; j < j1; j++)
                                c_row[j * cs_c] += a_ip * b_row[j * cs_b];
                        }
                    }
                }
            }
        }
    }
}

#include "real_end.h"
