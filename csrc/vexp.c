/* vexp.c: y = exp(x - shift) over a row, and its sum (see vexp.h).
 *
 * float32 with AVX2+FMA: 8 lanes at a time, Cephes' expf method:
 *     exp(x) = 2^n * exp(r),  n = round(x / ln 2),  r = x - n ln 2  (|r| <= ln2 / 2)
 *     exp(r) ~ 1 + r + r^2 P(r), P a degree-5 polynomial (error ~1 ulp over |r| <= ln 2 / 2)
 *     2^n is built directly in the exponent bits: (n + 127) << 23.
 * ln 2 is split in two (hi + lo) so that r is exact to float precision. Inputs below
 * -87.3 (where 2^n would leave the normal range) give 0 instead of a subnormal: the
 * difference is below 1.2e-38 in absolute value. No -ffast-math: every step is a
 * plain IEEE operation, and NaN in gives NaN out.
 * float64 (and CPUs without AVX2) use libm's exp, one value at a time.
 */
#include <math.h>

#include "vexp.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

__attribute__((target("avx2,fma")))
static inline __m256 exp_avx2_ps(__m256 x)
{
    const __m256 hi = _mm256_set1_ps(88.3762626647949f), lo = _mm256_set1_ps(-87.3365447505531f);
    __m256 underflow = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_min_ps(x, hi);                   /* clamp: min/max turn NaN into a number, so the*/
    x = _mm256_max_ps(x, lo);                   /* caller puts NaN back (exp_shift_sum_avx2_f32) */
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

__attribute__((target("avx2,fma")))
static float exp_shift_sum_avx2_f32(const float *x, float *y, idx_t n, float shift)
{
    __m256 vs = _mm256_set1_ps(shift), acc = _mm256_setzero_ps();
    idx_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 xj = _mm256_loadu_ps(x + j);
        __m256 e = exp_avx2_ps(_mm256_sub_ps(xj, vs));
        e = _mm256_blendv_ps(e, xj, _mm256_cmp_ps(xj, xj, _CMP_UNORD_Q));    /* NaN stays NaN */
        _mm256_storeu_ps(y + j, e);
        acc = _mm256_add_ps(acc, e);
    }
    if (j < n) {
        /* the last 1..7 values: masked load and store of one vector instead of scalar expf
         * calls (rows of attention scores are short: a row of 17 would spend as long on its
         * one scalar tail value as on the 16 before it) */
        __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n - j)), lane);
        __m256 xj = _mm256_maskload_ps(x + j, mask);
        __m256 e = exp_avx2_ps(_mm256_sub_ps(xj, vs));
        e = _mm256_blendv_ps(e, xj, _mm256_cmp_ps(xj, xj, _CMP_UNORD_Q));
        e = _mm256_and_ps(e, _mm256_castsi256_ps(mask));                /* lanes past n: 0 */
        _mm256_maskstore_ps(y + j, mask, e);
        acc = _mm256_add_ps(acc, e);
    }
    float lanes[8], sum = 0;
    _mm256_storeu_ps(lanes, acc);
    for (int l = 0; l < 8; l++) sum += lanes[l];
    return sum;
}
#endif

float exp_shift_sum_f32(const float *x, float *y, idx_t n, float shift)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (miniclip_use_avx2()) return exp_shift_sum_avx2_f32(x, y, n, shift);
#endif
    float sum = 0;
    for (idx_t j = 0; j < n; j++) {
        float e = expf(x[j] - shift);
        y[j] = e;
        sum += e;
    }
    return sum;
}

double exp_shift_sum_f64(const double *x, double *y, idx_t n, double shift)
{
    double sum = 0;
    for (idx_t j = 0; j < n; j++) {
        double e = exp(x[j] - shift);
        y[j] = e;
        sum += e;
    }
    return sum;
}
