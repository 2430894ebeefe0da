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
 * together, an ordering OpenMP allows without -ffast-math), so float32 keeps the accuracy
 * of NumPy's pairwise sums for any C and R.
 * float32 on CPUs with AVX2+FMA (chosen at run time, MINICLIP_FORCE_GENERIC=1 turns it off)
 * runs the same passes 8 columns at a time and several rows at once, and adds blocks of at
 * most 8 floats per lane in float before each goes into the double sum (64 columns of a
 * row, 8 per lane; 8 rows of a column for dweight/dbias): at most 7 float roundings per
 * block, as NumPy's float32 sum of 64 values has, and no growth with C or R beyond that.
 * dweight and dbias: each thread sums its rows into a private buffer, and the buffers
 * are added at the end (no atomics).
 *
 * The code: layernorm_impl.h, the rows and the entry points for float and double (real.h),
 * first; then, in this file, the float32 AVX2+FMA rows the entry points switch to.
 */
#include <stdint.h>
#include <stdlib.h>
#include <math.h>

#include "miniclip.h"
#include "vexp.h"                  /* miniclip_use_avx2, MINICLIP_HAVE_AVX2 */

#define PARALLEL_ELEMENTS 32768

#ifdef _OPENMP
#include <omp.h>
#define LN_THREAD_ID() omp_get_thread_num()
#define LN_NUM_THREADS() omp_get_num_threads()
#define LN_MAX_THREADS() omp_get_max_threads()
#else
#define LN_THREAD_ID() 0
#define LN_NUM_THREADS() 1
#define LN_MAX_THREADS() 1
#endif

#if MINICLIP_HAVE_AVX2
/* float32 on CPUs with AVX2+FMA: the same rows, 8 columns at a time (defined below) */
__attribute__((target("avx2,fma")))
static void ln_forward_rows_avx2_f32(idx_t r0, idx_t r1, idx_t C, const float *x, const float *weight,
                                     const float *bias, float eps, float *y, float *mean, float *rstd);
__attribute__((target("avx2,fma")))
static void ln_backward_rows_avx2_f32(idx_t r0, idx_t r1, idx_t C, const float *dy, const float *x,
                                      const float *weight, const float *mean, const float *rstd,
                                      float *dx, double *dw, double *db, float *scratch);
#endif

/* the rows in C and the entry points, for both types (real.h) */
#define REAL_BITS 32
#include "layernorm_impl.h"
#define REAL_BITS 64
#include "layernorm_impl.h"

#if MINICLIP_HAVE_AVX2
/* ---- float32 with AVX2+FMA: the same passes, 8 floats per step ----
 * Row sums: each 8 floats are widened to two vectors of 4 doubles (_mm256_cvtps_pd,
 * exact) and added into double accumulators, so the sums stay in double as above.
 * The squares (x - mu)^2 are float products widened afterwards, as in the generic code.
 * dweight/dbias: dy xhat is formed in double; the product of two floats is exact in
 * double (48 significant bits), so the FMA into dw rounds exactly like mul + add.
 * The last C % 8 values of a row use masked loads/stores; masked-off lanes load 0 and
 * are masked again wherever a 0 would not drop out of a sum. */
static const int32_t ln_mask_table[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

/* lanes j < rem set (1 <= rem <= 8) */
__attribute__((target("avx2,fma")))
static inline __m256i ln_mask(idx_t rem)
{
    return _mm256_loadu_si256((const __m256i *)(ln_mask_table + 8 - rem));
}

/* sum of the 4 + 4 doubles of a and b */
__attribute__((target("avx2,fma")))
static inline double ln_hsum_pd(__m256d a, __m256d b)
{
    __m256d s = _mm256_add_pd(a, b);
    __m128d h = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
    return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
}

/* 8 floats at p: a plain load for a full vector, a masked one (lanes past C read as 0) for
 * the tail. `full` is a constant at every call, so each loop gets one kind of load
 * (masked loads and especially masked stores are slow on some CPUs: keep them off the
 * main loop). */
__attribute__((target("avx2,fma"), always_inline))
static inline __m256 ln_load(const float *p, __m256i m, int full)
{
    return full ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m);
}

__attribute__((target("avx2,fma"), always_inline))
static inline void ln_store(float *p, __m256i m, int full, __m256 v)
{
    if (full) _mm256_storeu_ps(p, v);
    else _mm256_maskstore_ps(p, m, v);
}

