/* conv_impl.h: the convolution of conv.c for one element type (REAL, SFX: real.h).
 * Read conv.c first: it states the algorithm and the shape legend. Top-down:
 *   conv2d_forward   the driver: blocks of output positions, threads
 *   conv_unit        one block: columns, GEMM, epilogue
 *   im2col_rows      the columns of a block (the central copy); im2col_same, its whole-image case
 *   conv_epilogue    y = max(y * scale + shift + res, 0), each part optional
 *   conv2d_backward  the backward's driver: blocks of whole images, threads, dW summed
 *   conv_backward_unit   one block: columns, dy gathered, dW += dy cols^T, dcols = W^T dy, col2im
 *   conv_backward_dense  the backward when every window covers the whole image (2x2 maps)
 *   side_by_side     images (m, R, L) -> the merged rows (R, m*L), and back
 *   im2col_small, col2im_small   a block's columns and dx on small maps: one table of offsets
 *   im2col, col2im   whole images (the reference's layouts), for tests and the reference path
 *   col2im_plane     the adjoint copy of one channel (the central add of col2im); col2im_same,
 *                    its case of a whole image whose output has the input's size
 */
#include "real.h"

static void SFX(conv_unit)(idx_t j0, idx_t m, idx_t C, idx_t H, idx_t W, idx_t O,
                           idx_t kh, idx_t kw, idx_t s, idx_t p, idx_t Wo, idx_t L,
                           const REAL *x, const REAL *w, const REAL *scale, const REAL *shift,
                           const REAL *res, int relu, REAL *y, REAL *cols, REAL *out, int nthreads);
static void SFX(im2col_rows)(idx_t C, idx_t H, idx_t W, idx_t kh, idx_t kw, idx_t s, idx_t p, idx_t Wo,
                             const REAL *x, idx_t l0, idx_t m, REAL *cols, idx_t ld);
static void SFX(conv_epilogue)(idx_t O, idx_t m, const REAL *out, idx_t ld_out, REAL *y, idx_t ld_y,
                               const REAL *scale, const REAL *shift, const REAL *res, int relu);
static void SFX(im2col_same)(idx_t H, idx_t W, idx_t di, idx_t dj, const REAL *xc, REAL *dst);
static void SFX(col2im_same)(idx_t H, idx_t W, idx_t kh, idx_t kw, idx_t p, REAL *rows, idx_t ld, REAL *plane);
static void SFX(conv_backward_unit)(idx_t n0, idx_t m, idx_t C, idx_t H, idx_t W, idx_t O,
                                    idx_t kh, idx_t kw, idx_t s, idx_t p, idx_t Wo, idx_t L,
                                    const REAL *x, const REAL *w, const REAL *dy, REAL *dx, REAL *dw_acc,
                                    REAL *cols, REAL *dyb, int nthreads);
static int SFX(conv_backward_dense)(idx_t N, idx_t C, idx_t H, idx_t W, idx_t O, idx_t kh, idx_t kw, idx_t s,
                                   idx_t p, idx_t Ho, idx_t Wo, const REAL *x, const REAL *w, const REAL *dy,
                                   REAL *dx, REAL *dw);
static void SFX(side_by_side)(idx_t m, idx_t R, idx_t L, const REAL *src, REAL *dst, int merge);
static void SFX(im2col_small)(idx_t m, idx_t C, idx_t H, idx_t W, idx_t p, idx_t KK, idx_t L, const idx_t *tab,
                              const REAL *x, REAL *pad, REAL *cols, idx_t ld);
static void SFX(col2im_small)(idx_t m, idx_t C, idx_t H, idx_t W, idx_t p, idx_t KK, idx_t L, const idx_t *tab,
                              const REAL *cols, idx_t ld, REAL *pad, REAL *dx);
static void SFX(col2im_plane)(idx_t H, idx_t W, idx_t kh, idx_t kw, idx_t s, idx_t p, idx_t Ho, idx_t Wo,
                              const REAL *rows, idx_t ld, REAL *plane);

/* Columns per block. The positions of all images are one sequence of N*L columns (image by
 * image), cut into nblk even blocks: as few as keep a block's columns and output, (CK + O) x lb,
 * within CONV_BLOCK_BYTES, a multiple of the thread count (every thread gets as many), each a
 * multiple of NR wide (the GEMM's tile) and at least CONV_MIN_BLOCK. Small maps (7x7 = 49
 * positions) thus share a block with the next image instead of leaving most of a GEMM's tiles
 * empty. */
static idx_t SFX(conv_block)(idx_t CK, idx_t O, idx_t NL, int nt)
{
    idx_t fit = CONV_BLOCK_BYTES / ((idx_t)sizeof(REAL) * (CK + O));
    if (fit < CONV_MIN_BLOCK) fit = CONV_MIN_BLOCK;
    idx_t nblk = (NL + fit - 1) / fit;
    if (nt > 1 && NL >= (idx_t)nt * CONV_MIN_BLOCK) nblk = (nblk + nt - 1) / nt * nt;
    idx_t lb = (NL + nblk - 1) / nblk;
    lb = (lb + NR - 1) / NR * NR;
    return lb < NL ? lb : NL;
}

