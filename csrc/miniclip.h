/* miniclip.h: the C kernels behind miniclip._C, one declaration per kernel.
 *
 * Conventions (shared by every kernel):
 *   - A matrix is a pointer plus two *element* strides: element (i, j) of A is
 *     A[i * rs_a + j * cs_a]. A transpose is the same pointer with rs and cs swapped,
 *     so op(A) in {A, A^T} never needs a copy (BLIS does the same).
 *   - Kernels *write* their outputs (C = alpha * A B + beta * C); they never keep state.
 *   - Every kernel exists for float (_f32) and double (_f64).
 */
#ifndef MINICLIP_H
#define MINICLIP_H

#include <stddef.h>

typedef ptrdiff_t idx_t;

/* ---- build information (info.c) ---- */
const char *miniclip_compile_flags(void);
int miniclip_has_openmp(void);
int miniclip_max_threads(void);
void miniclip_set_num_threads(int n);
int miniclip_debug_build(void);

/* ---- GEMM v1: the naive triple loop (gemm_naive.c) ----
 * C (M x N) = alpha * A (M x K) @ B (K x N) + beta * C.
 * beta == 0 means C is write-only (never read), as in BLAS, so NaN in C does not leak. */
void gemm_naive_f32(idx_t M, idx_t N, idx_t K, float alpha,
                    const float *A, idx_t rs_a, idx_t cs_a,
                    const float *B, idx_t rs_b, idx_t cs_b,
                    float beta, float *C, idx_t rs_c, idx_t cs_c);
void gemm_naive_f64(idx_t M, idx_t N, idx_t K, double alpha,
                    const double *A, idx_t rs_a, idx_t cs_a,
                    const double *B, idx_t rs_b, idx_t cs_b,
                    double beta, double *C, idx_t rs_c, idx_t cs_c);

#endif
