/* softmax_impl.h: the softmax family for one element type (REAL, SFX, LOG, VEXP: real.h);
 * softmax.c states the math. */
#include "real.h"

void SFX(softmax_rows)(idx_t R, idx_t C, const REAL *x, REAL *y, int log_space)
{
    #pragma omp parallel for schedule(static) if(R * C > PARALLEL_ELEMENTS)
    for (idx_t r = 0; r < R; r++) {
        const REAL *xr = x + r * C;
        REAL *yr = y + r * C;
        REAL m = xr[0];
        #pragma omp simd reduction(max:m)
        for (idx_t j = 1; j < C; j++) m = xr[j] > m ? xr[j] : m;
        if (!isfinite(m)) m = isnan(m) ? m : 0;    /* all -inf row: shift by 0, not -inf */
        REAL sum = VEXP(xr, yr, C, m);             /* yr = exp(x - m) */
        if (log_space) {
            REAL lse = m + LOG(sum);
            for (idx_t j = 0; j < C; j++) yr[j] = xr[j] - lse;
        } else {
            REAL inv = (REAL)1 / sum;
            for (idx_t j = 0; j < C; j++) yr[j] *= inv;
        }
    }
}

void SFX(softmax_backward_rows)(idx_t R, idx_t C, const REAL *y, const REAL *dy, REAL *dx,
                                int log_space)
{
    #pragma omp parallel for schedule(static) if(R * C > PARALLEL_ELEMENTS)
    for (idx_t r = 0; r < R; r++) {
        const REAL *yr = y + r * C, *dyr = dy + r * C;
        REAL *dxr = dx + r * C;
        REAL s = 0;
        if (log_space) {                            /* dx = dy - exp(y) sum(dy) */
            for (idx_t j = 0; j < C; j++) s += dyr[j];
            VEXP(yr, dxr, C, (REAL)0);              /* dxr = exp(y) = softmax */
            for (idx_t j = 0; j < C; j++) dxr[j] = dyr[j] - dxr[j] * s;
        } else {                                    /* dx = y (dy - sum(dy y)) */
            for (idx_t j = 0; j < C; j++) s += dyr[j] * yr[j];
            for (idx_t j = 0; j < C; j++) dxr[j] = yr[j] * (dyr[j] - s);
        }
    }
}

#include "real_end.h"
