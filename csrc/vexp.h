/* vexp.h: exp over a row, vectorised where the CPU allows (internal header; vexp.c).
 *
 * The softmax-like kernels spend much of their time in exp; libm's expf is scalar,
 * so vexp.c carries an AVX2 version (chosen at run time like the GEMM micro-kernel).
 */
#ifndef MINICLIP_VEXP_H
#define MINICLIP_VEXP_H

#include "miniclip.h"

/* y[j] = exp(x[j] - shift) for j < n (y may be x); returns sum_j y[j]. */
float exp_shift_sum_f32(const float *x, float *y, idx_t n, float shift);
double exp_shift_sum_f64(const double *x, double *y, idx_t n, double shift);

/* nonzero when the AVX2+FMA kernels may run (CPU support, not forced generic) */
int miniclip_use_avx2(void);

#endif
