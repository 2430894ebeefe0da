/* activation.c: GELU (tanh form) and QuickGELU, forward and backward, elementwise.
 *
 * x, y, dy, dx: n contiguous values.
 *   gelu(x)       = 0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3)
 *   gelu'(x)      = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2),  t = tanh(u)
 *   quick_gelu(x) = x s,  s = sigmoid(1.702 x)          (the original CLIP's activation)
 *   quick_gelu'(x) = s + 1.702 x s (1 - s)
 * One pass, no temporaries (NumPy's formula makes about ten).
 * float64 uses libm's tanh and exp. float32 (libm's tanhf is scalar and slower than NumPy's
 * SIMD tanh) goes through exp, on CPUs with AVX2+FMA in one pass of 8 values per step with
 * the exp of vexp.h in registers; elsewhere (or with MINICLIP_FORCE_GENERIC=1) through
 * blocks of CHUNK values and exp_shift_sum_f32:
 *     tanh(u) = 1 - 2 / (exp(2u) + 1)
 * which is exact to about one ulp of 1 (what matters in 1 + tanh and 1 - tanh^2; the
 * relative error of tanh itself grows near u = 0, where GELU does not use it alone).
 * sigmoid(z) is evaluated without overflow: e = exp(-|z|) in (0, 1], then
 * s = 1 / (1 + e) for z >= 0 and e / (1 + e) for z < 0 (the AVX2 float32 path too; the
 * generic float32 path uses x / (1 + exp(-z)), where a huge or infinite exp(-z) gives ~0).
 * NaN in gives NaN out on every path (the result is a product or quotient with x).
 */
#include <math.h>

#include "miniclip.h"
#include "vexp.h"

#define PARALLEL_ELEMENTS 32768
#define SQRT_2_OVER_PI 0.7978845608028654
#define GELU_C 0.044715

/* ---- float64: the formulas as written above, libm's tanh and exp ---- */
static inline double sigmoid_f64(double z)
{
    double e = exp(-fabs(z));
    return z >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
}

void gelu_forward_f64(idx_t n, const double *x, double *y)
{
    #pragma omp parallel for schedule(static) if(n > PARALLEL_ELEMENTS)
    for (idx_t i = 0; i < n; i++) {
        double xi = x[i];
        double u = SQRT_2_OVER_PI * (xi + GELU_C * xi * xi * xi);
        y[i] = 0.5 * xi * (1.0 + tanh(u));
    }
}

void gelu_backward_f64(idx_t n, const double *x, const double *dy, double *dx)
{
    #pragma omp parallel for schedule(static) if(n > PARALLEL_ELEMENTS)
    for (idx_t i = 0; i < n; i++) {
        double xi = x[i];
        double t = tanh(SQRT_2_OVER_PI * (xi + GELU_C * xi * xi * xi));
        double du = SQRT_2_OVER_PI * (1.0 + (3.0 * GELU_C) * xi * xi);
        dx[i] = dy[i] * (0.5 * (1.0 + t) + 0.5 * xi * (1.0 - t * t) * du);
    }
}

void quick_gelu_forward_f64(idx_t n, const double *x, double *y)
{
    #pragma omp parallel for schedule(static) if(n > PARALLEL_ELEMENTS)
    for (idx_t i = 0; i < n; i++)
        y[i] = x[i] * sigmoid_f64(1.702 * x[i]);
}

void quick_gelu_backward_f64(idx_t n, const double *x, const double *dy, double *dx)
{
    #pragma omp parallel for schedule(static) if(n > PARALLEL_ELEMENTS)
    for (idx_t i = 0; i < n; i++) {
        double s = sigmoid_f64(1.702 * x[i]);
        dx[i] = dy[i] * (s + 1.702 * x[i] * s * (1.0 - s));
    }
}

/* ---- float32, generic: blocks of CHUNK values through exp_shift_sum_f32 ----
 * (CPUs without AVX2+FMA, and MINICLIP_FORCE_GENERIC=1 / set_simd("generic")) */
#define CHUNK 512

/* e[j] = exp(k * x[j]) for j < n (n <= CHUNK) */
static void exp_scaled_f32(idx_t n, const float *x, float k, float *e)
{
    for (idx_t j = 0; j < n; j++) e[j] = k * x[j];
    exp_shift_sum_f32(e, e, n, 0.0f);
}

