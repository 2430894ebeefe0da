/* vexp.h: exp over a row, vectorised where the CPU allows (internal header; vexp.c).
 *
 * The softmax-like kernels spend much of their time in exp; libm's expf is scalar,
 * so vexp.c carries AVX2 and AVX-512 versions (chosen at run time like the GEMM micro-kernel).
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
 *
 * exp_avx2_pd: float64, 4 lanes, Cephes' exp method (the same reduction, then a Pade form):
 *     exp(r) = 1 + 2 r P(r^2) / (Q(r^2) - r P(r^2)),  P degree 2, Q degree 3 (relative error
 *     ~2e-16 over |r| <= ln 2 / 2); ln 2 again split in two.
 * 2^n is applied as 2^(n/2) * 2^(n - n/2), two factors that are always normal numbers, so
 * the product rounds once: large inputs overflow to +inf and small ones underflow gradually
 * through the subnormals to 0, as libm's exp. NaN is not propagated (as above).
 * Only call these from a function compiled for AVX2+FMA (same target attribute), after
 * miniclip_use_avx2() said yes.
 *
 * exp_avx512_ps: exp_avx2_ps step for step on 16 lanes (AVX-512F), for functions compiled with
 * target("avx512f") after miniclip_use_avx512() (gemm_microkernel.h) said yes. float64 stays on
 * exp_avx2_pd: its Pade form divides, and a 512-bit division takes twice as long as a 256-bit one,
 * so 8 lanes gained little over 4 and lost on short rows (benchmarks/README.md).
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

/* 2^n for 4 int32 n in [-1022, 1023], as doubles built in the exponent bits */
__attribute__((target("avx2,fma")))
static inline __m256d pow2_avx2_pd(__m128i n)
{
    __m256i e = _mm256_add_epi64(_mm256_cvtepi32_epi64(n), _mm256_set1_epi64x(1023));
    return _mm256_castsi256_pd(_mm256_slli_epi64(e, 52));
}

__attribute__((target("avx2,fma")))
static inline __m256d exp_avx2_pd(__m256d x)
{
    /* past these exp(x) is +inf or 0 in double; the clamp keeps n/2 inside the normal range */
    x = _mm256_min_pd(x, _mm256_set1_pd(710.0));
    x = _mm256_max_pd(x, _mm256_set1_pd(-746.0));
    __m256d n = _mm256_round_pd(_mm256_mul_pd(x, _mm256_set1_pd(1.4426950408889634074)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256d r = _mm256_fnmadd_pd(n, _mm256_set1_pd(6.93145751953125e-1), x);        /* x - n ln2_hi */
    r = _mm256_fnmadd_pd(n, _mm256_set1_pd(1.42860682030941723212e-6), r);           /* - n ln2_lo */
    __m256d r2 = _mm256_mul_pd(r, r);
    __m256d p = _mm256_fmadd_pd(_mm256_set1_pd(1.26177193074810590878e-4), r2,
                                _mm256_set1_pd(3.02994407707441961300e-2));
    p = _mm256_mul_pd(r, _mm256_fmadd_pd(p, r2, _mm256_set1_pd(9.99999999999999999910e-1)));  /* r P(r^2) */
    __m256d q = _mm256_fmadd_pd(_mm256_set1_pd(3.00198505138664455042e-6), r2,
                                _mm256_set1_pd(2.52448340349684104192e-3));
    q = _mm256_fmadd_pd(q, r2, _mm256_set1_pd(2.27265548208155028766e-1));
    q = _mm256_fmadd_pd(q, r2, _mm256_set1_pd(2.00000000000000000009e0));            /* Q(r^2) */
    __m256d e = _mm256_div_pd(p, _mm256_sub_pd(q, p));
    e = _mm256_fmadd_pd(_mm256_set1_pd(2.0), e, _mm256_set1_pd(1.0));              /* exp(r) */
    __m128i ni = _mm256_cvtpd_epi32(n);
    __m128i n1 = _mm_srai_epi32(ni, 1), n2 = _mm_sub_epi32(ni, n1);                 /* n = n1 + n2 */
    return _mm256_mul_pd(_mm256_mul_pd(e, pow2_avx2_pd(n1)), pow2_avx2_pd(n2));
}

/* exp_avx2_ps on 16 lanes */
__attribute__((target("avx512f")))
static inline __m512 exp_avx512_ps(__m512 x)
{
    const __m512 hi = _mm512_set1_ps(88.3762626647949f), lo = _mm512_set1_ps(-87.3365447505531f);
    __mmask16 underflow = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
    x = _mm512_min_ps(x, hi);
    x = _mm512_max_ps(x, lo);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);          /* x - n ln2_hi */
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);              /* - n ln2_lo */
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    __m512 r2 = _mm512_mul_ps(r, r);
    p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));       /* 1 + r + r^2 P */
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    __m512 y = _mm512_mul_ps(p, _mm512_castsi512_ps(e));                      /* * 2^n */
    return _mm512_maskz_mov_ps((__mmask16)~underflow, y);
}
#else
#define MINICLIP_HAVE_AVX2 0
#endif

#endif
