/* softmax.c: softmax, log-softmax and their backward over the last axis, row by row.
 *
 * Shape legend: R rows (every leading axis flattened), C the last axis (classes, keys).
 * x, y, dy, dx: (R, C) contiguous. One pass over a row computes its max and one more
 * its exponentials and their sum (vectorised for float32, vexp.c), so nothing but the
 * output is written to memory, where NumPy's formula makes four temporaries.
 *
 *   softmax:      y = exp(x - m) / sum_j exp(x_j - m),  m = max_j x_j (for stability)
 *   log_softmax:  y = x - m - log sum_j exp(x_j - m)
 *   softmax backward:      dx = y * (dy - sum_j dy_j y_j)
 *   log_softmax backward:  dx = dy - exp(y) * sum_j dy_j
 * Threads: OpenMP over rows once there are enough elements to share.
 */
#include <math.h>

#include "miniclip.h"
#include "vexp.h"

#define PARALLEL_ELEMENTS 32768

#define DEFINE_SOFTMAX(SFX, T, LOG)                                                      \
void softmax_rows##SFX(idx_t R, idx_t C, const T *x, T *y, int log_space)                \
{                                                                                        \
    _Pragma("omp parallel for schedule(static) if(R * C > PARALLEL_ELEMENTS)")           \
    for (idx_t r = 0; r < R; r++) {                                                      \
        const T *xr = x + r * C;                                                         \
        T *yr = y + r * C;                                                               \
        T m = xr[0];                                                                     \
        for (idx_t j = 1; j < C; j++) m = xr[j] > m ? xr[j] : m;                         \
        if (!isfinite(m)) m = isnan(m) ? m : 0; /* all -inf row: shift by 0, not -inf */ \
        T sum = exp_shift_sum##SFX(xr, yr, C, m);              /* yr = exp(x - m) */     \
        if (log_space) {                                                                 \
            T lse = m + LOG(sum);                                                        \
            for (idx_t j = 0; j < C; j++) yr[j] = xr[j] - lse;                           \
        } else {                                                                         \
            T inv = (T)1 / sum;                                                          \
            for (idx_t j = 0; j < C; j++) yr[j] *= inv;                                  \
        }                                                                                \
    }                                                                                    \
}                                                                                        \
                                                                                         \
void softmax_backward_rows##SFX(idx_t R, idx_t C, const T *y, const T *dy, T *dx,        \
                                int log_space)                                           \
{                                                                                        \
    _Pragma("omp parallel for schedule(static) if(R * C > PARALLEL_ELEMENTS)")           \
    for (idx_t r = 0; r < R; r++) {                                                      \
        const T *yr = y + r * C, *dyr = dy + r * C;                                      \
        T *dxr = dx + r * C;                                                             \
        T s = 0;                                                                         \
        if (log_space) {                                 /* dx = dy - exp(y) sum(dy) */  \
            for (idx_t j = 0; j < C; j++) s += dyr[j];                                   \
            exp_shift_sum##SFX(yr, dxr, C, (T)0);        /* dxr = exp(y) = softmax */    \
            for (idx_t j = 0; j < C; j++) dxr[j] = dyr[j] - dxr[j] * s;                  \
        } else {                                         /* dx = y (dy - sum(dy y)) */   \
            for (idx_t j = 0; j < C; j++) s += dyr[j] * yr[j];                           \
            for (idx_t j = 0; j < C; j++) dxr[j] = yr[j] * (dyr[j] - s);                 \
        }                                                                                \
    }                                                                                    \
}

DEFINE_SOFTMAX(_f32, float, logf)
DEFINE_SOFTMAX(_f64, double, log)