/* t[j] = tanh(u_j), u = sqrt(2/pi) (x + 0.044715 x^3), through exp(2u) */
static void gelu_tanh_f32(idx_t n, const float *x, float *t)
{
    for (idx_t j = 0; j < n; j++) {
        float xj = x[j];
        t[j] = 2.0f * (float)SQRT_2_OVER_PI * (xj + (float)GELU_C * xj * xj * xj);
    }
    exp_shift_sum_f32(t, t, n, 0.0f);
    for (idx_t j = 0; j < n; j++) t[j] = 1.0f - 2.0f / (t[j] + 1.0f);
}

static void gelu_forward_generic_f32(idx_t n, const float *x, float *y)
{
    _Pragma("omp parallel for schedule(static) if(n > PARALLEL_ELEMENTS)")
    for (idx_t i0 = 0; i0 < n; i0 += CHUNK) {
        idx_t m = n - i0 < CHUNK ? n - i0 : CHUNK;
        float t[CHUNK];
        gelu_tanh_f32(m, x + i0, t);
        for (idx_t j = 0; j < m; j++) y[i0 + j] = 0.5f * x[i0 + j] * (1.0f + t[j]);
    }
}

static void gelu_backward_generic_f32(idx_t n, const float *x, const float *dy, float *dx)
{
    _Pragma("omp parallel for schedule(static) if(n > PARALLEL_ELEMENTS)")
    for (idx_t i0 = 0; i0 < n; i0 += CHUNK) {
        idx_t m = n - i0 < CHUNK ? n - i0 : CHUNK;
        float t[CHUNK];
        gelu_tanh_f32(m, x + i0, t);
        for (idx_t j = 0; j < m; j++) {
            float xj = x[i0 + j];
            float du = (float)SQRT_2_OVER_PI * (1.0f + (float)(3.0 * GELU_C) * xj * xj);
            dx[i0 + j] = dy[i0 + j] * (0.5f * (1.0f + t[j]) + 0.5f * xj * (1.0f - t[j] * t[j]) * du);
        }
    }
}

/* sigmoid(z) = 1 / (1 + exp(-z)): exp(-z) overflowing to a huge value gives 0, as it should */
static void quick_gelu_forward_generic_f32(idx_t n, const float *x, float *y)
{
    _Pragma("omp parallel for schedule(static) if(n > PARALLEL_ELEMENTS)")
    for (idx_t i0 = 0; i0 < n; i0 += CHUNK) {
        idx_t m = n - i0 < CHUNK ? n - i0 : CHUNK;
        float e[CHUNK];
        exp_scaled_f32(m, x + i0, -1.702f, e);
        for (idx_t j = 0; j < m; j++) y[i0 + j] = x[i0 + j] / (1.0f + e[j]);
    }
}

static void quick_gelu_backward_generic_f32(idx_t n, const float *x, const float *dy, float *dx)
{
    _Pragma("omp parallel for schedule(static) if(n > PARALLEL_ELEMENTS)")
    for (idx_t i0 = 0; i0 < n; i0 += CHUNK) {
        idx_t m = n - i0 < CHUNK ? n - i0 : CHUNK;
        float e[CHUNK];
        exp_scaled_f32(m, x + i0, -1.702f, e);
        for (idx_t j = 0; j < m; j++) {
            float s = 1.0f / (1.0f + e[j]), xj = x[i0 + j];
            dx[i0 + j] = dy[i0 + j] * (s + 1.702f * xj * s * (1.0f - s));
        }
    }
}

#if MINICLIP_HAVE_AVX2
/* ---- float32 with AVX2+FMA: one pass, 8 values per step ----
 * Each step loads x (and dy), computes exp in registers (exp_avx2_ps, vexp.h) and
 * stores the result: no temporary block, no second pass. The last n % 8 values go
 * through the same vector code with masked loads and stores, so a value's result does
 * not depend on where it sits in the array. Every operation is IEEE (no approximate
 * reciprocal); FMAs fuse a multiply and an add, which only removes a rounding. */
#define BLOCK 4096                  /* values per OpenMP work item (a multiple of 8) */

/* lanes j < rem set (0 < rem < 8): the partial last vector */
__attribute__((target("avx2,fma")))
static inline __m256i tail_mask(idx_t rem)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)rem), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* sigmoid(z) = num / (1 + e) with no overflow: e = exp(-|z|) in (0, 1], num = 1 for z >= 0
 * and e for z < 0 (sigmoid(z) = e / (1 + e) there), as the generic sigmoid. Returns 1 + e
 * and num. NaN z gives a number here; the callers multiply by x, which brings NaN back. */
