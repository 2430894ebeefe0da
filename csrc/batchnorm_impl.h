/* batchnorm_impl.h: BatchNorm2d for one element type (REAL, SFX: real.h); see batchnorm.c.
 *   batchnorm_stats, batchnorm_apply, batchnorm_backward   the three kernels
 *   row_sum, row_sum_sq_dev, row_sum_dy_dev                the per-row sums they share
 */
#include "real.h"

#define BN_LANES 8   /* independent partial sums per row */

/* sum of row[0 .. n) */
static double SFX(row_sum)(const REAL *row, idx_t n)
{
    double acc[BN_LANES] = {0};
    idx_t i = 0;
    for (; i + BN_LANES <= n; i += BN_LANES)
        for (int k = 0; k < BN_LANES; k++) acc[k] += (double)row[i + k];
    double s = 0;
    for (; i < n; i++) s += (double)row[i];
    for (int k = 0; k < BN_LANES; k++) s += acc[k];
    return s;
}

/* sum of (row[i] - mu)^2 */
static double SFX(row_sum_sq_dev)(const REAL *row, idx_t n, double mu)
{
    double acc[BN_LANES] = {0};
    idx_t i = 0;
    for (; i + BN_LANES <= n; i += BN_LANES)
        for (int k = 0; k < BN_LANES; k++) {
            double d = (double)row[i + k] - mu;
            acc[k] += d * d;
        }
    double s = 0;
    for (; i < n; i++) s += ((double)row[i] - mu) * ((double)row[i] - mu);
    for (int k = 0; k < BN_LANES; k++) s += acc[k];
    return s;
}

/* *sum_dy += sum of dy[i], *sum_dy_dev += sum of dy[i] (x[i] - mu) */
static void SFX(row_sum_dy_dev)(const REAL *x, const REAL *dy, idx_t n, double mu,
                                double *sum_dy, double *sum_dy_dev)
{
    double a[BN_LANES] = {0}, b[BN_LANES] = {0};
    idx_t i = 0;
    for (; i + BN_LANES <= n; i += BN_LANES)
        for (int k = 0; k < BN_LANES; k++) {
            a[k] += (double)dy[i + k];
            b[k] += (double)dy[i + k] * ((double)x[i + k] - mu);
        }
    double sa = 0, sb = 0;
    for (; i < n; i++) {
        sa += (double)dy[i];
        sb += (double)dy[i] * ((double)x[i] - mu);
    }
    for (int k = 0; k < BN_LANES; k++) {
        sa += a[k];
        sb += b[k];
    }
    *sum_dy += sa;
    *sum_dy_dev += sb;
}

#define BN_THREADS(N, C, HW) ((double)(N) * (C) * (HW) < 65536 || (C) < 2 ? 1 : miniclip_max_threads())

/* mean[c], var[c] (biased) over the M = N*HW values of channel c */
void SFX(batchnorm_stats)(idx_t N, idx_t C, idx_t HW, const REAL *x, REAL *mean, REAL *var)
{
    double M = (double)N * (double)HW;
    #pragma omp parallel for schedule(static) num_threads(BN_THREADS(N, C, HW))
    for (idx_t c = 0; c < C; c++) {
        double s = 0;
        for (idx_t n = 0; n < N; n++) s += SFX(row_sum)(x + (n * C + c) * HW, HW);
        double mu = s / M, ss = 0;
        for (idx_t n = 0; n < N; n++) ss += SFX(row_sum_sq_dev)(x + (n * C + c) * HW, HW, mu);
        mean[c] = (REAL)mu;
        var[c] = (REAL)(ss / M);
    }
}

/* y = x * scale[c] + shift[c]; y may be x (in place) */
void SFX(batchnorm_apply)(idx_t N, idx_t C, idx_t HW, const REAL *x, const REAL *scale, const REAL *shift,
                          REAL *y)
{
    #pragma omp parallel for schedule(static) num_threads(BN_THREADS(N, C, HW))
    for (idx_t c = 0; c < C; c++) {
        REAL a = scale[c], b = shift[c];
        for (idx_t n = 0; n < N; n++) {
            const REAL *src = x + (n * C + c) * HW;
            REAL *dst = y + (n * C + c) * HW;
            for (idx_t i = 0; i < HW; i++) dst[i] = src[i] * a + b;
        }
    }
}

/* dx, dweight, dbias from dy; training: mu, rstd are the batch's (so dx has the paths through
 * them), else constants. With sdy = sum dy and sdd = sum dy (x - mu), dweight = rstd sdd, and
 * the training dx = scale (dy - sdy / M - (x - mu) rstd^2 sdd / M), scale = weight rstd. */
void SFX(batchnorm_backward)(idx_t N, idx_t C, idx_t HW, const REAL *x, const REAL *dy, const REAL *mu,
                             const REAL *rstd, const REAL *weight, int training,
                             REAL *dx, REAL *dweight, REAL *dbias)
{
    double M = (double)N * (double)HW;
    #pragma omp parallel for schedule(static) num_threads(BN_THREADS(N, C, HW))
    for (idx_t c = 0; c < C; c++) {
        double m = mu[c], r = rstd[c], sdy = 0, sdd = 0;
        for (idx_t n = 0; n < N; n++) SFX(row_sum_dy_dev)(x + (n * C + c) * HW, dy + (n * C + c) * HW, HW, m, &sdy, &sdd);
        dbias[c] = (REAL)sdy;
        dweight[c] = (REAL)(sdd * r);
        double scale = (double)weight[c] * r;
        /* dx = k_dy dy + k_x (x - mu) + k_0 */
        REAL k_dy = (REAL)scale;
        REAL k_x = (REAL)(-scale * r * r * sdd / M), k_0 = (REAL)(-scale * sdy / M);
        REAL mr = (REAL)m;
        for (idx_t n = 0; n < N; n++) {
            const REAL *xr = x + (n * C + c) * HW, *dyr = dy + (n * C + c) * HW;
            REAL *dxr = dx + (n * C + c) * HW;
            if (training)
                for (idx_t i = 0; i < HW; i++) dxr[i] = k_dy * dyr[i] + k_x * (xr[i] - mr) + k_0;
            else
                for (idx_t i = 0; i < HW; i++) dxr[i] = k_dy * dyr[i];
        }
    }
}

#undef BN_LANES
#undef BN_THREADS
#include "real_end.h"
