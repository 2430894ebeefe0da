/* layernorm_impl.h: LayerNorm for one element type (REAL, SFX, SQRT: real.h); layernorm.c
 * states the math. First the rows (one thread's share, [r0, r1)), then the entry points that
 * split the rows over the threads (as schedule(static)) and, for float32 on AVX2+FMA, hand
 * them to the vector rows of layernorm.c. */
#include "real.h"

/* ---- the rows [r0, r1), one thread's share ---- */
static void SFX(ln_forward_rows)(idx_t r0, idx_t r1, idx_t C, const REAL *x, const REAL *weight,
                                 const REAL *bias, REAL eps, REAL *y, REAL *mean, REAL *rstd)
{
    for (idx_t r = r0; r < r1; r++) {
        const REAL *xr = x + r * C;
        REAL *yr = y + r * C;
        double s = 0, v = 0;                       /* row sums in double (layernorm.c) */
        #pragma omp simd reduction(+:s)
        for (idx_t j = 0; j < C; j++) s += xr[j];
        REAL mu = (REAL)(s / (double)C);
        #pragma omp simd reduction(+:v)
        for (idx_t j = 0; j < C; j++) v += (double)((xr[j] - mu) * (xr[j] - mu));
        REAL rs = (REAL)1 / SQRT((REAL)(v / (double)C) + eps);
        mean[r] = mu;
        rstd[r] = rs;
        for (idx_t j = 0; j < C; j++) {
            REAL h = (xr[j] - mu) * rs;
            if (weight) h *= weight[j];
            if (bias) h += bias[j];
            yr[j] = h;
        }
    }
}

/* dx for rows [r0, r1); dw[j] += sum of dy xhat, db[j] += sum of dy (double, per thread) */
static void SFX(ln_backward_rows)(idx_t r0, idx_t r1, idx_t C, const REAL *dy, const REAL *x,
                                  const REAL *weight, const REAL *mean, const REAL *rstd, REAL *dx,
                                  double *dw, double *db, float *scratch)
{
    (void)scratch;
    for (idx_t r = r0; r < r1; r++) {
        const REAL *xr = x + r * C, *dyr = dy + r * C;
        REAL *dxr = dx + r * C;
        REAL mu = mean[r], rs = rstd[r];
        double sg = 0, sgx = 0;
        #pragma omp simd reduction(+:sg, sgx)
        for (idx_t j = 0; j < C; j++) {
            REAL xhat = (xr[j] - mu) * rs;
            REAL g = weight ? dyr[j] * weight[j] : dyr[j];
            sg += g;
            sgx += g * xhat;
            dw[j] += (double)dyr[j] * (double)xhat;
            db[j] += (double)dyr[j];
        }
        REAL mg = (REAL)(sg / (double)C), mgx = (REAL)(sgx / (double)C);
        for (idx_t j = 0; j < C; j++) {
            REAL xhat = (xr[j] - mu) * rs;
            REAL g = weight ? dyr[j] * weight[j] : dyr[j];
            dxr[j] = rs * (g - mg - xhat * mgx);
        }
    }
}

/* ---- the entry points: rows split evenly over the threads (as schedule(static)) ---- */
void SFX(layer_norm_forward)(idx_t R, idx_t C, const REAL *x, const REAL *weight, const REAL *bias,
                             REAL eps, REAL *y, REAL *mean, REAL *rstd)
{
    void (*rows)(idx_t, idx_t, idx_t, const REAL *, const REAL *, const REAL *, REAL, REAL *, REAL *, REAL *)
        = SFX(ln_forward_rows);
#if REAL_BITS == 32 && MINICLIP_HAVE_AVX2
    if (miniclip_use_avx2()) rows = ln_forward_rows_avx2_f32;   /* float32 on AVX2+FMA */
#endif
    #pragma omp parallel if(R * C > PARALLEL_ELEMENTS)
    {
        idx_t t = LN_THREAD_ID(), nt = LN_NUM_THREADS();
        rows(R * t / nt, R * (t + 1) / nt, C, x, weight, bias, eps, y, mean, rstd);
    }
}

int SFX(layer_norm_backward)(idx_t R, idx_t C, const REAL *dy, const REAL *x, const REAL *weight,
                             const REAL *mean, const REAL *rstd, REAL *dx, REAL *dweight, REAL *dbias)
{
    void (*rows)(idx_t, idx_t, idx_t, const REAL *, const REAL *, const REAL *, const REAL *,
                 const REAL *, REAL *, double *, double *, float *) = SFX(ln_backward_rows);
#if REAL_BITS == 32 && MINICLIP_HAVE_AVX2
    if (miniclip_use_avx2()) rows = ln_backward_rows_avx2_f32;   /* float32 on AVX2+FMA */
#endif
    int nt = 1;
    if (R * C > PARALLEL_ELEMENTS) nt = LN_MAX_THREADS();
    /* per thread: dw, db (C doubles each), then 2 C floats of scratch for the AVX2 rows */
    size_t per_thread = 2 * (size_t)C * (sizeof(double) + sizeof(float));
    char *partial = (char *)calloc((size_t)nt, per_thread);
    if (!partial) return 0;
    #pragma omp parallel num_threads(nt) if(nt > 1)
    {
        idx_t t = LN_THREAD_ID(), team = LN_NUM_THREADS();
        double *dw = (double *)(partial + (size_t)t * per_thread), *db = dw + C;
        rows(R * t / team, R * (t + 1) / team, C, dy, x, weight, mean, rstd, dx, dw, db,
             (float *)(db + C));
    }
    for (idx_t j = 0; j < C; j++) {
        double sw = 0, sb = 0;
        for (int t = 0; t < nt; t++) {
            const double *dw = (const double *)(partial + (size_t)t * per_thread);
            sw += dw[j];
            sb += dw[C + j];
        }
        if (dweight) dweight[j] = (REAL)sw;
        dbias[j] = (REAL)sb;
    }
    free(partial);
    return 1;
}

#include "real_end.h"