__attribute__((target("avx2,fma")))
static inline __m256 sigmoid_parts_avx2_ps(__m256 z, __m256 *e, __m256 *num)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    *e = exp_avx2_ps(_mm256_or_ps(z, _mm256_set1_ps(-0.0f)));                  /* exp(-|z|) */
    *num = _mm256_blendv_ps(one, *e, _mm256_cmp_ps(z, _mm256_setzero_ps(), _CMP_LT_OQ));
    return _mm256_add_ps(one, *e);
}

/* tanh(u) for u = sqrt(2/pi) (x + 0.044715 x^3), as 1 - 2 / (exp(2u) + 1) like the generic
 * path: exp(2u) = +inf for large u gives 1, exp(2u) = 0 for very negative u gives -1 */
__attribute__((target("avx2,fma")))
static inline __m256 gelu_tanh_avx2_ps(__m256 x)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 cx2 = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps((float)GELU_C), x), x);
    __m256 inner = _mm256_fmadd_ps(cx2, x, x);                                 /* x + c x^3 */
    __m256 e = exp_avx2_ps(_mm256_mul_ps(_mm256_set1_ps(2.0f * (float)SQRT_2_OVER_PI), inner));
    return _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, one)));
}

/* y = x s = (x num) / (1 + e), s = sigmoid(1.702 x): one division, one rounding after it */
__attribute__((target("avx2,fma")))
static inline __m256 quick_gelu_avx2_ps(__m256 x)
{
    __m256 e, num, d = sigmoid_parts_avx2_ps(_mm256_mul_ps(_mm256_set1_ps(1.702f), x), &e, &num);
    return _mm256_div_ps(_mm256_mul_ps(x, num), d);
}

/* dx = dy (s + z s (1 - s)), z = 1.702 x. With r = 1 / (1 + e): s = num r, and
 * s (1 - s) = e r^2 for either sign of z (no 1 - s computed as a difference, which
 * would lose every digit of a small 1 - s). */
__attribute__((target("avx2,fma")))
static inline __m256 quick_gelu_grad_avx2_ps(__m256 x, __m256 dy)
{
    __m256 e, num, z = _mm256_mul_ps(_mm256_set1_ps(1.702f), x);
    __m256 r = _mm256_div_ps(_mm256_set1_ps(1.0f), sigmoid_parts_avx2_ps(z, &e, &num));
    __m256 s = _mm256_mul_ps(num, r), s1s = _mm256_mul_ps(_mm256_mul_ps(e, r), r);
    return _mm256_mul_ps(dy, _mm256_fmadd_ps(z, s1s, s));
}

/* y = 0.5 x (1 + t) */
__attribute__((target("avx2,fma")))
static inline __m256 gelu_avx2_ps(__m256 x)
{
    __m256 t = gelu_tanh_avx2_ps(x);
    return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), _mm256_add_ps(_mm256_set1_ps(1.0f), t));
}

/* dx = dy (0.5 (1 + t) + 0.5 x (1 - t^2) du),  du = sqrt(2/pi) (1 + 3 * 0.044715 x^2) */
__attribute__((target("avx2,fma")))
static inline __m256 gelu_grad_avx2_ps(__m256 x, __m256 dy)
{
    const __m256 one = _mm256_set1_ps(1.0f), half = _mm256_set1_ps(0.5f);
    __m256 t = gelu_tanh_avx2_ps(x);
    __m256 du = _mm256_mul_ps(_mm256_set1_ps((float)SQRT_2_OVER_PI),
                              _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps((float)(3.0 * GELU_C)), x), x, one));
    __m256 one_minus_t2 = _mm256_fnmadd_ps(t, t, one);
    __m256 slope = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(half, x), one_minus_t2), du);
    return _mm256_mul_ps(dy, _mm256_fmadd_ps(half, _mm256_add_ps(one, t), slope));
}

