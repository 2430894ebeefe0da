/* batchnorm_impl.h: BatchNorm2d for one element type (REAL, SFX: real.h); see batchnorm.c.
 *   row_sum, row_sum_sq_dev, row_sum_dy_dev   the per-row sums
 *   stats_range, backward_range               the kernels on a range of channels (one thread's)
 *   batchnorm_stats, batchnorm_apply, batchnorm_backward   the entry points
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

/* Every kernel runs its channels c0 .. c1 image by image: for n, for c in c0 .. c1, row (n, c).
 * That reads memory in order even when a row is a single pixel (HW = 1 in the ResNet's last
 * stage), where channel by channel would touch a new cache line per value. The per-channel
 * sums live in acc (2 doubles per channel). */

/* mean, var of channels c0 .. c1 */
static void SFX(stats_range)(idx_t c0, idx_t c1, idx_t N, idx_t C, idx_t HW, const REAL *x,
                             REAL *mean, REAL *var, double *acc)
{
    double M = (double)N * (double)HW;
    for (idx_t c = c0; c < c1; c++) acc[2 * c] = acc[2 * c + 1] = 0;
    for (idx_t n = 0; n < N; n++)
        for (idx_t c = c0; c < c1; c++) acc[2 * c] += SFX(row_sum)(x + (n * C + c) * HW, HW);
    for (idx_t c = c0; c < c1; c++) acc[2 * c] /= M;                              /* the mean */
    for (idx_t n = 0; n < N; n++)
        for (idx_t c = c0; c < c1; c++) acc[2 * c + 1] += SFX(row_sum_sq_dev)(x + (n * C + c) * HW, HW, acc[2 * c]);
    for (idx_t c = c0; c < c1; c++) {
        mean[c] = (REAL)acc[2 * c];
        var[c] = (REAL)(acc[2 * c + 1] / M);
    }
}

/* dweight, dbias, dx of channels c0 .. c1; see batchnorm_backward */
static void SFX(backward_range)(idx_t c0, idx_t c1, idx_t N, idx_t C, idx_t HW, const REAL *x, const REAL *dy,
                                const REAL *mu, const REAL *rstd, const REAL *weight, int training,
                                REAL *dx, REAL *dweight, REAL *dbias, double *acc)
{
    double M = (double)N * (double)HW;
    for (idx_t c = c0; c < c1; c++) acc[2 * c] = acc[2 * c + 1] = 0;
    for (idx_t n = 0; n < N; n++)                 /* acc = sum dy, sum dy (x - mu) */
        for (idx_t c = c0; c < c1; c++)
            SFX(row_sum_dy_dev)(x + (n * C + c) * HW, dy + (n * C + c) * HW, HW, mu[c], &acc[2 * c], &acc[2 * c + 1]);
    for (idx_t c = c0; c < c1; c++) {
        dbias[c] = (REAL)acc[2 * c];
        dweight[c] = (REAL)(acc[2 * c + 1] * rstd[c]);
    }
    for (idx_t n = 0; n < N; n++)
        for (idx_t c = c0; c < c1; c++) {
            const REAL *xr = x + (n * C + c) * HW, *dyr = dy + (n * C + c) * HW;
            REAL *dxr = dx + (n * C + c) * HW;
            double r = rstd[c], scale = (double)weight[c] * r;
            /* dx = k_dy dy + k_x (x - mu) + k_0 */
            REAL k_dy = (REAL)scale, mr = mu[c];
            REAL k_x = (REAL)(-scale * r * r * acc[2 * c + 1] / M), k_0 = (REAL)(-scale * acc[2 * c] / M);
            if (training)
                for (idx_t i = 0; i < HW; i++) dxr[i] = k_dy * dyr[i] + k_x * (xr[i] - mr) + k_0;
            else
                for (idx_t i = 0; i < HW; i++) dxr[i] = k_dy * dyr[i];
        }
}

/* the channels split evenly between the threads, each calling body(c0, c1) */
#ifdef _OPENMP
#define BN_SPLIT(N, C, HW, body)                                                         \
    _Pragma("omp parallel num_threads(BN_THREADS(N, C, HW))")                             \
    {                                                                                     \
        idx_t nt_ = omp_get_num_threads(), t_ = omp_get_thread_num();                     \
        idx_t c0 = (C) * t_ / nt_, c1 = (C) * (t_ + 1) / nt_;                             \
        body;                                                                             \
    }
#else
#define BN_SPLIT(N, C, HW, body) { idx_t c0 = 0, c1 = (C); body; }
#endif

/* mean[c], var[c] (biased) over the M = N*HW values of channel c; returns 0 when out of memory */
int SFX(batchnorm_stats)(idx_t N, idx_t C, idx_t HW, const REAL *x, REAL *mean, REAL *var)
{
    double *acc = (double *)malloc((size_t)(2 * C) * sizeof(double));
    if (!acc) return 0;
    BN_SPLIT(N, C, HW, SFX(stats_range)(c0, c1, N, C, HW, x, mean, var, acc))
    free(acc);
    return 1;
}

/* y = x * scale[c] + shift[c]; y may be x (in place) */
void SFX(batchnorm_apply)(idx_t N, idx_t C, idx_t HW, const REAL *x, const REAL *scale, const REAL *shift,
                          REAL *y)
{
    #pragma omp parallel for schedule(static) num_threads(BN_THREADS(N, C, HW))
    for (idx_t nc = 0; nc < N * C; nc++) {           /* row (n, c), nc = n*C + c */
        REAL a = scale[nc % C], b = shift[nc % C];
        const REAL *src = x + nc * HW;
        REAL *dst = y + nc * HW;
        for (idx_t i = 0; i < HW; i++) dst[i] = src[i] * a + b;
    }
}

/* dx, dweight, dbias from dy; training: mu, rstd are the batch's (so dx has the paths through
 * them), else constants. With sdy = sum dy and sdd = sum dy (x - mu), dweight = rstd sdd, and
 * the training dx = scale (dy - sdy / M - (x - mu) rstd^2 sdd / M), scale = weight rstd.
 * Returns 0 when out of memory. */
int SFX(batchnorm_backward)(idx_t N, idx_t C, idx_t HW, const REAL *x, const REAL *dy, const REAL *mu,
                            const REAL *rstd, const REAL *weight, int training,
                            REAL *dx, REAL *dweight, REAL *dbias)
{
    double *acc = (double *)malloc((size_t)(2 * C) * sizeof(double));
    if (!acc) return 0;
    BN_SPLIT(N, C, HW, SFX(backward_range)(c0, c1, N, C, HW, x, dy, mu, rstd, weight, training, dx, dweight,
                                           dbias, acc))
    free(acc);
    return 1;
}

#undef BN_SPLIT
#undef BN_LANES
#undef BN_THREADS
#include "real_end.h"
