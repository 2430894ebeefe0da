/* attention_tiles_impl.h: attention for short sequences, on whole micro-kernel tiles.
 *
 * Included at the end of attention_impl.h (same macros: real.h, and attention.c's constants);
 * it uses attention_common_impl.h. The math is attention.c's; only the way the seven small
 * products are computed differs.
 *
 * Why: at CLIP's short sequences (17 image tokens, a dozen text tokens) one head's
 * products are a few thousand multiply-adds each. Through the general GEMM every one of
 * them pays for edge tiles (17 = 16 + 1 columns: the second column tile is mostly
 * padding, recomputed or merged through a buffer), small mallocs and dispatch, which
 * cost more than the arithmetic. Here every product is a plain loop of full micro-kernel
 * calls. The micro-kernel reads A and B in place with any row stride (so q, k, v, dout are
 * read where they are, inside the packed qkv projection, and results are written straight
 * into out, dq, dk, dv), and it runs any number of steps, so the sum side (K) needs no
 * padding. What needs padding is the column side (N) of the two score products (q k^T and
 * dout v^T: T columns rounded up to nr, so k^T and v^T are kept as zero-padded copies).
 * The row side (M) is not padded: an operand that lives in the caller's array cannot be read
 * or written past its last row (that could leave the array), so the last, partial row tile
 * is moved back to overlap the one before it (see tiles_gemm); only a product of fewer rows
 * than one tile goes through a padded copy.
 *
 * The tile (mr x nr) is a micro-kernel's, chosen per call (tile_kernel): AVX-512's 14 x 32
 * (float64 14 x 16) when the CPU has it, D is a multiple of 32 (16), 14 <= T <= 42 and T rounded
 * up to 14 rows wastes little (not at T = 15 .. 18), else the AVX2 or generic 6 x 16 (6 x 8)
 * when D is a multiple of 16 (8) and T <= 24; other sequences take the general path
 * (attention.c says why those limits).
 *
 * Shape legend (per head): T tokens, D head dim (a multiple of nr here), Tc = T rounded up
 * to nr, Tcc = Tc rounded up to a cache line, the scores' row length. Buffers (one set per
 * thread, zeroed once, each starting on a cache line):
 *     Kt, Vt (D x Tc): k^T, v^T (columns >= T stay 0)
 *     P, dP (T x Tcc): scores, probabilities, dP then dS (entries outside the valid
 *         T x T triangle or square are written as 0)
 *     Apad (mr x max(D, T)), Cedge (mr x nr): a product of fewer than mr rows (T < mr)
 *
 * Top-down: the forward and the backward, then tile_kernel, tiles_gemm (one product) and
 * tiles_alloc (the buffers).
 */

/* one thread's buffers (see the legend above) */
typedef struct {
    idx_t Tc, Tcc;
    REAL *Kt, *Vt, *P, *dP, *Apad, *Cedge;
    REAL *mem;
} SFX(tiles_t);

/* defined below */
static int SFX(tiles_alloc)(SFX(tiles_t) *b, const SFX(tile_kernel_t) *tk, idx_t T, idx_t D);
static void SFX(tiles_gemm)(const SFX(tile_kernel_t) *tk, idx_t M, idx_t N, idx_t K, REAL alpha,
                            const REAL *A, idx_t rs_a, idx_t cs_a, const REAL *B, idx_t ldb,
                            REAL *C, idx_t ldc, REAL *apad, REAL *cedge);
static const REAL *SFX(tiles_pad_rows)(idx_t mr, idx_t M, idx_t K, const REAL *A, idx_t *rs_a,
                                       idx_t *cs_a, REAL *apad);