/* y (N, O, L) = conv(x, w), then the epilogue; returns 0 when out of memory (y unwritten). */
int SFX(conv2d_forward)(idx_t N, idx_t C, idx_t H, idx_t W, idx_t O, idx_t kh, idx_t kw, idx_t s, idx_t p,
                        const REAL *x, const REAL *w, const REAL *scale, const REAL *shift,
                        const REAL *res, int relu, REAL *y)
{
    idx_t Ho = (H + 2 * p - kh) / s + 1, Wo = (W + 2 * p - kw) / s + 1, L = Ho * Wo, CK = C * kh * kw;
    if (N <= 0 || O <= 0 || L <= 0) return 1;
    int nt = miniclip_max_threads();
    idx_t lb = SFX(conv_block)(CK, O, N * L, nt);
    idx_t units = (N * L + lb - 1) / lb;
    int team = nt > 1 && units >= nt;                     /* whole blocks per thread */
    size_t per_thread = (size_t)(CK + O) * (size_t)lb;     /* the columns, then the output */
    REAL *buf = (REAL *)malloc(per_thread * (team ? (size_t)nt : 1) * sizeof(REAL));
    if (!buf) return 0;
    if (team) {
        #pragma omp parallel for schedule(static) num_threads(nt)
        for (idx_t u = 0; u < units; u++) {
            REAL *mine = buf + per_thread * (size_t)CONV_THREAD_ID();
            idx_t j0 = u * lb;
            SFX(conv_unit)(j0, N * L - j0 < lb ? N * L - j0 : lb, C, H, W, O, kh, kw, s, p, Wo, L,
                           x, w, scale, shift, res, relu, y, mine, mine + (size_t)CK * lb, 1);
        }
    } else {                                               /* few blocks: the GEMM's own threads */
        for (idx_t u = 0; u < units; u++) {
            idx_t j0 = u * lb;
            SFX(conv_unit)(j0, N * L - j0 < lb ? N * L - j0 : lb, C, H, W, O, kh, kw, s, p, Wo, L,
                           x, w, scale, shift, res, relu, y, buf, buf + (size_t)CK * lb, nt);
        }
    }
    free(buf);
    return 1;
}

/* One block: columns j0 .. j0 + m of the N*L (image n, position l) sequence, j = n*L + l. */
static void SFX(conv_unit)(idx_t j0, idx_t m, idx_t C, idx_t H, idx_t W, idx_t O,
                           idx_t kh, idx_t kw, idx_t s, idx_t p, idx_t Wo, idx_t L,
                           const REAL *x, const REAL *w, const REAL *scale, const REAL *shift,
                           const REAL *res, int relu, REAL *y, REAL *cols, REAL *out, int nthreads)
{
    idx_t CK = C * kh * kw;
    const REAL *B = cols;                                 /* (CK, m) */
    idx_t rs_b = m;
    if (kh == 1 && kw == 1 && s == 1 && p == 0 && j0 % L + m <= L) {
        B = x + (j0 / L) * C * L + j0 % L;                /* 1x1 in one image: x[n]'s rows, in place */
        rs_b = L;
    } else {
        for (idx_t j = j0; j < j0 + m; ) {                /* each image's part of the block */
            idx_t n = j / L, l = j % L, cnt = L - l < j0 + m - j ? L - l : j0 + m - j;
            SFX(im2col_rows)(C, H, W, kh, kw, s, p, Wo, x + n * C * H * W, l, cnt, cols + (j - j0), m);
            j += cnt;
        }
    }
    if (j0 % L + m <= L) {                                /* in one image: straight into y[n] */
        REAL *yb = y + (j0 / L) * O * L + j0 % L;         /* (O, m), row stride L */
        SFX(gemm_packed)(O, m, CK, (REAL)1, w, CK, 1, B, rs_b, 1, (REAL)0, yb, L, 1, nthreads);
        SFX(conv_epilogue)(O, m, yb, L, yb, L, scale, shift, res ? res + (yb - y) : NULL, relu);
        return;
    }
    SFX(gemm_packed)(O, m, CK, (REAL)1, w, CK, 1, B, rs_b, 1, (REAL)0, out, m, 1, nthreads);  /* (O, m) */
    for (idx_t j = j0; j < j0 + m; ) {                    /* out -> y[n][:, l:l+cnt], with the epilogue */
        idx_t n = j / L, l = j % L, cnt = L - l < j0 + m - j ? L - l : j0 + m - j;
        SFX(conv_epilogue)(O, cnt, out + (j - j0), m, y + n * O * L + l, L, scale, shift,
                           res ? res + n * O * L + l : NULL, relu);
        j += cnt;
    }
}