/* acc_lo += x[0:4], acc_hi += x[4:8] in double */
#define LN_ADD_PD(acc_lo, acc_hi, v) do {                                                \
    acc_lo = _mm256_add_pd(acc_lo, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));          \
    acc_hi = _mm256_add_pd(acc_hi, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));        \
} while (0)

/* y = (x - mu) rs weight + bias for the 8 columns at j (weight, bias may be NULL) */
__attribute__((target("avx2,fma"), always_inline))
static inline void ln_forward_out8(const float *xj, const float *weight, const float *bias, idx_t j,
                                   __m256 vmu, __m256 vrs, float *yj, __m256i m, int full)
{
    __m256 h = _mm256_mul_ps(_mm256_sub_ps(ln_load(xj, m, full), vmu), vrs);
    if (weight && bias)
        h = _mm256_fmadd_ps(h, ln_load(weight + j, m, full), ln_load(bias + j, m, full));
    else if (weight)
        h = _mm256_mul_ps(h, ln_load(weight + j, m, full));
    else if (bias)
        h = _mm256_add_ps(h, ln_load(bias + j, m, full));
    ln_store(yj, m, full, h);
}

/* Row sums in blocks: up to LN_BLOCK vectors of a row (8 lanes each) are added in float,
 * then the block is widened to double and added to the row's double accumulators (a[k]),
 * and the float accumulator restarts at 0. Each lane of a block sums at most LN_BLOCK = 8
 * floats (error <= 7 ulps of that partial sum, what NumPy's 8-accumulator float32 sum has
 * for C = 64, and no growth with C beyond it); widening every value instead costs more
 * than the sum itself. */
#define LN_BLOCK 8
#define LN_BLOCK_END(j) ((((j) / 8) % LN_BLOCK) == LN_BLOCK - 1)
#define LN_FLUSH(nrows, a, f) do {                                                       \
    for (int k_ = 0; k_ < (nrows); k_++) {                                               \
        LN_ADD_PD(a[k_][0], a[k_][1], f[k_]);                                            \
        f[k_] = _mm256_setzero_ps();                                                     \
    }                                                                                    \
} while (0)

/* A group of nrows rows starting at row r, their passes interleaved: each row's sums are a
 * chain of dependent adds (and a division, a square root), so a single short row (C = 64)
 * waits on latency; nrows independent chains keep the FP units busy. nrows (4, or 1) is a
 * constant at each call. */
__attribute__((target("avx2,fma"), always_inline))
static inline void ln_forward_group(int nrows, idx_t r, idx_t C, const float *x, const float *weight,
                                    const float *bias, float eps, float *y, float *mean, float *rstd)
{
    idx_t C8 = C / 8 * 8, j;
    __m256i tail = ln_mask(C - C8 > 0 ? C - C8 : 8);
    const float *xr = x + r * C;
    __m256d a[4][2];
    __m256 vmu[4], vrs[4];
    for (int k = 0; k < nrows; k++) a[k][0] = a[k][1] = _mm256_setzero_pd();
    __m256 f[4];
    for (int k = 0; k < nrows; k++) f[k] = _mm256_setzero_ps();
    for (j = 0; j < C8; j += 8) {
        for (int k = 0; k < nrows; k++) f[k] = _mm256_add_ps(f[k], _mm256_loadu_ps(xr + k * C + j));
        if (LN_BLOCK_END(j)) LN_FLUSH(nrows, a, f);
    }
    if (j < C)                                                        /* lanes past C: 0 */
        for (int k = 0; k < nrows; k++) f[k] = _mm256_add_ps(f[k], _mm256_maskload_ps(xr + k * C + j, tail));
    LN_FLUSH(nrows, a, f);
    for (int k = 0; k < nrows; k++) {
        float mu = (float)(ln_hsum_pd(a[k][0], a[k][1]) / (double)C);
        mean[r + k] = mu;
        vmu[k] = _mm256_set1_ps(mu);
        a[k][0] = a[k][1] = _mm256_setzero_pd();
    }
    for (j = 0; j < C8; j += 8) {
        for (int k = 0; k < nrows; k++) {
            __m256 d = _mm256_sub_ps(_mm256_loadu_ps(xr + k * C + j), vmu[k]);
            f[k] = _mm256_add_ps(f[k], _mm256_mul_ps(d, d));
        }
        if (LN_BLOCK_END(j)) LN_FLUSH(nrows, a, f);
    }
    if (j < C)
        for (int k = 0; k < nrows; k++) {                                /* (0 - mu)^2 masked off */
            __m256 d = _mm256_sub_ps(_mm256_maskload_ps(xr + k * C + j, tail), vmu[k]);
            f[k] = _mm256_add_ps(f[k], _mm256_and_ps(_mm256_mul_ps(d, d), _mm256_castsi256_ps(tail)));
        }
    LN_FLUSH(nrows, a, f);
    for (int k = 0; k < nrows; k++) {
        float rs = 1.0f / sqrtf((float)(ln_hsum_pd(a[k][0], a[k][1]) / (double)C) + eps);
        rstd[r + k] = rs;
        vrs[k] = _mm256_set1_ps(rs);
    }
    for (int k = 0; k < nrows; k++) {
        const float *xk = xr + k * C;
        float *yk = y + (r + k) * C;
        for (j = 0; j < C8; j += 8) ln_forward_out8(xk + j, weight, bias, j, vmu[k], vrs[k], yk + j, tail, 1);
        if (j < C) ln_forward_out8(xk + j, weight, bias, j, vmu[k], vrs[k], yk + j, tail, 0);
    }
}

