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
 * Sizes, AVX2 (16 ymm registers of 8 floats / 4 doubles): float32 6 x 16, float64 6 x 8.
 * That is 12 accumulator registers (6 rows x 2 vectors), 2 for the row of B and 1 for a
 * broadcast value of A: 15 of 16, and 12 independent FMA chains, enough to hide the FMA
 * latency (4 cycles x 2 FMA pipes = 8 in flight needed). The generic C kernel uses the same
 * tile (GEMM_MR_F32 etc.; real.h's MR and NR, and MR512, NR512 for the AVX-512 tile below).
 *
 * Sizes, AVX-512 (32 zmm registers of 16 floats / 8 doubles): float32 14 x 32, float64 14 x 16.
 * A row of the tile is 2 vectors, so MR rows take 2 MR accumulators; the row of B takes 2 and
 * the broadcast of A none (the FMA reads it straight from memory, {1to16}), or 1:
 *     2 MR + 2 (+ 1) <= 32   ->   MR <= 14.
 * Why as many rows as fit: per step p the kernel loads 2 vectors of B and broadcasts MR values
 * of A for 2 MR FMAs; the FMA-to-load ratio 2 MR / (MR + 2) grows with MR (14: 28 FMAs per 16
 * loads, 1.75; 6 x 32 would give 12 per 8, 1.5), and two FMA pipes plus two or three load ports
 * per cycle need the FMAs to dominate. 28 independent chains hide the 4-cycle latency three
 * times over. Two vectors per row rather than three (8 x 48: 24 FMAs per 11 loads) because N
 * is a multiple of 32 in the model's products (and 48 divides neither 256 nor 1024), and a
 * partial tile wastes a whole tile's work.
 */
#ifndef MINICLIP_GEMM_MICROKERNEL_H
#define MINICLIP_GEMM_MICROKERNEL_H

#include "miniclip.h"

#define GEMM_MR_F32 6           /* generic C and AVX2 */
#define GEMM_NR_F32 16
#define GEMM_MR_F64 6
#define GEMM_NR_F64 8
#define GEMM_MR512_F32 14       /* AVX-512 */
#define GEMM_NR512_F32 32
#define GEMM_MR512_F64 14
#define GEMM_NR512_F64 16

typedef void (*gemm_ukr_f32_t)(idx_t kc, float alpha, const float *a, idx_t rs_a, idx_t cs_a,
                               const float *b, idx_t rs_b,
                               float beta, float *c, idx_t rs_c, idx_t cs_c, const float *bias);
typedef void (*gemm_ukr_f64_t)(idx_t kc, double alpha, const double *a, idx_t rs_a, idx_t cs_a,
                               const double *b, idx_t rs_b,
                               double beta, double *c, idx_t rs_c, idx_t cs_c, const double *bias);

/* the 6 x 16 (6 x 8) micro-kernel chosen for this CPU: AVX2 or generic (see miniclip_set_simd) */
gemm_ukr_f32_t gemm_ukr_f32(void);
gemm_ukr_f64_t gemm_ukr_f64(void);

/* the AVX-512 micro-kernel (GEMM_MR512 x GEMM_NR512) when this CPU has AVX-512 and it is not
 * forced off, else NULL */
gemm_ukr_f32_t gemm_ukr512_f32(void);
gemm_ukr_f64_t gemm_ukr512_f64(void);

/* Pack one full MR-row micro-panel of a row-major A (cs_a == 1) with SIMD, for the tile of
 * `mr` rows: Ap[p * mr + i] = a[i * rs_a + p]. Returns 0 (nothing done) where there is no
 * SIMD version for this tile and CPU. */
int gemm_pack_a_rowmajor_f32(idx_t mr, idx_t kc, const float *a, idx_t rs_a, float *Ap);
int gemm_pack_a_rowmajor_f64(idx_t mr, idx_t kc, const double *a, idx_t rs_a, double *Ap);

/* 1 when the AVX-512 kernels may run (CPU support, not forced to AVX2 or generic) */
int miniclip_use_avx512(void);

#endif