/* cols (C*kh*kw, m), row stride ld: the windows under output positions l0 .. l0 + m of one
 * image x (C, H, W):
 *     cols[(c, i, j), l - l0] = x[c, ho*s - p + i, wo*s - p + j]   (0 outside the image)
 * with l = ho*Wo + wo. Each row (c, i, j) is written one output row ho at a time: the
 * columns wo whose input column wo*s - p + j falls left of the image are 0, those inside
 * copy from the image row (contiguous when s = 1), those right of it are 0. A whole image whose
 * output has the input's size goes to im2col_same instead: one copy per row (c, i, j). */
static void SFX(im2col_rows)(idx_t C, idx_t H, idx_t W, idx_t kh, idx_t kw, idx_t s, idx_t p, idx_t Wo,
                             const REAL *x, idx_t l0, idx_t m, REAL *cols, idx_t ld)
{
    int same = s == 1 && Wo == W && H + 2 * p - kh + 1 == H;   /* "same" padding, stride 1 */
    for (idx_t c = 0; c < C; c++)
        for (idx_t i = 0; i < kh; i++)
            for (idx_t j = 0; j < kw; j++) {
                REAL *dst = cols + ((c * kh + i) * kw + j) * ld;
                idx_t off = j - p;                         /* input column = wo*s + off */
                idx_t wlo = off >= 0 ? 0 : (-off + s - 1) / s;      /* first wo inside */
                idx_t whi = W - off > 0 ? (W - off + s - 1) / s : 0; /* first wo past the right edge */
                if (whi > Wo) whi = Wo;
                if (wlo > whi) wlo = whi;
                if (same && l0 == 0 && m == H * W) {      /* a whole image, output size = input size */
                    SFX(im2col_same)(H, W, i - p, off, x + c * H * W, dst);
                    continue;
                }
                for (idx_t l = l0; l < l0 + m; ) {
                    idx_t ho = l / Wo, wo0 = l % Wo;
                    idx_t wo1 = wo0 + (l0 + m - l) < Wo ? wo0 + (l0 + m - l) : Wo;
                    idx_t hi = ho * s - p + i;
                    if (hi < 0 || hi >= H) {
                        for (idx_t wo = wo0; wo < wo1; wo++) dst[wo - wo0] = 0;
                    } else {
                        const REAL *src = x + (c * H + hi) * W;            /* the image row hi */
                        idx_t a = wo0 > wlo ? wo0 : wlo, b = wo1 < whi ? wo1 : whi;
                        if (a > b) a = b;
                        for (idx_t wo = wo0; wo < a && wo < wo1; wo++) dst[wo - wo0] = 0;
                        if (s == 1 && b > a)
                            memcpy(dst + (a - wo0), src + a + off, (size_t)(b - a) * sizeof(REAL));
                        else
                            for (idx_t wo = a; wo < b; wo++) dst[wo - wo0] = src[wo * s + off];
                        for (idx_t wo = b > wo0 ? b : wo0; wo < wo1; wo++) dst[wo - wo0] = 0;
                    }
                    dst += wo1 - wo0;
                    l += wo1 - wo0;
                }
            }
}

/* One row (c, i, j) of a whole image's columns when the output has the input's size (stride 1,
 * "same" padding): dst[ho*W + wo] = xc[ho + di, wo + dj] (di = i - p, dj = j - p), the plane
 * xc (H, W) shifted as a whole by di*W + dj, so one copy of the rows inside the image, then
 * zeros for the rows outside it and for the columns wo + dj outside it (whose copied values
 * came from the neighbouring row). Same values as the general loop, with one call per row
 * (c, i, j) instead of one per output row, the cost that dominated on small maps. */
static void SFX(im2col_same)(idx_t H, idx_t W, idx_t di, idx_t dj, const REAL *xc, REAL *dst)
{
    idx_t a, b, hlo, hhi, wlo, whi, HW = H * W;
    same_range(H, W, di, dj, &a, &b, &hlo, &hhi, &wlo, &whi);
    memset(dst, 0, (size_t)a * sizeof(REAL));
    memcpy(dst + a, xc + a + di * W + dj, (size_t)(b - a) * sizeof(REAL));
    memset(dst + b, 0, (size_t)(HW - b) * sizeof(REAL));
    for (idx_t ho = hlo; ho < hhi; ho++) {                 /* the columns outside the image */
        for (idx_t wo = 0; wo < wlo; wo++) dst[ho * W + wo] = 0;
        for (idx_t wo = whi; wo < W; wo++) dst[ho * W + wo] = 0;
    }
}

/* plane (H, W) = col2im of one channel's rows (kh*kw, H*W), row stride ld, when the output has
 * the input's size (stride 1, "same" padding): the adjoint of im2col_same, plane shifted by
 * (i - p)*W + (j - p) += row (i, j) over the rows inside the image, after zeroing the row's
 * entries in the columns outside it (they would land on the neighbouring image row; adding 0
 * changes no sum, so the result is col2im_plane's to the bit). rows is overwritten there. */