static void SFX(attention_forward_tiles)(const SFX(tile_kernel_t) *tk, idx_t B, idx_t H, idx_t T, idx_t D,
                                         REAL scale, int causal,
                                         const REAL *q, attn_layout lq, const REAL *k, attn_layout lk,
                                         const REAL *v, attn_layout lv, REAL *out, attn_layout lo,
                                         REAL *lse, REAL *p)
{
    idx_t BH = B * H;
    #pragma omp parallel if((double)BH * T * T * D > ATTENTION_PARALLEL_WORK)
    {
        SFX(tiles_t) b;
        int ok = SFX(tiles_alloc)(&b, tk, T, D);
        #pragma omp for schedule(dynamic, 4)
        for (idx_t bh = 0; bh < BH; bh++) {
            idx_t bi = bh / H, h = bh % H;
            REAL *oh = out + HEAD(lo, bi, h);
            if (!ok) {                                             /* out of memory: NaN, never garbage */
                SFX(fill_nan)(T, D, oh, lo.row);
                continue;
            }
            const REAL *qh = q + HEAD(lq, bi, h);
            SFX(transpose)(T, D, k + HEAD(lk, bi, h), lk.row, b.Kt, b.Tc);        /* Kt = k^T */
            /* S = scale * q k^T (q read in place), P = softmax(S), out = P v (v read in place) */
            SFX(tiles_gemm)(tk, T, b.Tc, D, scale, qh, lq.row, 1, b.Kt, b.Tc, b.P, b.Tcc, b.Apad, b.Cedge);
            SFX(attn_softmax_rows)(T, b.Tcc, causal, b.P, lse + bh * T, NULL);
            if (p) SFX(keep_probabilities)(T, b.Tcc, b.P, p + bh * T * T);
            SFX(tiles_gemm)(tk, T, D, T, 1, b.P, b.Tcc, 1, v + HEAD(lv, bi, h), lv.row, oh, lo.row,
                            b.Apad, b.Cedge);
        }
        free(b.mem);
    }
}

static void SFX(attention_backward_tiles)(const SFX(tile_kernel_t) *tk, idx_t B, idx_t H, idx_t T, idx_t D,
                                          REAL scale, int causal,
                                          const REAL *dout, attn_layout ldo, const REAL *q, attn_layout lq,
                                          const REAL *k, attn_layout lk, const REAL *v, attn_layout lv,
                                          const REAL *out, attn_layout lo, const REAL *lse, const REAL *p,
                                          REAL *dq, attn_layout ldq, REAL *dk, attn_layout ldk,
                                          REAL *dv, attn_layout ldv)
{
    idx_t BH = B * H;
    #pragma omp parallel if((double)BH * T * T * D > ATTENTION_PARALLEL_WORK)
    {
        SFX(tiles_t) b;
        int ok = SFX(tiles_alloc)(&b, tk, T, D);
        #pragma omp for schedule(dynamic, 4)
        for (idx_t bh = 0; bh < BH; bh++) {
            idx_t bi = bh / H, h = bh % H;
            REAL *dqh = dq + HEAD(ldq, bi, h), *dkh = dk + HEAD(ldk, bi, h), *dvh = dv + HEAD(ldv, bi, h);
            if (!ok) {
                SFX(fill_nan)(T, D, dqh, ldq.row);
                SFX(fill_nan)(T, D, dkh, ldk.row);
                SFX(fill_nan)(T, D, dvh, ldv.row);
                continue;
            }
            const REAL *qh = q + HEAD(lq, bi, h), *kh = k + HEAD(lk, bi, h), *vh = v + HEAD(lv, bi, h);
            const REAL *douth = dout + HEAD(ldo, bi, h), *outh = out + HEAD(lo, bi, h);
            /* P: kept by the forward in p (row stride T), or rebuilt as exp(scale * q k^T - lse) */
            const REAL *Ph = b.P;
            idx_t ldp = b.Tcc;
            if (p) {
                Ph = p + bh * T * T;
                ldp = T;
            } else {
                SFX(transpose)(T, D, kh, lk.row, b.Kt, b.Tc);
                SFX(tiles_gemm)(tk, T, b.Tc, D, scale, qh, lq.row, 1, b.Kt, b.Tc, b.P, b.Tcc, b.Apad, b.Cedge);
                SFX(attn_softmax_rows)(T, b.Tcc, causal, b.P, NULL, lse + bh * T);
            }
            /* dv = P^T dout (P^T: rs 1, cs ldp; the moved-back last tile reads no column past T) */
            SFX(tiles_gemm)(tk, T, D, T, 1, Ph, 1, ldp, douth, ldo.row, dvh, ldv.row, b.Apad, b.Cedge);
            /* dP = dout v^T, then dS = P * (dP - delta), delta_i = dout_i . out_i */
            SFX(transpose)(T, D, vh, lv.row, b.Vt, b.Tc);
            SFX(tiles_gemm)(tk, T, b.Tc, D, 1, douth, ldo.row, 1, b.Vt, b.Tc, b.dP, b.Tcc, b.Apad, b.Cedge);
            SFX(softmax_grad_rows)(T, D, b.Tcc, causal, Ph, ldp, b.dP, douth, ldo.row, outh, lo.row);
            /* dq = scale * dS k;  dk = scale * dS^T q (k, q read in place) */
            SFX(tiles_gemm)(tk, T, D, T, scale, b.dP, b.Tcc, 1, kh, lk.row, dqh, ldq.row, b.Apad, b.Cedge);
            SFX(tiles_gemm)(tk, T, D, T, scale, b.dP, 1, b.Tcc, qh, lq.row, dkh, ldk.row, b.Apad, b.Cedge);
        }
        free(b.mem);
    }
}

