/* layernorm.c: LayerNorm over the last axis, forward and backward, one pass per row.
 *
 * Shape legend: R rows (every leading axis flattened), C features. x, y, dy, dx: (R, C)
 * contiguous; mean, rstd: (R,); weight, bias, dweight, dbias: (C,) (weight/bias may be NULL).
 *
 * forward:   mean = sum_j x_j / C,  var = sum_j (x_j - mean)^2 / C  (biased, as PyTorch),
 *            rstd = 1 / sqrt(var + eps),  y = (x - mean) * rstd * weight + bias
 * backward:  xhat = (x - mean) * rstd,  g = dy * weight,
 *            dx = rstd * (g - mean_j(g) - xhat * mean_j(g * xhat))
 *            dweight = sum over rows of dy * xhat,  dbias = sum over rows of dy
 * The two-pass variance (mean first, then squares of x - mean) is the one NumPy's
 * reference computes; the one-pass E[x^2] - mean^2 loses digits when |mean| >> std.
 * Every sum (over a row of C, or over the R rows for dweight and dbias) is accumulated
 * in double (the row sums as `omp simd` reductions: vector lanes summed separately, then
 * together, an ordering OpenMP allows without -ffast-math), so float32 keeps the accuracy of NumPy's pairwise sums for any C and R.
 * dweight and dbias: each thread sums its rows into a private buffer, and the buffers
 * are added at the end (no atomics).
 */
#include <stdlib.h>
#include <math.h>

#include "miniclip.h"

#define PARALLEL_ELEMENTS 32768

#ifdef _OPENMP
#include <omp.h>
#endif

#define DEFINE_LAYER_NORM(SFX, T, SQRT)                                                  \
void layer_norm_forward##SFX(idx_t R, idx_t C, const T *x, const T *weight, const T *bias, \
                             T eps, T *y, T *mean, T *rstd)                              \
{                                                                                        \
    _Pragma("omp parallel for schedule(static) if(R * C > PARALLEL_ELEMENTS)")           \
    for (idx_t r = 0; r < R; r++) {                                                      \
        const T *xr = x + r * C;                                                         \
        T *yr = y + r * C;                                                               \
        double s = 0, v = 0;                       /* row sums in double (see above) */  \
        _Pragma("omp simd reduction(+:s)")                                               \
        for (idx_t j = 0; j < C; j++) s += xr[j];                                        \
        T mu = (T)(s / (double)C);                                                       \
        _Pragma("omp simd reduction(+:v)")                                               \
        for (idx_t j = 0; j < C; j++) v += (double)((xr[j] - mu) * (xr[j] - mu));        \
        T rs = (T)1 / SQRT((T)(v / (double)C) + eps);                                    \
        mean[r] = mu;                                                                    \
        rstd[r] = rs;                                                                    \
        for (idx_t j = 0; j < C; j++) {                                                  \
            T h = (xr[j] - mu) * rs;                                                     \
            if (weight) h *= weight[j];                                                  \
            if (bias) h += bias[j];                                                      \
            yr[j] = h;                                                                   \
        }                                                                                \
    }                                                                                    \
}                                                                                        \
                                                                                         \
int layer_norm_backward##SFX(idx_t R, idx_t C, const T *dy, const T *x, const T *weight, \
                             const T *mean, const T *rstd, T *dx, T *dweight, T *dbias)  \
{                                                                                        \
    int nt = 1;                                                                          \
    LN_TEAM_SIZE(nt, R * C > PARALLEL_ELEMENTS);                                         \
    double *partial = (double *)calloc((size_t)nt * 2 * C, sizeof(double));              \
    if (!partial) return 0;                                                              \
    _Pragma("omp parallel num_threads(nt) if(nt > 1)")                                   \
    {                                                                                    \
        int tid = LN_THREAD_ID();                                                        \
        double *dw = partial + (size_t)tid * 2 * C, *db = dw + C;                        \
        _Pragma("omp for schedule(static)")                                              \
        for (idx_t r = 0; r < R; r++) {                                                  \
            const T *xr = x + r * C, *dyr = dy + r * C;                                  \
            T *dxr = dx + r * C;                                                         \
            T mu = mean[r], rs = rstd[r];                                                \
            double sg = 0, sgx = 0;                                                      \
            _Pragma("omp simd reduction(+:sg, sgx)")                                     \
            for (idx_t j = 0; j < C; j++) {                                              \
                T xhat = (xr[j] - mu) * rs;                                              \
                T g = weight ? dyr[j] * weight[j] : dyr[j];                              \
                sg += g;                                                                 \
                sgx += g * xhat;                                                         \
                dw[j] += (double)dyr[j] * (double)xhat;                                  \
                db[j] += (double)dyr[j];                                                 \
            }                                                                            \
            T mg = (T)(sg / (double)C), mgx = (T)(sgx / (double)C);                      \
            for (idx_t j = 0; j < C; j++) {                                              \
                T xhat = (xr[j] - mu) * rs;                                              \
                T g = weight ? dyr[j] * weight[j] : dyr[j];                              \
                dxr[j] = rs * (g - mg - xhat * mgx);                                     \
            }                                                                            \
        }                                                                                \
    }                                                                                    \
    for (idx_t j = 0; j < C; j++) {                                                      \
        double sw = 0, sb = 0;                                                           \
        for (int t = 0; t < nt; t++) {                                                   \
            sw += partial[(size_t)t * 2 * C + j];                                        \
            sb += partial[(size_t)t * 2 * C + C + j];                                    \
        }                                                                                \
        if (dweight) dweight[j] = (T)sw;                                                 \
        dbias[j] = (T)sb;                                                                \
    }                                                                                    \
    free(partial);                                                                       \
    return 1;                                                                            \
}

#ifdef _OPENMP
#define LN_TEAM_SIZE(nt, big) do { if (big) nt = omp_get_max_threads(); } while (0)
#define LN_THREAD_ID() omp_get_thread_num()
#else
#define LN_TEAM_SIZE(nt, big) do { (void)(big); } while (0)
#define LN_THREAD_ID() 0
#endif

DEFINE_LAYER_NORM(_f32, float, sqrtf)
DEFINE_LAYER_NORM(_f64, double, sqrt)