static void SFX(col2im_same)(idx_t H, idx_t W, idx_t kh, idx_t kw, idx_t p, REAL *rows, idx_t ld, REAL *plane)
{
    memset(plane, 0, (size_t)(H * W) * sizeof(REAL));
    for (idx_t i = 0; i < kh; i++)
        for (idx_t j = 0; j < kw; j++) {
            REAL *src = rows + (i * kw + j) * ld;          /* (H, W) */
            idx_t a, b, hlo, hhi, wlo, whi, shift = (i - p) * W + (j - p);
            same_range(H, W, i - p, j - p, &a, &b, &hlo, &hhi, &wlo, &whi);
            for (idx_t ho = hlo; ho < hhi; ho++) {
                for (idx_t wo = 0; wo < wlo; wo++) src[ho * W + wo] = 0;
                for (idx_t wo = whi; wo < W; wo++) src[ho * W + wo] = 0;
            }
            REAL *dst = plane + shift;
            for (idx_t l = a; l < b; l++) dst[l] += src[l];
        }
}

/* y (O, m), row stride ld_y, = out (O, m), row stride ld_out, * scale[o] + shift[o] + res[o, l],
 * then max(., 0): scale, shift, res (laid out as y) may be NULL (skipped); BatchNorm's order,
 * then the residual, then ReLU. out may be y itself (in place). */
static void SFX(conv_epilogue)(idx_t O, idx_t m, const REAL *out, idx_t ld_out, REAL *y, idx_t ld_y,
                               const REAL *scale, const REAL *shift, const REAL *res, int relu)
{
    for (idx_t o = 0; o < O; o++) {
        const REAL *src = out + o * ld_out;
        REAL *dst = y + o * ld_y;
        REAL a = scale ? scale[o] : (REAL)1, b = shift ? shift[o] : (REAL)0;
        if (scale || shift)
            for (idx_t l = 0; l < m; l++) dst[l] = src[l] * a + b;
        else if (dst != src)
            memcpy(dst, src, (size_t)m * sizeof(REAL));
        if (res) {
            const REAL *r = res + o * ld_y;
            for (idx_t l = 0; l < m; l++) dst[l] += r[l];
        }
        if (relu)
            for (idx_t l = 0; l < m; l++) dst[l] = dst[l] < 0 ? (REAL)0 : dst[l];   /* NaN stays NaN, as np.maximum */
    }
}

/* Images per block for the backward: as many as keep a block's columns and gathered dy,
 * (CK + O) x m*L, within block_bytes (at least one), then fewer so that the blocks are a multiple
 * of the thread count when there are enough images (every thread gets as many). */
static idx_t SFX(conv_backward_block)(idx_t N, idx_t CK, idx_t O, idx_t L, idx_t block_bytes, int nt)
{
    idx_t fit = block_bytes / ((idx_t)sizeof(REAL) * (CK + O) * L);
    if (fit < 1) fit = 1;
    idx_t nblk = (N + fit - 1) / fit;
    if (nt > 1 && N >= nt) nblk = (nblk + nt - 1) / nt * nt;
    return (N + nblk - 1) / nblk;
}

/* dx (N, C, H, W) and dW (O, CK) of y = conv(x, w) from dy (N, O, L); dx or dw NULL when not
 * wanted. Returns 0 when out of memory (nothing written), 1 otherwise.
 *
 * Each thread takes whole blocks (schedule static: the same blocks in every run) and adds its
 * blocks' dW into its own accumulator; the accumulators are summed at the end in thread order.
 * So for one thread count the result is the same in every run; between thread counts dW differs
 * by float rounding only (the sum over images is grouped differently), while dx is the same
 * (each pixel's sum lies inside one image, hence inside one block). */