/* the micro-kernel of the tile path: the AVX-512 one when the CPU may run it and its tile fits
 * T and D, else the AVX2 / generic one when its tile does; 0 when neither fits (attention.c).
 * The AVX-512 tile fits when its rows, T rounded up to 14, are at most 1.5 T: at T = 15 .. 18
 * it would compute 28 rows where the 6-row tile computes 18 (or 24 at 19, where the wide
 * tile's twice wider vectors win again) */
static int SFX(tile_kernel)(idx_t T, idx_t D, SFX(tile_kernel_t) *k)
{
    UKR_T wide = GET_UKR512();
    idx_t rows512 = (T + MR512 - 1) / MR512 * MR512;
    if (wide && D % NR512 == 0 && T >= MR512 && T <= TILES512_MAX_T && 2 * rows512 <= 3 * T) {
        *k = (SFX(tile_kernel_t)){wide, MR512, NR512};
        return 1;
    }
    if (D % NR == 0 && T <= TILES_MAX_T) {
        *k = (SFX(tile_kernel_t)){GET_UKR(), MR, NR};
        return 1;
    }
    return 0;
}

/* C (M x N, row stride ldc) = alpha * A (M x K, strides rs_a, cs_a) B (K x N, row stride ldb)
 * with N a multiple of the tile's nr. A and C may be the caller's arrays, which cannot be read
 * or written past row M, so the last partial row tile is moved back to end at row M,
 * overlapping the tile before it (those rows are recomputed from the same operands in the
 * same order, so they are rewritten with the same values); only when M < mr does it go
 * through apad (the rows, zeros below: tiles_pad_rows) and cedge (the result, valid rows
 * copied out). */
