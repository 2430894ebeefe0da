/* gemm_tiled.c: GEMM v2, the naive loops reordered and tiled for the caches.
 *
 *     C (M x N) = alpha * A (M x K) @ B (K x N) + beta * C
 *
 * The teaching sequence is v1 (gemm_naive.c) -> v2 (this file) -> v3 (gemm_packed.c).
 * v2 makes two changes to v1, each worth a large factor on its own:
 *
 *  1. Loop order i-p-j instead of i-j-p. The inner loop becomes
 *         C[i, j] += (alpha * A[i, p]) * B[p, j]     for j = j0 .. j1
 *     which walks a *row* of B and a row of C with unit stride (row-major storage),
 *     so each cache line is used in full and the compiler can vectorise the loop.
 *     v1's inner loop walked B down a column, one new cache line per step.
 *  2. Tiling. The p and j loops are cut into blocks (TILE_K x TILE_N of B, 64 KiB in
 *     float32) so that the block of B stays in L2 while every row i of the
 *     current tile of C streams past it, instead of re-reading all of B from memory
 *     for every row of A.
 *
 * Threads: OpenMP splits the rows of C in blocks of TILE_M. Each thread writes
 * only its own rows, so no two threads ever touch the same element of C.
 *
 * What v2 still lacks (v3 adds it): B's rows are read with whatever stride they
 * have (a transposed B makes the inner loop stride again), and every element of C
 * is loaded and stored once per p instead of being kept in registers.
 *
 * beta == 0 means C is write-only, as in BLAS: we first *set* C to 0 instead of
 * scaling it, so a NaN already in C cannot leak into the result.
 */
#include "miniclip.h"

#define TILE_M 64
#define TILE_N 256
#define TILE_K 64

#define DEFINE_GEMM_TILED(NAME, T)                                                     \
void NAME(idx_t M, idx_t N, idx_t K, T alpha,                                          \
          const T *A, idx_t rs_a, idx_t cs_a,                                          \
          const T *B, idx_t rs_b, idx_t cs_b,                                          \
          T beta, T *C, idx_t rs_c, idx_t cs_c)                                        \
{                                                                                      \
    /* enough work per thread to pay for waking the team up */                        \
    int parallel = (double)M * N * K > 1e6;                                            \
    (void)parallel;                                                                    \
    _Pragma("omp parallel for schedule(static) if(parallel)")                          \
    for (idx_t i0 = 0; i0 < M; i0 += TILE_M) {                                         \
        idx_t i1 = i0 + TILE_M < M ? i0 + TILE_M : M;                                  \
        /* C = beta * C first (or 0), then accumulate alpha * A B into it */           \
        for (idx_t i = i0; i < i1; i++)                                                \
            for (idx_t j = 0; j < N; j++)                                              \
                C[i * rs_c + j * cs_c] = (beta == 0) ? (T)0 : beta * C[i * rs_c + j * cs_c]; \
        for (idx_t p0 = 0; p0 < K; p0 += TILE_K) {                                     \
            idx_t p1 = p0 + TILE_K < K ? p0 + TILE_K : K;                              \
            for (idx_t j0 = 0; j0 < N; j0 += TILE_N) {                                 \
                idx_t j1 = j0 + TILE_N < N ? j0 + TILE_N : N;                          \
                for (idx_t i = i0; i < i1; i++) {                                      \
                    T *c_row = C + i * rs_c;                                           \
                    for (idx_t p = p0; p < p1; p++) {                                  \
                        T a_ip = alpha * A[i * rs_a + p * cs_a];                       \
                        const T *b_row = B + p * rs_b;                                 \
                        if (cs_b == 1 && cs_c == 1) { /* unit stride: vectorisable */  \
                            for (idx_t j = j0; j < j1; j++)                            \
                                c_row[j] += a_ip * b_row[j];                           \
                        } else {                                                       \
                            for (idx_t j = j0; j < j1; j++)                            \
                                c_row[j * cs_c] += a_ip * b_row[j * cs_b];             \
                        }                                                              \
                    }                                                                  \
                }                                                                      \
            }                                                                          \
        }                                                                              \
    }                                                                                  \
}

DEFINE_GEMM_TILED(gemm_tiled_f32, float)
DEFINE_GEMM_TILED(gemm_tiled_f64, double)