int SFX(conv2d_backward)(idx_t N, idx_t C, idx_t H, idx_t W, idx_t O, idx_t kh, idx_t kw, idx_t s, idx_t p,
                         const REAL *x, const REAL *w, const REAL *dy, idx_t block_bytes, REAL *dx, REAL *dw)
{
    idx_t Ho = (H + 2 * p - kh) / s + 1, Wo = (W + 2 * p - kw) / s + 1, L = Ho * Wo, CK = C * kh * kw;
    if (N <= 0 || O <= 0 || L <= 0 || CK <= 0) {          /* nothing to sum: zero gradients */
        if (dx) memset(dx, 0, (size_t)(N * C * H * W) * sizeof(REAL));
        if (dw) memset(dw, 0, (size_t)(O * CK) * sizeof(REAL));
        return 1;
    }
    if ((Ho - 1) * s <= p && H <= kh - p && (Wo - 1) * s <= p && W <= kw - p && H * W < kh * kw)
        /* every window covers the whole image: a dense layer */
        return SFX(conv_backward_dense)(N, C, H, W, O, kh, kw, s, p, Ho, Wo, x, w, dy, dx, dw);
    int nt = (double)N * L * CK * O < CONV_BACKWARD_MIN_PARALLEL ? 1 : miniclip_max_threads();
    idx_t nb = SFX(conv_backward_block)(N, CK, O, L, block_bytes, nt);
    idx_t units = (N + nb - 1) / nb;
    int team = nt > 1 && units >= nt;                     /* whole blocks per thread */
    int nbuf = team ? nt : 1;
    size_t lb = (size_t)(nb * L);
    size_t per_thread = (size_t)(CK + O) * lb + (dw ? (size_t)(O * CK) : 0);   /* cols, dyb, dW */
    REAL *buf = (REAL *)malloc(per_thread * (size_t)nbuf * sizeof(REAL));
    if (!buf) return 0;
    if (dw)                                                /* the accumulators start at 0 */
        for (int t = 0; t < nbuf; t++)
            memset(buf + per_thread * t + (CK + O) * lb, 0, (size_t)(O * CK) * sizeof(REAL));
    if (team) {
        #pragma omp parallel for schedule(static) num_threads(nt)
        for (idx_t u = 0; u < units; u++) {
            REAL *mine = buf + per_thread * (size_t)CONV_THREAD_ID();
            idx_t n0 = u * nb;
            SFX(conv_backward_unit)(n0, N - n0 < nb ? N - n0 : nb, C, H, W, O, kh, kw, s, p, Wo, L, x, w, dy,
                                    dx, dw ? mine + (CK + O) * lb : NULL, mine, mine + CK * lb, 1);
        }
    } else {                                               /* few blocks: the GEMM's own threads */
        for (idx_t u = 0; u < units; u++) {
            idx_t n0 = u * nb;
            SFX(conv_backward_unit)(n0, N - n0 < nb ? N - n0 : nb, C, H, W, O, kh, kw, s, p, Wo, L, x, w, dy,
                                    dx, dw ? buf + (CK + O) * lb : NULL, buf, buf + CK * lb, nt);
        }
    }
    if (dw) {                                              /* dW = the accumulators, summed in thread order */
        int tr = DW_TRANSPOSED(CK, O);                     /* dW[o, k] at acc[o*rs + k*cs] */
        idx_t rs = tr ? 1 : CK, cs = tr ? O : 1;
        for (int t = 0; t < nbuf; t++) {
            const REAL *acc = buf + per_thread * t + (CK + O) * lb;
            for (idx_t o = 0; o < O; o++)
                for (idx_t k = 0; k < CK; k++)
                    dw[o * CK + k] = t == 0 ? acc[o * rs + k * cs] : dw[o * CK + k] + acc[o * rs + k * cs];
        }
    }
    free(buf);
    return 1;
}

/* One block: images n0 .. n0 + m, their m*L positions side by side (column i*L + l is position l
 * of image n0 + i, the merged layout of im2col). */