static void SFX(tiles_gemm)(const SFX(tile_kernel_t) *tk, idx_t M, idx_t N, idx_t K, REAL alpha,
                            const REAL *A, idx_t rs_a, idx_t cs_a, const REAL *B, idx_t ldb,
                            REAL *C, idx_t ldc, REAL *apad, REAL *cedge)
{
    UKR_T ukr = tk->ukr;
    idx_t mr = tk->mr, nr = tk->nr;
    idx_t full = M / mr * mr;                                      /* rows done in place */
    int moved = full < M && M >= mr;                               /* a moved-back last tile */
    int tiny = full < M && M < mr;                                 /* fewer rows than a tile */
    if (tiny)
        A = SFX(tiles_pad_rows)(mr, M, K, A, &rs_a, &cs_a, apad);
    for (idx_t j = 0; j < N; j += nr) {
        for (idx_t i = 0; i < full; i += mr)
            ukr(K, alpha, A + i * rs_a, rs_a, cs_a, B + j, ldb, (REAL)0, C + i * ldc + j, ldc, 1, NULL);
        if (moved)
            ukr(K, alpha, A + (M - mr) * rs_a, rs_a, cs_a, B + j, ldb, (REAL)0, C + (M - mr) * ldc + j,
                ldc, 1, NULL);
        if (tiny) {
            ukr(K, alpha, A, rs_a, cs_a, B + j, ldb, (REAL)0, cedge, nr, 1, NULL);
            for (idx_t r = 0; r < M; r++)
                memcpy(C + r * ldc + j, cedge + r * nr, (size_t)nr * sizeof(REAL));
        }
    }
}

/* The M < mr rows of A (M x K) as a whole tile of mr rows in apad, zeros below; returns apad
 * and its strides in rs_a, cs_a. Every A of attention has unit stride along its rows (q, k, v,
 * dout, P, dS: cs_a = 1) or down its columns (P^T, dS^T: rs_a = 1), and apad keeps that
 * layout, so the copy is one memcpy per row (or column). */
static const REAL *SFX(tiles_pad_rows)(idx_t mr, idx_t M, idx_t K, const REAL *A, idx_t *rs_a,
                                       idx_t *cs_a, REAL *apad)
{
    if (*cs_a == 1) {                                  /* apad (mr x K), rows contiguous */
        for (idx_t r = 0; r < M; r++)
            memcpy(apad + r * K, A + r * *rs_a, (size_t)K * sizeof(REAL));
        memset(apad + M * K, 0, (size_t)((mr - M) * K) * sizeof(REAL));
        *rs_a = K;
    } else {                                           /* rs_a == 1: apad column by column */
        for (idx_t p = 0; p < K; p++) {
            memcpy(apad + p * mr, A + p * *cs_a, (size_t)M * sizeof(REAL));
            memset(apad + p * mr + M, 0, (size_t)(mr - M) * sizeof(REAL));
        }
        *cs_a = mr;
    }
    return apad;
}

/* values per 64-byte cache line */
#define LINE ((idx_t)(64 / sizeof(REAL)))
#define ROUND_LINE(n) (((n) + LINE - 1) / LINE * LINE)

static int SFX(tiles_alloc)(SFX(tiles_t) *b, const SFX(tile_kernel_t) *tk, idx_t T, idx_t D)
{
    idx_t mr = tk->mr, nr = tk->nr;
    b->Tc = (T + nr - 1) / nr * nr;
    /* every row of P and dP starts on a cache line (as SCORE_LD in attention.c): a
     * micro-kernel row store that straddles two lines cannot be forwarded to the softmax's
     * loads right after it, which then wait for the store to reach the cache */
    b->Tcc = ROUND_LINE(b->Tc);
    idx_t cd = ROUND_LINE(b->Tc * D), pp = ROUND_LINE(T * b->Tcc);
    idx_t ka = D > T ? D : T;                          /* the longest sum (K) of a product */
    idx_t ap = ROUND_LINE(mr * ka);
    size_t bytes = (size_t)(2 * cd + 2 * pp + ap + ROUND_LINE(mr * nr)) * sizeof(REAL);
    b->mem = (REAL *)aligned_alloc(64, bytes);         /* bytes: a multiple of 64, as required */
    if (!b->mem) return 0;
    memset(b->mem, 0, bytes);                          /* every pad starts (and stays) zero */
    b->Kt = b->mem;      b->Vt = b->Kt + cd;     b->P = b->Vt + cd;
    b->dP = b->P + pp;   b->Apad = b->dP + pp;   b->Cedge = b->Apad + ap;
    return 1;
}

#undef ROUND_LINE
#undef LINE
