/* vexp.h: exp over a row, vectorised where the CPU allows (internal header; vexp.c).
 *
 * The softmax-like kernels spend much of their time in exp; libm's expf is scalar,
 * so vexp.c carries an AVX2 version (chosen at run time like the GEMM micro-kernel).
 * The 8-lane exp itself, exp_avx2_ps, is here as a static inline function so that other
 * kernels (activation.c) can call it inside their own AVX2 loops, with no call per vector
 * and no temporary array.
 *
 * exp_avx2_ps: float32, 8 lanes, Cephes' expf method:
 *     exp(x) = 2^n * exp(r),  n = round(x / ln 2),  r = x - n ln 2  (|r| <= ln2 / 2)
 *     exp(r) ~ 1 + r + r^2 P(r), P a degree-5 polynomial (error ~1 ulp over |r| <= ln 2 / 2)
 *     2^n is built directly in the exponent bits: (n + 127) << 23.
 * ln 2 is split in two (hi + lo) so that r is exact to float precision. Inputs below
 * -87.3 (where 2^n would leave the normal range) give 0 instead of a subnormal: the
 * difference is below 1.2e-38 in absolute value. Inputs above 88.376 are clamped to it
 * (result ~2.4e38, finite, not +inf). No -ffast-math: every step is a plain IEEE operation. NaN is NOT propagated (the clamp
 * turns it into a large number): a caller that needs NaN out puts it back itself.
 * Only call it from a function compiled for AVX2+FMA (same target attribute), after
 * miniclip_use_avx2() said yes.
 */
#ifndef MINICLIP_VEXP_H
#define MINICLIP_VEXP_H

#include "miniclip.h"

/* y[j] = exp(x[j] - shift) for j < n (y may be x); returns sum_j y[j]. */
float exp_shift_sum_f32(const float *x, float *y, idx_t n, float shift);
double exp_shift_sum_f64(const double *x, double *y, idx_t n, double shift);

/* nonzero when the AVX2+FMA kernels may run (CPU support, not forced generic) */
int miniclip_use_avx2(void);

/* 1 where this compiler can build the AVX2+FMA kernels (x86-64 GCC or Clang) */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define MINICLIP_HAVE_AVX2 1
#include <immintrin.h>

__attribute__((target("avx2,fma")))
static inline __m256 exp_avx2_ps(__m256 x)
{
    const __m256 hi = _mm256_set1_ps(88.3762626647949f), lo = _mm256_set1_ps(-87.3365447505531f);
    __m256 underflow = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_min_ps(x, hi);                   /* clamp: min/max turn NaN into a number, so the */
    x = _mm256_max_ps(x, lo);                   /* caller puts NaN back if it needs it */
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);          /* x - n ln2_hi */
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);              /* - n ln2_lo */
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    __m256 r2 = _mm256_mul_ps(r, r);
    p = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));       /* 1 + r + r^2 P */
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    __m256 y = _mm256_mul_ps(p, _mm256_castsi256_ps(e));                      /* * 2^n */
    return _mm256_andnot_ps(underflow, y);
}
#else
#define MINICLIP_HAVE_AVX2 0
#endif

#endif
