/* gemm_microkernel.h: the register-blocked micro-kernels of GEMM v3 (internal header).
 *
 * A micro-kernel computes one MR x NR tile of C:
 *
 *     C[0:MR, 0:NR] = alpha * sum_{p < kc} a[i*rs_a + p*cs_a] * b[p*rs_b + j] + beta * C[0:MR, 0:NR]
 *                     (+ bias[j] when bias is not NULL: a layer's bias, NR contiguous values,
 *                      added in registers before the store; see the epilogue in gemm_packed_impl.h)
 *
 *   a: MR x kc, any strides. Packed (gemm_packed.c) it is a micro-panel stored column
 *      by column: rs_a = 1, cs_a = MR (MR consecutive values per step p).
 *   b: kc x NR with *contiguous rows* (NR consecutive values per step p, row stride
 *      rs_b). Packed: rs_b = NR.
 *
 * At every step p the kernel broadcasts MR values of A, loads one row of NR values of
 * B, and does MR*NR multiply-adds on accumulators that stay in registers for all kc
 * steps. A's values are only ever broadcast, so A need not be packed for the kernel to
 * run; packing is about the caches (see gemm_packed.c), and small products skip it.
 * beta == 0: C is write-only (never read).
 *
 * Sizes: float32 6 x 16, float64 6 x 8. With AVX2 (16 ymm registers) that is 12
 * accumulator registers (6 rows x 2 vectors), 2 for the row of B and 1 for a broadcast
 * value of A: 15 of 16, and 12 independent FMA chains, enough to hide the FMA latency
 * (4 cycles x 2 FMA pipes = 8 in flight needed).
 */
#ifndef MINICLIP_GEMM_MICROKERNEL_H
#define MINICLIP_GEMM_MICROKERNEL_H

#include "miniclip.h"

#define GEMM_MR_F32 6
#define GEMM_NR_F32 16
#define GEMM_MR_F64 6
#define GEMM_NR_F64 8

typedef void (*gemm_ukr_f32_t)(idx_t kc, float alpha, const float *a, idx_t rs_a, idx_t cs_a,
                               const float *b, idx_t rs_b,
                               float beta, float *c, idx_t rs_c, idx_t cs_c, const float *bias);
typedef void (*gemm_ukr_f64_t)(idx_t kc, double alpha, const double *a, idx_t rs_a, idx_t cs_a,
                               const double *b, idx_t rs_b,
                               double beta, double *c, idx_t rs_c, idx_t cs_c, const double *bias);

/* the micro-kernel chosen for this CPU (or the generic one when forced, see miniclip_set_simd) */
gemm_ukr_f32_t gemm_ukr_f32(void);
gemm_ukr_f64_t gemm_ukr_f64(void);

/* Pack one full MR-row micro-panel of a row-major float32 A (cs_a == 1) with SIMD:
 * Ap[p * MR + i] = a[i * rs_a + p]. Returns 0 (nothing done) without AVX2. */
int gemm_pack_a_rowmajor_f32(idx_t kc, const float *a, idx_t rs_a, float *Ap);

#endif
