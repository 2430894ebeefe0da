/* winograd_impl.h: F(2x2, 3x3) of winograd.c for one element type (REAL, SFX: real.h).
 * Read winograd.c first: it states the transforms and the shape legend. Top-down:
 *   winograd3x3_forward   the driver: the filter transform, blocks of tiles, threads
 *   wino_unit             one block: input transform, 16 GEMMs, output transform
 *   wino_input            V = B^T d B for each tile and channel of a block
 *   wino_output           y = A^T M A, then the epilogue, for each tile and output channel
 *   wino_filter           U = G g G^T
 */
#include "real.h"

static void SFX(wino_unit)(idx_t t0, idx_t m, idx_t C, idx_t H, idx_t W, idx_t O, idx_t th, idx_t tw,
                           const REAL *x, const REAL *U, const REAL *scale, const REAL *shift,
                           const REAL *res, int relu, REAL *y, REAL *V, REAL *M, int nthreads);
static void SFX(wino_input)(idx_t t0, idx_t m, idx_t C, idx_t H, idx_t W, idx_t th, idx_t tw,
                            const REAL *x, REAL *V);
static void SFX(wino_output)(idx_t t0, idx_t m, idx_t O, idx_t H, idx_t W, idx_t th, idx_t tw,
                             const REAL *M, const REAL *scale, const REAL *shift, const REAL *res,
                             int relu, REAL *y);
static void SFX(wino_filter)(idx_t O, idx_t C, const REAL *w, REAL *U);

/* Tiles per block: as for conv.c's conv_block, with 16 (C + O) values per tile. */
static idx_t SFX(wino_block)(idx_t C, idx_t O, idx_t T, int nt)
{
    idx_t fit = WINO_BLOCK_BYTES / ((idx_t)sizeof(REAL) * 16 * (C + O));
    if (fit < WINO_MIN_BLOCK) fit = WINO_MIN_BLOCK;
    idx_t nblk = (T + fit - 1) / fit;
    if (nt > 1 && T >= (idx_t)nt * WINO_MIN_BLOCK / 2) nblk = (nblk + nt - 1) / nt * nt;
    idx_t tb = (T + nblk - 1) / nblk;
    tb = (tb + NR - 1) / NR * NR;
    return tb < T ? tb : T;
}

/* y (N, O, H, W) = conv3x3(x, w) with stride 1 and padding 1, then the epilogue of conv.c
 * (y * scale[o] + shift[o] + res, then ReLU; each optional). Returns 0 when out of memory. */
int SFX(winograd3x3_forward)(idx_t N, idx_t C, idx_t H, idx_t W, idx_t O, const REAL *x, const REAL *w,
                             const REAL *scale, const REAL *shift, const REAL *res, int relu, REAL *y)
{
    idx_t th = (H + 1) / 2, tw = (W + 1) / 2, T = N * th * tw;
    if (T <= 0 || O <= 0) return 1;
    int nt = miniclip_max_threads();
    idx_t tb = SFX(wino_block)(C, O, T, nt);
    idx_t units = (T + tb - 1) / tb;
    int team = nt > 1 && units >= nt;
    size_t per_thread = (size_t)16 * (size_t)(C + O) * (size_t)tb;   /* V (C, 16, tb), then M (O, 16, tb) */
    REAL *U = (REAL *)malloc((size_t)16 * (size_t)O * (size_t)C * sizeof(REAL));
    REAL *buf = (REAL *)malloc(per_thread * (team ? (size_t)nt : 1) * sizeof(REAL));
    if (!U || !buf) {
        free(U); free(buf);
        return 0;
    }
    SFX(wino_filter)(O, C, w, U);                                     /* (O, 16, C) */
    if (team) {
        #pragma omp parallel for schedule(static) num_threads(nt)
        for (idx_t u = 0; u < units; u++) {
            REAL *V = buf + per_thread * (size_t)WINO_THREAD_ID();
            idx_t t0 = u * tb, m = T - t0 < tb ? T - t0 : tb;
            SFX(wino_unit)(t0, m, C, H, W, O, th, tw, x, U, scale, shift, res, relu, y,
                           V, V + (size_t)16 * C * m, 1);
        }
    } else {
        for (idx_t u = 0; u < units; u++) {
            idx_t t0 = u * tb, m = T - t0 < tb ? T - t0 : tb;
            SFX(wino_unit)(t0, m, C, H, W, O, th, tw, x, U, scale, shift, res, relu, y,
                           buf, buf + (size_t)16 * C * m, nt);
        }
    }
    free(U);
    free(buf);
    return 1;
}

/* One block: tiles t0 .. t0 + m (tile t = (n*th + ty)*tw + tx). V (C, 16, m), M (O, 16, m): the 16
 * values of one channel and tile lie close together (the transforms read and write them at once),
 * and the GEMMs take each xi's (C, m) or (O, m) matrix as a view with row stride 16 m. */
static void SFX(wino_unit)(idx_t t0, idx_t m, idx_t C, idx_t H, idx_t W, idx_t O, idx_t th, idx_t tw,
                           const REAL *x, const REAL *U, const REAL *scale, const REAL *shift,
                           const REAL *res, int relu, REAL *y, REAL *V, REAL *M, int nthreads)
{
    SFX(wino_input)(t0, m, C, H, W, th, tw, x, V);
    for (int xi = 0; xi < 16; xi++)                        /* M[:, xi] (O, m) = U[:, xi] (O, C) @ V[:, xi] (C, m) */
        SFX(gemm_packed)(O, m, C, (REAL)1, U + (size_t)xi * C, 16 * C, 1, V + (size_t)xi * m, 16 * m, 1,
                         (REAL)0, M + (size_t)xi * m, 16 * m, 1, nthreads);
    SFX(wino_output)(t0, m, O, H, W, th, tw, M, scale, shift, res, relu, y);
}

