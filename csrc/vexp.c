/* vexp.c: y = exp(x - shift) over a row, and its sum (see vexp.h).
 *
 * With AVX-512: float32 16 lanes at a time through exp_avx512_ps, the row's last values as one
 * masked vector (masked loads and stores are plain instructions in AVX-512, unlike AVX2's).
 * With AVX2+FMA (and float64 with AVX-512 too: vexp.h says why): 8 float32 lanes through
 * exp_avx2_ps, 4 float64 lanes through exp_avx2_pd, the last few values one at a time through
 * libm (vexp.h describes the methods). NaN in gives NaN out. CPUs without AVX2 use libm's exp
 * throughout. The level follows the GEMM micro-kernel's (miniclip_set_simd).
 */
#include <math.h>

#include "gemm_microkernel.h"   /* miniclip_use_avx512 */
#include "vexp.h"

#if MINICLIP_HAVE_AVX2
__attribute__((target("avx512f")))
static float exp_shift_sum_avx512_f32(const float *x, float *y, idx_t n, float shift)
{
    __m512 vs = _mm512_set1_ps(shift), acc = _mm512_setzero_ps();
    for (idx_t j = 0; j < n; j += 16) {
        __mmask16 m = n - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - j)) - 1);
        __m512 xj = _mm512_maskz_loadu_ps(m, x + j);
        __m512 e = exp_avx512_ps(_mm512_sub_ps(xj, vs));
        e = _mm512_mask_mov_ps(e, _mm512_cmp_ps_mask(xj, xj, _CMP_UNORD_Q), xj);   /* NaN stays NaN */
        _mm512_mask_storeu_ps(y + j, m, e);
        acc = _mm512_mask_add_ps(acc, m, acc, e);
    }
    return _mm512_reduce_add_ps(acc);
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
    if (miniclip_use_avx512()) return exp_shift_sum_avx512_f32(x, y, n, shift);
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

#if MINICLIP_HAVE_AVX2
__attribute__((target("avx2,fma")))
static double exp_shift_sum_avx2_f64(const double *x, double *y, idx_t n, double shift)
{
    __m256d vs = _mm256_set1_pd(shift), acc = _mm256_setzero_pd();
    idx_t j = 0;
    for (; j + 4 <= n; j += 4) {
        __m256d xj = _mm256_loadu_pd(x + j);
        __m256d e = exp_avx2_pd(_mm256_sub_pd(xj, vs));
        e = _mm256_blendv_pd(e, xj, _mm256_cmp_pd(xj, xj, _CMP_UNORD_Q));    /* NaN stays NaN */
        _mm256_storeu_pd(y + j, e);
        acc = _mm256_add_pd(acc, e);
    }
    double lanes[4], sum = 0;
    _mm256_storeu_pd(lanes, acc);
    for (int l = 0; l < 4; l++) sum += lanes[l];
    for (; j < n; j++) {
        double e = exp(x[j] - shift);
        y[j] = e;
        sum += e;
    }
    return sum;
}
#endif

double exp_shift_sum_f64(const double *x, double *y, idx_t n, double shift)
{
#if MINICLIP_HAVE_AVX2
    if (miniclip_use_avx2()) return exp_shift_sum_avx2_f64(x, y, n, shift);
#endif
    double sum = 0;
    for (idx_t j = 0; j < n; j++) {
        double e = exp(x[j] - shift);
        y[j] = e;
        sum += e;
    }
    return sum;
}
