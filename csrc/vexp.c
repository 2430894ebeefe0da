/* vexp.c: y = exp(x - shift) over a row, and its sum (see vexp.h).
 *
 * float32 with AVX2+FMA: 8 lanes at a time through exp_avx2_ps (vexp.h, where the
 * method is described). NaN in gives NaN out.
 * float64 (and CPUs without AVX2) use libm's exp, one value at a time.
 */
#include <math.h>

#include "vexp.h"

#if MINICLIP_HAVE_AVX2
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
    float lanes[8], sum = 0;
    _mm256_storeu_ps(lanes, acc);
    for (int l = 0; l < 8; l++) sum += lanes[l];
    /* the last 1..7 values one at a time (why not a masked vector: benchmarks/README.md) */
    for (; j < n; j++) {
        float e = expf(x[j] - shift);
        y[j] = e;
        sum += e;
    }
    return sum;
}
#endif

float exp_shift_sum_f32(const float *x, float *y, idx_t n, float shift)
{
#if MINICLIP_HAVE_AVX2
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