static void SFX(conv_backward_unit)(idx_t n0, idx_t m, idx_t C, idx_t H, idx_t W, idx_t O,
                                    idx_t kh, idx_t kw, idx_t s, idx_t p, idx_t Wo, idx_t L,
                                    const REAL *x, const REAL *w, const REAL *dy, REAL *dx, REAL *dw_acc,
                                    REAL *cols, REAL *dyb, int nthreads)
{
    idx_t CK = C * kh * kw, mL = m * L, Ho = L / Wo;
    int plain = kh == 1 && kw == 1 && s == 1 && p == 0;   /* 1x1: the columns are x's rows */
    /* a small map (2x2, 4x4): the columns read from, and dx added into, a zero-padded plane at
     * the offsets of a table, instead of a few values per call of im2col_rows and col2im_plane */
    int small = !plain && L <= CONV_SMALL_L && (H + 2 * p) * (W + 2 * p) <= CONV_SMALL_PAD
                && kh * kw * L <= CONV_SMALL_TAB;
    idx_t tab[CONV_SMALL_TAB];
    REAL pad[CONV_SMALL_PAD];
    if (small) window_offsets(kh, kw, s, W + 2 * p, Ho, Wo, tab);
    const REAL *d = dy + n0 * O * L;                      /* (O, L) for one image: dy[n0] in place */
    if (m > 1) {
        SFX(side_by_side)(m, O, L, d, dyb, 1);            /* dyb (O, m*L) */
        d = dyb;
    }
    if (dw_acc) {
        if (plain)                                        /* cols (CK, m*L) */
            SFX(side_by_side)(m, C, L, x + n0 * C * L, cols, 1);
        else if (small)
            SFX(im2col_small)(m, C, H, W, p, kh * kw, L, tab, x + n0 * C * H * W, pad, cols, mL);
        else
            for (idx_t i = 0; i < m; i++)
                SFX(im2col_rows)(C, H, W, kh, kw, s, p, Wo, x + (n0 + i) * C * H * W, 0, L, cols + i * L, mL);
        /* dW (O, CK) += dy_blk (O, m*L) @ cols^T (m*L, CK), or, when CK > O, its transpose
         * dW^T (CK, O) += cols (CK, m*L) @ dy_blk^T: GEMM v3 packs a row-major A with a SIMD
         * transpose but a transposed B one element at a time, so the larger of the two goes in as
         * A (DW_TRANSPOSED: not below 16 channels, which fill too little of the GEMM's 32-wide tile) */
        if (DW_TRANSPOSED(CK, O))
            SFX(gemm_packed)(CK, O, mL, (REAL)1, cols, mL, 1, d, 1, mL, (REAL)1, dw_acc, O, 1, nthreads);
        else
            SFX(gemm_packed)(O, CK, mL, (REAL)1, d, mL, 1, cols, 1, mL, (REAL)1, dw_acc, CK, 1, nthreads);
    }
    if (dx) {
        /* dcols (CK, m*L) = W^T (CK, O) @ dy_blk (O, m*L), over the columns, no longer needed */
        SFX(gemm_packed)(CK, mL, O, (REAL)1, w, 1, CK, d, mL, 1, (REAL)0, cols, mL, 1, nthreads);
        if (plain)                                        /* the block's images are whole: no other */
            SFX(side_by_side)(m, C, L, cols, dx + n0 * C * L, 0);   /* block writes their pixels */
        else if (small)
            SFX(col2im_small)(m, C, H, W, p, kh * kw, L, tab, cols, mL, pad, dx + n0 * C * H * W);
        else
            for (idx_t i = 0; i < m; i++)
                for (idx_t c = 0; c < C; c++) {
                    REAL *rows = cols + c * kh * kw * mL + i * L, *plane = dx + ((n0 + i) * C + c) * H * W;
                    if (s == 1 && Ho == H && Wo == W)
                        SFX(col2im_same)(H, W, kh, kw, p, rows, mL, plane);
                    else
                        SFX(col2im_plane)(H, W, kh, kw, s, p, Ho, Wo, rows, mL, plane);
                }
    }
}

/* The backward when every window covers the whole image: (Ho - 1)*s <= p (the last window starts at
 * or before pixel 0) and H <= kh - p (the first reaches pixel H - 1), likewise across; a 2x2 map
 * under a 3x3 kernel with padding 1, or a 1x1 map (taken when it saves multiply-adds, H*W < kh*kw).
 * Then each output position l sees each pixel q through exactly one offset (i, j) = (h - ho*s + p,
 * v - wo*s + p), and the convolution is a dense layer over the flattened image,
 * y (N, O*L) = x (N, C*H*W) @ Wd^T with
 *     Wd[(o, l), (c, q)] = w[o, c, i, j]                              (O*L, C*H*W)
 * so that
 *     dx (N, C*H*W) = dy (N, O*L) @ Wd,   dWd (O*L, C*H*W) = dy^T @ x,
 *     dW[o, c, i, j] = the sum of dWd[(o, l), (c, q)] over the pairs (l, q) with offset (i, j)
 * two GEMMs with H*W / (kh*kw) of im2col's multiply-adds (4/9 on 2x2 maps: im2col multiplies the
 * padding's zeros too) and large sides (the batch, O*L, C*H*W) instead of thin ones.
 * dx's product runs in slices of at most CONV_DENSE_SLICE of its inner size O*L, each one pass of
 * the GEMM's micro-kernel whatever path it takes for this shape and thread count, so that dx is the
 * same at every thread count (GEMM v3 splits the rows and the columns between threads, never the
 * sum); dW's sum over the batch is grouped by the GEMM and may differ by rounding. */