__attribute__((target("avx2,fma")))
static void ln_forward_rows_avx2_f32(idx_t r0, idx_t r1, idx_t C, const float *x, const float *weight,
                                     const float *bias, float eps, float *y, float *mean, float *rstd)
{
    idx_t r = r0;
    for (; r + 4 <= r1; r += 4) ln_forward_group(4, r, C, x, weight, bias, eps, y, mean, rstd);
    for (; r < r1; r++) ln_forward_group(1, r, C, x, weight, bias, eps, y, mean, rstd);
}

/* backward, second pass: dx = rs (g - mg - xhat mgx) for the 8 columns at j */
__attribute__((target("avx2,fma"), always_inline))
static inline void ln_backward_dx8(const float *dyj, const float *xj, const float *weight, idx_t j,
                                   __m256 vmu, __m256 vrs, __m256 vmg, __m256 vmgx, float *dxj,
                                   __m256i m, int full)
{
    __m256 d = ln_load(dyj, m, full);
    __m256 xhat = _mm256_mul_ps(_mm256_sub_ps(ln_load(xj, m, full), vmu), vrs);
    __m256 g = weight ? _mm256_mul_ps(d, ln_load(weight + j, m, full)) : d;
    __m256 t = _mm256_fnmadd_ps(xhat, vmgx, _mm256_sub_ps(g, vmg));        /* g - mg - xhat mgx */
    ln_store(dxj, m, full, _mm256_mul_ps(vrs, t));
}

/* Backward: nrows rows at r (2, or 1 for the last odd row), their passes interleaved as
 * in the forward. The row sums of g and g xhat use the same float blocks (LN_FLUSH).
 * dweight/dbias: the rows' dy xhat and dy are added in float into fw, fb (C floats each,
 * this thread's), and every LN_ROW_BLOCK rows fw, fb are added into the double dw, db and
 * restarted at 0 (ln_flush_columns): each float partial sums at most 8 rows (error <= 7
 * ulps of it), and the double sum over the blocks does not grow with R. (NumPy's own sum
 * over the rows of a float32 array adds them one by one in float32.) */
#define LN_ROW_BLOCK 8

