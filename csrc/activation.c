/* activation.c: GELU (tanh form) and QuickGELU, forward and backward, elementwise.
 *
 * x, y, dy, dx: n contiguous values.
 *   gelu(x)       = 0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3)
 *   gelu'(x)      = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2),  t = tanh(u)
 *   quick_gelu(x) = x s,  s = sigmoid(1.702 x)          (the original CLIP's activation)
 *   quick_gelu'(x) = s + 1.702 x s (1 - s)
 * One pass, no temporaries (NumPy's formula makes about ten).
 * float64 uses libm's tanh and exp. float32 goes through blocks of CHUNK values and the
 * vectorised exp of vexp.c (libm's tanhf is scalar and slower than NumPy's SIMD tanh):
 *     tanh(u) = 1 - 2 / (exp(2u) + 1)
 * which is exact to about one ulp of 1 (what matters in 1 + tanh and 1 - tanh^2; the
 * relative error of tanh itself grows near u = 0, where GELU does not use it alone).
 * sigmoid(z) is evaluated without overflow: e = exp(-|z|) in (0, 1], then
 * s = 1 / (1 + e) for z >= 0 and e / (1 + e) for z < 0.
 */
#include <math.h>

#include "miniclip.h"
#include "vexp.h"

#define PARALLEL_ELEMENTS 32768
#define SQRT_2_OVER_PI 0.7978845608028654
#define GELU_C 0.044715

#define DEFINE_ACTIVATIONS(SFX, T, TANH, EXP, FABS)                                      \
static inline T sigmoid##SFX(T z)                                                        \
{                                                                                        \
    T e = EXP(-FABS(z));                                                                 \
    return z >= 0 ? (T)1 / ((T)1 + e) : e / ((T)1 + e);                                 \
}                                                                                        \
                                                                                         \
void gelu_forward##SFX(idx_t n, const T *x, T *y)                                        \
{                                                                                        \
    _Pragma("omp parallel for schedule(static) if(n > PARALLEL_ELEMENTS)")               \
    for (idx_t i = 0; i < n; i++) {                                                      \
        T xi = x[i];                                                                     \
        T u = (T)SQRT_2_OVER_PI * (xi + (T)GELU_C * xi * xi * xi);                       \
        y[i] = (T)0.5 * xi * ((T)1 + TANH(u));                                           \
    }                                                                                    \
}                                                                                        \
                                                                                         \
void gelu_backward##SFX(idx_t n, const T *x, const T *dy, T *dx)                         \
{                                                                                        \
    _Pragma("omp parallel for schedule(static) if(n > PARALLEL_ELEMENTS)")               \
    for (idx_t i = 0; i < n; i++) {                                                      \
        T xi = x[i];                                                                     \
        T t = TANH((T)SQRT_2_OVER_PI * (xi + (T)GELU_C * xi * xi * xi));                 \
        T du = (T)SQRT_2_OVER_PI * ((T)1 + (T)(3.0 * GELU_C) * xi * xi);                 \
        dx[i] = dy[i] * ((T)0.5 * ((T)1 + t) + (T)0.5 * xi * ((T)1 - t * t) * du);       \
    }                                                                                    \
}                                                                                        \
                                                                                         \
void quick_gelu_forward##SFX(idx_t n, const T *x, T *y)                                  \
{                                                                                        \
    _Pragma("omp parallel for schedule(static) if(n > PARALLEL_ELEMENTS)")               \
    for (idx_t i = 0; i < n; i++)                                                        \
        y[i] = x[i] * sigmoid##SFX((T)1.702 * x[i]);                                     \
}                                                                                        \
                                                                                         \
void quick_gelu_backward##SFX(idx_t n, const T *x, const T *dy, T *dx)                   \
{                                                                                        \
    _Pragma("omp parallel for schedule(static) if(n > PARALLEL_ELEMENTS)")               \
    for (idx_t i = 0; i < n; i++) {                                                      \
        T s = sigmoid##SFX((T)1.702 * x[i]);                                             \
        dx[i] = dy[i] * (s + (T)1.702 * x[i] * s * ((T)1 - s));                          \
    }                                                                                    \
}

DEFINE_ACTIVATIONS(_f64, double, tanh, exp, fabs)

/* ---- float32: blocks of CHUNK values through the vectorised exp ---- */
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

void gelu_forward_f32(idx_t n, const float *x, float *y)
{
    _Pragma("omp parallel for schedule(static) if(n > PARALLEL_ELEMENTS)")
    for (idx_t i0 = 0; i0 < n; i0 += CHUNK) {
        idx_t m = n - i0 < CHUNK ? n - i0 : CHUNK;
        float t[CHUNK];
        gelu_tanh_f32(m, x + i0, t);
        for (idx_t j = 0; j < m; j++) y[i0 + j] = 0.5f * x[i0 + j] * (1.0f + t[j]);
    }
}

void gelu_backward_f32(idx_t n, const float *x, const float *dy, float *dx)
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
void quick_gelu_forward_f32(idx_t n, const float *x, float *y)
{
    _Pragma("omp parallel for schedule(static) if(n > PARALLEL_ELEMENTS)")
    for (idx_t i0 = 0; i0 < n; i0 += CHUNK) {
        idx_t m = n - i0 < CHUNK ? n - i0 : CHUNK;
        float e[CHUNK];
        exp_scaled_f32(m, x + i0, -1.702f, e);
        for (idx_t j = 0; j < m; j++) y[i0 + j] = x[i0 + j] / (1.0f + e[j]);
    }
}

void quick_gelu_backward_f32(idx_t n, const float *x, const float *dy, float *dx)
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