static int SFX(conv_backward_dense)(idx_t N, idx_t C, idx_t H, idx_t W, idx_t O, idx_t kh, idx_t kw, idx_t s,
                                   idx_t p, idx_t Ho, idx_t Wo, const REAL *x, const REAL *w, const REAL *dy,
                                   REAL *dx, REAL *dw)
{
    idx_t L = Ho * Wo, HW = H * W, OL = O * L, CHW = C * HW, KK = kh * kw;
    int nt = miniclip_max_threads();
    REAL *wd = (REAL *)malloc((size_t)OL * (size_t)CHW * sizeof(REAL));   /* Wd, then dWd */
    idx_t *tap = (idx_t *)malloc((size_t)(L * HW) * sizeof(idx_t));      /* (L, H*W): i*kw + j */
    if (!wd || !tap) {
        free(wd);
        free(tap);
        return 0;
    }
    for (idx_t l = 0; l < L; l++)
        for (idx_t q = 0; q < HW; q++)
            tap[l * HW + q] = (q / W - l / Wo * s + p) * kw + q % W - l % Wo * s + p;
    if (dx) {
        for (idx_t o = 0; o < O; o++)
            for (idx_t l = 0; l < L; l++)
                for (idx_t c = 0; c < C; c++)
                    for (idx_t q = 0; q < HW; q++)
                        wd[(o * L + l) * CHW + c * HW + q] = w[(o * C + c) * KK + tap[l * HW + q]];
        /* dx (N, C*H*W) = dy[:, 0:k] @ Wd[0:k] + dy[:, k:2k] @ Wd[k:2k] + ...   k = CONV_DENSE_SLICE */
        for (idx_t k0 = 0; k0 < OL; k0 += CONV_DENSE_SLICE) {
            idx_t k = OL - k0 < CONV_DENSE_SLICE ? OL - k0 : CONV_DENSE_SLICE;
            SFX(gemm_packed)(N, CHW, k, (REAL)1, dy + k0, OL, 1, wd + k0 * CHW, CHW, 1, k0 ? (REAL)1 : (REAL)0,
                             dx, CHW, 1, nt);
        }
    }
    if (dw) {
        /* dWd (O*L, C*H*W) = dy^T (O*L, N) @ x (N, C*H*W) */
        SFX(gemm_packed)(OL, CHW, N, (REAL)1, dy, 1, OL, x, CHW, 1, (REAL)0, wd, CHW, 1, nt);
        memset(dw, 0, (size_t)(O * C * KK) * sizeof(REAL));  /* an offset no pair uses (1x1 maps) stays 0 */
        for (idx_t o = 0; o < O; o++)
            for (idx_t l = 0; l < L; l++)
                for (idx_t c = 0; c < C; c++)
                    for (idx_t q = 0; q < HW; q++)
                        dw[(o * C + c) * KK + tap[l * HW + q]] += wd[(o * L + l) * CHW + c * HW + q];
    }
    free(wd);
    free(tap);
    return 1;
}

/* merge = 1: dst (R, m*L) = the m images src (m, R, L) side by side, row r of image i at
 * dst[r, i*L:(i+1)*L]; merge = 0: the way back, dst (m, R, L) = the images of src (R, m*L). */
static void SFX(side_by_side)(idx_t m, idx_t R, idx_t L, const REAL *src, REAL *dst, int merge)
{
    for (idx_t i = 0; i < m; i++)
        for (idx_t r = 0; r < R; r++) {
            idx_t img = (i * R + r) * L, row = r * m * L + i * L;
            memcpy(dst + (merge ? row : img), src + (merge ? img : row), (size_t)L * sizeof(REAL));
        }
}

/* cols (C*kh*kw, ld) = the columns of m whole images x (m, C, H, W), image i's at column i*L,
 * for a small map: each channel plane is copied into the middle of the zero-padded plane pad
 * ((H + 2p) x (W + 2p), whose border stays 0), and row (c, i, j) takes pad[tab[(i, j), l]] at
 * each position l (window_offsets). The values of im2col_rows, in one loop over the table for
 * the whole row instead of calls that copy a value or two each. */
static void SFX(im2col_small)(idx_t m, idx_t C, idx_t H, idx_t W, idx_t p, idx_t KK, idx_t L, const idx_t *tab,
                              const REAL *x, REAL *pad, REAL *cols, idx_t ld)
{
    idx_t Wp = W + 2 * p;
    memset(pad, 0, (size_t)((H + 2 * p) * Wp) * sizeof(REAL));
    for (idx_t n = 0; n < m; n++)
        for (idx_t c = 0; c < C; c++) {
            const REAL *xc = x + (n * C + c) * H * W;     /* (H, W) */
            for (idx_t h = 0; h < H; h++)
                memcpy(pad + (h + p) * Wp + p, xc + h * W, (size_t)W * sizeof(REAL));
            for (idx_t r = 0; r < KK; r++) {              /* row (c, i, j), r = i*kw + j */
                REAL *dst = cols + (c * KK + r) * ld + n * L;
                const idx_t *t = tab + r * L;
                for (idx_t l = 0; l < L; l++) dst[l] = pad[t[l]];
            }
        }
}

/* dx (m, C, H, W) = col2im of cols (C*kh*kw, ld) for m whole images on a small map, the adjoint
 * of im2col_small: each channel's rows (i, j) added into the zeroed padded plane pad at the table's
 * offsets, then its middle copied out (the border, where the padding's positions collected
 * theirs, is dropped). Each pixel sums over (i, j) in the reference's order from 0, as
 * col2im_plane: equal to the bit. */