__attribute__((target("avx2,fma"), always_inline))
static inline void ln_backward_group(int nrows, idx_t r, idx_t C, const float *dy, const float *x,
                                     const float *weight, const float *mean, const float *rstd,
                                     float *dx, float *fw, float *fb)
{
    idx_t C8 = C / 8 * 8, j;
    __m256i tail = ln_mask(C - C8 > 0 ? C - C8 : 8);
    const float *xr = x + r * C, *dyr = dy + r * C;
    __m256 vmu[2], vrs[2], fg[2], fgx[2];
    __m256d a[2][2], b[2][2];                          /* double sums of g and of g xhat */
    for (int k = 0; k < nrows; k++) {
        vmu[k] = _mm256_set1_ps(mean[r + k]);
        vrs[k] = _mm256_set1_ps(rstd[r + k]);
        fg[k] = fgx[k] = _mm256_setzero_ps();
        a[k][0] = a[k][1] = b[k][0] = b[k][1] = _mm256_setzero_pd();
    }
    for (j = 0; j <= C8; j += 8) {
        int full = j < C8;
        if (!full && j == C) break;
        __m256i m = full ? _mm256_set1_epi32(-1) : tail;
        __m256 vw = ln_load(fw + j, m, full), vb = ln_load(fb + j, m, full);
        for (int k = 0; k < nrows; k++) {
            __m256 d = ln_load(dyr + k * C + j, m, full);          /* lanes past C: 0, add 0 */
            __m256 xhat = _mm256_mul_ps(_mm256_sub_ps(ln_load(xr + k * C + j, m, full), vmu[k]), vrs[k]);
            if (!full) xhat = _mm256_and_ps(xhat, _mm256_castsi256_ps(m));    /* not (0 - mu) rs */
            __m256 g = weight ? _mm256_mul_ps(d, ln_load(weight + j, m, full)) : d;
            fg[k] = _mm256_add_ps(fg[k], g);
            fgx[k] = _mm256_add_ps(fgx[k], _mm256_mul_ps(g, xhat));
            vw = _mm256_fmadd_ps(d, xhat, vw);
            vb = _mm256_add_ps(vb, d);
        }
        ln_store(fw + j, m, full, vw);
        ln_store(fb + j, m, full, vb);
        if (!full || LN_BLOCK_END(j)) {
            LN_FLUSH(nrows, a, fg);
            LN_FLUSH(nrows, b, fgx);
        }
    }
    LN_FLUSH(nrows, a, fg);
    LN_FLUSH(nrows, b, fgx);
    for (int k = 0; k < nrows; k++) {
        __m256 vmg = _mm256_set1_ps((float)(ln_hsum_pd(a[k][0], a[k][1]) / (double)C));
        __m256 vmgx = _mm256_set1_ps((float)(ln_hsum_pd(b[k][0], b[k][1]) / (double)C));
        const float *dyk = dyr + k * C, *xk = xr + k * C;
        float *dxk = dx + (r + k) * C;
        for (j = 0; j < C8; j += 8) ln_backward_dx8(dyk + j, xk + j, weight, j, vmu[k], vrs[k], vmg, vmgx, dxk + j, tail, 1);
        if (j < C) ln_backward_dx8(dyk + j, xk + j, weight, j, vmu[k], vrs[k], vmg, vmgx, dxk + j, tail, 0);
    }
}

/* dw += fw, db += fb (widened to double), then fw = fb = 0 */
__attribute__((target("avx2,fma")))
static void ln_flush_columns(idx_t C, float *fw, float *fb, double *dw, double *db)
{
    idx_t j = 0;
    for (; j + 4 <= C; j += 4) {
        _mm256_storeu_pd(dw + j, _mm256_add_pd(_mm256_loadu_pd(dw + j), _mm256_cvtps_pd(_mm_loadu_ps(fw + j))));
        _mm256_storeu_pd(db + j, _mm256_add_pd(_mm256_loadu_pd(db + j), _mm256_cvtps_pd(_mm_loadu_ps(fb + j))));
    }
    for (; j < C; j++) {
        dw[j] += (double)fw[j];
        db[j] += (double)fb[j];
    }
    for (j = 0; j < C; j++) fw[j] = fb[j] = 0.0f;
}

/* scratch: 2 C floats, zero on entry (calloc) */
__attribute__((target("avx2,fma")))
static void ln_backward_rows_avx2_f32(idx_t r0, idx_t r1, idx_t C, const float *dy, const float *x,
                                      const float *weight, const float *mean, const float *rstd,
                                      float *dx, double *dw, double *db, float *scratch)
{
    float *fw = scratch, *fb = scratch + C;
    idx_t r = r0, rows_in_block = 0;
    for (; r + 2 <= r1; r += 2) {
        ln_backward_group(2, r, C, dy, x, weight, mean, rstd, dx, fw, fb);
        if ((rows_in_block += 2) >= LN_ROW_BLOCK) {
            ln_flush_columns(C, fw, fb, dw, db);
            rows_in_block = 0;
        }
    }
    if (r < r1) ln_backward_group(1, r, C, dy, x, weight, mean, rstd, dx, fw, fb);
    ln_flush_columns(C, fw, fb, dw, db);
}
#endif /* MINICLIP_HAVE_AVX2 */
