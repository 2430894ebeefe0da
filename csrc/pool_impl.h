/* pool_impl.h: average pooling for one element type (REAL, SFX: real.h); see pool.c. */
#include "real.h"

void SFX(avg_pool2d)(idx_t P, idx_t H, idx_t W, idx_t k, const REAL *x, REAL *y)
{
    idx_t Ho = H / k, Wo = W / k;
    REAL inv = (REAL)1 / (REAL)(k * k);
    int nt = (double)P * H * W < 65536 ? 1 : miniclip_max_threads();
    #pragma omp parallel for schedule(static) num_threads(nt)
    for (idx_t q = 0; q < P; q++)
        for (idx_t i = 0; i < Ho; i++) {
            REAL *out = y + (q * Ho + i) * Wo;                    /* (Wo,) accumulators */
            for (idx_t j = 0; j < Wo; j++) out[j] = 0;
            for (idx_t a = 0; a < k; a++) {
                const REAL *row = x + (q * H + i * k + a) * W;    /* input row i*k + a */
                for (idx_t j = 0; j < Wo; j++)
                    for (idx_t b = 0; b < k; b++) out[j] += row[j * k + b];
            }
            for (idx_t j = 0; j < Wo; j++) out[j] *= inv;
        }
}

/* dx (P, H, W) = the backward of avg_pool2d: dy[q, i, j] / k^2 on each pixel of block (i, j),
 * 0 on the rows and columns past the last whole block (they were dropped) */
void SFX(avg_pool2d_backward)(idx_t P, idx_t H, idx_t W, idx_t k, const REAL *dy, REAL *dx)
{
    idx_t Ho = H / k, Wo = W / k;
    REAL kk = (REAL)(k * k);                /* divided by, as the reference does: the same values */
    int nt = (double)P * H * W < 65536 ? 1 : miniclip_max_threads();
    #pragma omp parallel for schedule(static) num_threads(nt)
    for (idx_t q = 0; q < P; q++)
        for (idx_t r = 0; r < H; r++) {
            REAL *row = dx + (q * H + r) * W;                     /* input row r, in block row r / k */
            const REAL *g = dy + (q * Ho + r / k) * Wo;
            idx_t j0 = 0;
            if (r < Ho * k)
                for (idx_t j = 0; j < Wo; j++, j0 += k) {
                    REAL share = g[j] / kk;
                    for (idx_t b = 0; b < k; b++) row[j0 + b] = share;
                }
            for (idx_t c = j0; c < W; c++) row[c] = 0;            /* past the last block */
        }
}

#include "real_end.h"