static void SFX(col2im_small)(idx_t m, idx_t C, idx_t H, idx_t W, idx_t p, idx_t KK, idx_t L, const idx_t *tab,
                              const REAL *cols, idx_t ld, REAL *pad, REAL *dx)
{
    idx_t Wp = W + 2 * p;
    for (idx_t n = 0; n < m; n++)
        for (idx_t c = 0; c < C; c++) {
            memset(pad, 0, (size_t)((H + 2 * p) * Wp) * sizeof(REAL));
            for (idx_t r = 0; r < KK; r++) {              /* row (c, i, j), r = i*kw + j */
                const REAL *src = cols + (c * KK + r) * ld + n * L;
                const idx_t *t = tab + r * L;
                for (idx_t l = 0; l < L; l++) pad[t[l]] += src[l];
            }
            REAL *xc = dx + (n * C + c) * H * W;          /* (H, W) */
            for (idx_t h = 0; h < H; h++)
                memcpy(xc + h * W, pad + (h + p) * Wp + p, (size_t)W * sizeof(REAL));
        }
}

/* The columns of every image, in one of two layouts (row (c, i, j) of image n starts at
 * cols + n*ld_img + (c, i, j)*ld):
 *     merged = 0:  cols (N, C*kh*kw, L)      ld = L,    ld_img = C*kh*kw*L   (image by image)
 *     merged = 1:  cols (C*kh*kw, N*L)       ld = N*L,  ld_img = L           (images side by side)
 * The merged layout makes a product over all images one GEMM (the backward's dW and dcols). */
#define CONV_LAYOUT(merged, N, CK, L, ld, ld_img) \
    idx_t ld = (merged) ? (N) * (L) : (L), ld_img = (merged) ? (L) : (CK) * (L)

/* cols = im2col of every image (layout above), the (image, channel) planes split between threads. */
void SFX(im2col)(idx_t N, idx_t C, idx_t H, idx_t W, idx_t kh, idx_t kw, idx_t s, idx_t p,
                 const REAL *x, REAL *cols, int merged)
{
    idx_t Ho = (H + 2 * p - kh) / s + 1, Wo = (W + 2 * p - kw) / s + 1, L = Ho * Wo;
    CONV_LAYOUT(merged, N, C * kh * kw, L, ld, ld_img);
    int nt = (double)N * C * kh * kw * L < 65536 ? 1 : miniclip_max_threads();
    #pragma omp parallel for schedule(static) num_threads(nt)
    for (idx_t nc = 0; nc < N * C; nc++)                  /* image n = nc / C, channel c = nc % C */
        SFX(im2col_rows)(1, H, W, kh, kw, s, p, Wo, x + nc * H * W, 0, L,
                         cols + (nc / C) * ld_img + (nc % C) * kh * kw * ld, ld);
}

/* dx (N, C, H, W) = col2im(cols) (either layout), the adjoint of im2col, the (image, channel)
 * planes split between threads. */
void SFX(col2im)(idx_t N, idx_t C, idx_t H, idx_t W, idx_t kh, idx_t kw, idx_t s, idx_t p,
                 const REAL *cols, REAL *dx, int merged)
{
    idx_t Ho = (H + 2 * p - kh) / s + 1, Wo = (W + 2 * p - kw) / s + 1, L = Ho * Wo;
    CONV_LAYOUT(merged, N, C * kh * kw, L, ld, ld_img);
    int nt = (double)N * C * kh * kw * L < 65536 ? 1 : miniclip_max_threads();
    #pragma omp parallel for schedule(static) num_threads(nt)
    for (idx_t nc = 0; nc < N * C; nc++)                  /* row (c, 0, 0) of image n = nc / C */
        SFX(col2im_plane)(H, W, kh, kw, s, p, Ho, Wo, cols + (nc / C) * ld_img + (nc % C) * kh * kw * ld, ld,
                          dx + nc * H * W);
}

/* plane (H, W) = the adjoint of im2col_rows for one channel: rows (kh*kw, Ho*Wo), row stride ld,
 * holds the channel's kh*kw rows (i, j); each entry is added to the pixel it was copied from, the
 * offsets (i, j) in the reference's order, so both sum every pixel in the same order. */
static void SFX(col2im_plane)(idx_t H, idx_t W, idx_t kh, idx_t kw, idx_t s, idx_t p, idx_t Ho, idx_t Wo,
                              const REAL *rows, idx_t ld, REAL *plane)
{
    memset(plane, 0, (size_t)(H * W) * sizeof(REAL));
    for (idx_t i = 0; i < kh; i++)
        for (idx_t j = 0; j < kw; j++) {
            const REAL *src = rows + (i * kw + j) * ld;   /* (Ho, Wo) */
            idx_t off = j - p;                             /* input column = wo*s + off */
            idx_t wlo = off >= 0 ? 0 : (-off + s - 1) / s;
            idx_t whi = W - off > 0 ? (W - off + s - 1) / s : 0;
            if (whi > Wo) whi = Wo;
            for (idx_t ho = 0; ho < Ho; ho++) {
                idx_t hi = ho * s - p + i;
                if (hi < 0 || hi >= H) continue;
                REAL *row = plane + hi * W;
                for (idx_t wo = wlo; wo < whi; wo++) row[wo * s + off] += src[ho * Wo + wo];
            }
        }
}

#include "real_end.h"
