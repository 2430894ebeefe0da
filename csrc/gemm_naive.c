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

#define REAL_BITS 32
#include "gemm_naive_impl.h"
#define REAL_BITS 64
#include "gemm_naive_impl.h"
