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

#define REAL_BITS 32
#include "gemm_tiled_impl.h"
#define REAL_BITS 64
#include "gemm_tiled_impl.h"