/* the loops: F(x) (and F(x, dy)) over n values, full vectors then one masked vector */
#define DEFINE_UNARY_AVX2(NAME, F)                                                        \
__attribute__((target("avx2,fma")))                                                     \
static void NAME(idx_t n, const float *x, float *y)                                     \
{                                                                                       \
    idx_t j = 0;                                                                        \
    for (; j + 8 <= n; j += 8) _mm256_storeu_ps(y + j, F(_mm256_loadu_ps(x + j)));      \
    if (j < n) {                                                                        \
        __m256i m = tail_mask(n - j);                                                   \
        _mm256_maskstore_ps(y + j, m, F(_mm256_maskload_ps(x + j, m)));                 \
    }                                                                                   \
}

#define DEFINE_BINARY_AVX2(NAME, F)                                                       \
__attribute__((target("avx2,fma")))                                                     \
static void NAME(idx_t n, const float *x, const float *dy, float *dx)                   \
{                                                                                       \
    idx_t j = 0;                                                                        \
    for (; j + 8 <= n; j += 8)                                                          \
        _mm256_storeu_ps(dx + j, F(_mm256_loadu_ps(x + j), _mm256_loadu_ps(dy + j)));   \
    if (j < n) {                                                                        \
        __m256i m = tail_mask(n - j);                                                   \
        _mm256_maskstore_ps(dx + j, m, F(_mm256_maskload_ps(x + j, m), _mm256_maskload_ps(dy + j, m))); \
    }                                                                                   \
}

DEFINE_UNARY_AVX2(gelu_forward_avx2_f32, gelu_avx2_ps)
DEFINE_BINARY_AVX2(gelu_backward_avx2_f32, gelu_grad_avx2_ps)
DEFINE_UNARY_AVX2(quick_gelu_forward_avx2_f32, quick_gelu_avx2_ps)
DEFINE_BINARY_AVX2(quick_gelu_backward_avx2_f32, quick_gelu_grad_avx2_ps)

/* the OpenMP loops stay in plain C and call the AVX2 function once per BLOCK values */
static void unary_blocks_f32(void (*f)(idx_t, const float *, float *), idx_t n, const float *x, float *y)
{
    _Pragma("omp parallel for schedule(static) if(n > PARALLEL_ELEMENTS)")
    for (idx_t i0 = 0; i0 < n; i0 += BLOCK)
        f(n - i0 < BLOCK ? n - i0 : BLOCK, x + i0, y + i0);
}

static void binary_blocks_f32(void (*f)(idx_t, const float *, const float *, float *), idx_t n,
                              const float *x, const float *dy, float *dx)
{
    _Pragma("omp parallel for schedule(static) if(n > PARALLEL_ELEMENTS)")
    for (idx_t i0 = 0; i0 < n; i0 += BLOCK)
        f(n - i0 < BLOCK ? n - i0 : BLOCK, x + i0, dy + i0, dx + i0);
}
#endif /* MINICLIP_HAVE_AVX2 */

/* ---- float32 entry points: AVX2+FMA when the CPU has it (and it is not forced off) ---- */
#if MINICLIP_HAVE_AVX2
#define DISPATCH_UNARY(AVX2, ...) do { if (miniclip_use_avx2()) { unary_blocks_f32(AVX2, __VA_ARGS__); return; } } while (0)
#define DISPATCH_BINARY(AVX2, ...) do { if (miniclip_use_avx2()) { binary_blocks_f32(AVX2, __VA_ARGS__); return; } } while (0)
#else
#define DISPATCH_UNARY(AVX2, ...) do { } while (0)
#define DISPATCH_BINARY(AVX2, ...) do { } while (0)
#endif

void gelu_forward_f32(idx_t n, const float *x, float *y)
{
    DISPATCH_UNARY(gelu_forward_avx2_f32, n, x, y);
    gelu_forward_generic_f32(n, x, y);
}

void gelu_backward_f32(idx_t n, const float *x, const float *dy, float *dx)
{
    DISPATCH_BINARY(gelu_backward_avx2_f32, n, x, dy, dx);
    gelu_backward_generic_f32(n, x, dy, dx);
}

void quick_gelu_forward_f32(idx_t n, const float *x, float *y)
{
    DISPATCH_UNARY(quick_gelu_forward_avx2_f32, n, x, y);
    quick_gelu_forward_generic_f32(n, x, y);
}

void quick_gelu_backward_f32(idx_t n, const float *x, const float *dy, float *dx)
{
    DISPATCH_BINARY(quick_gelu_backward_avx2_f32, n, x, dy, dx);
    quick_gelu_backward_generic_f32(n, x, dy, dx);
}