/* V[c, xi, t - t0] = (B^T d B)[xi] for the 4x4 patch d of channel c under tile t:
 * rows 2*ty - 1 .. 2*ty + 2, columns 2*tx - 1 .. 2*tx + 2 of x[n, c], zero outside. */
static void SFX(wino_input)(idx_t t0, idx_t m, idx_t C, idx_t H, idx_t W, idx_t th, idx_t tw,
                            const REAL *x, REAL *V)
{
    for (idx_t c = 0; c < C; c++)
        for (idx_t t = t0; t < t0 + m; t++) {
            idx_t n = t / (th * tw), ty = t / tw % th, tx = t % tw;
            const REAL *plane = x + (n * C + c) * H * W;
            REAL d[4][4], e[4][4];
            for (int a = 0; a < 4; a++) {
                idx_t h = 2 * ty - 1 + a;
                for (int b = 0; b < 4; b++) {
                    idx_t v = 2 * tx - 1 + b;
                    d[a][b] = (h >= 0 && h < H && v >= 0 && v < W) ? plane[h * W + v] : (REAL)0;
                }
            }
            for (int b = 0; b < 4; b++) {                  /* e = B^T d: combine rows */
                e[0][b] = d[0][b] - d[2][b];
                e[1][b] = d[1][b] + d[2][b];
                e[2][b] = d[2][b] - d[1][b];
                e[3][b] = d[1][b] - d[3][b];
            }
            REAL *out = V + c * 16 * m + (t - t0);         /* out[xi * m] = V[c, xi, t - t0] */
            for (int a = 0; a < 4; a++) {                  /* (B^T d) B: combine columns */
                out[(4 * a + 0) * m] = e[a][0] - e[a][2];
                out[(4 * a + 1) * m] = e[a][1] + e[a][2];
                out[(4 * a + 2) * m] = e[a][2] - e[a][1];
                out[(4 * a + 3) * m] = e[a][1] - e[a][3];
            }
        }
}

/* y[n, o, 2*ty + a, 2*tx + b] = (A^T M[o, t] A)[a, b], then * scale[o] + shift[o] + res, then ReLU
 * (the order of conv.c's epilogue); the parts of the tile past the image's edge are dropped. */
static void SFX(wino_output)(idx_t t0, idx_t m, idx_t O, idx_t H, idx_t W, idx_t th, idx_t tw,
                             const REAL *M, const REAL *scale, const REAL *shift, const REAL *res,
                             int relu, REAL *y)
{
    for (idx_t o = 0; o < O; o++) {
        REAL sc = scale ? scale[o] : (REAL)1, sh = shift ? shift[o] : (REAL)0;
        for (idx_t t = t0; t < t0 + m; t++) {
            idx_t n = t / (th * tw), ty = t / tw % th, tx = t % tw;
            const REAL *in = M + o * 16 * m + (t - t0);    /* in[xi * m] = M[o, xi, t - t0] */
            REAL q[4][4], e[2][4], out[2][2];
            for (int xi = 0; xi < 16; xi++) q[xi / 4][xi % 4] = in[(idx_t)xi * m];
            for (int b = 0; b < 4; b++) {                  /* e = A^T q: combine rows */
                e[0][b] = q[0][b] + q[1][b] + q[2][b];
                e[1][b] = q[1][b] - q[2][b] - q[3][b];
            }
            for (int a = 0; a < 2; a++) {                  /* (A^T q) A: combine columns */
                out[a][0] = e[a][0] + e[a][1] + e[a][2];
                out[a][1] = e[a][1] - e[a][2] - e[a][3];
            }
            for (int a = 0; a < 2; a++) {
                idx_t h = 2 * ty + a;
                if (h >= H) break;
                for (int b = 0; b < 2; b++) {
                    idx_t v = 2 * tx + b;
                    if (v >= W) break;
                    idx_t at = ((n * O + o) * H + h) * W + v;
                    REAL val = out[a][b];
                    if (scale || shift) val = val * sc + sh;
                    if (res) val += res[at];
                    if (relu) val = val < 0 ? (REAL)0 : val;    /* NaN stays NaN */
                    y[at] = val;
                }
            }
        }
    }
}

/* U[o, xi, c] = (G g G^T)[xi] for the 3x3 filter g = w[o, c]. */
static void SFX(wino_filter)(idx_t O, idx_t C, const REAL *w, REAL *U)
{
    const REAL half = (REAL)0.5;
    for (idx_t o = 0; o < O; o++)
        for (idx_t c = 0; c < C; c++) {
            const REAL *g = w + (o * C + c) * 9;           /* g[3 * i + j] */
            REAL e[4][3];
            for (int j = 0; j < 3; j++) {                  /* e = G g: combine rows */
                e[0][j] = g[j];
                e[1][j] = half * (g[j] + g[3 + j] + g[6 + j]);
                e[2][j] = half * (g[j] - g[3 + j] + g[6 + j]);
                e[3][j] = g[6 + j];
            }
            REAL *out = U + o * 16 * C + c;                /* out[xi * C] = U[o, xi, c] */
            for (int a = 0; a < 4; a++) {                  /* (G g) G^T: combine columns */
                out[(4 * a + 0) * C] = e[a][0];
                out[(4 * a + 1) * C] = half * (e[a][0] + e[a][1] + e[a][2]);
                out[(4 * a + 2) * C] = half * (e[a][0] - e[a][1] + e[a][2]);
                out[(4 * a + 3) * C] = e[a][2];
            }
        }
}

#include "real_end.h"
