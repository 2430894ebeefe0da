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
 * cost more than the arithmetic. Here each head is first copied into zero-padded
 * buffers whose sides are whole tiles, and every product is a plain loop of full
 * micro-kernel calls. The micro-kernel reads A and B in place with any row stride (so q,
 * k, v, dout are read where they are, inside the packed qkv projection, and results are
 * written straight into out, dq, dk, dv), and it runs any number of steps, so the sum
 * side (K) needs no padding. What needs padding is the column side (N) of the two score
 * products (q k^T and dout v^T: T columns rounded up to NR, so k^T and v^T are kept as
 * zero-padded copies) and the row side (M): T rows rounded up to MR. Padded buffers
 * (the scores) are read and written whole; an operand that lives in the caller's array
 * cannot be read past its last row (that could leave the array), so there the last,
 * partial row tile is moved back to overlap the one before it (see tiles_gemm).
 *
 * Shape legend (per head): T tokens, D head dim (a multiple of NR here), Tr = T rounded
 * up to MR, Tc = T rounded up to NR, Tcc = max(Tc, Tr) rounded up to a cache line, the
 * scores' row length (P^T and dS^T, read as A operands, need Tr columns). Buffers (one
 * set per thread, zeroed once, each starting on a cache line):
 *     Kt, Vt (D x Tc): k^T, v^T (columns >= T stay 0)
 *     P, dP (Tr x Tcc): scores, probabilities, dP then dS (entries outside the valid
 *         T x T triangle or square are written as 0)
 *     Apad (MR x max(D, Tcc)), Cedge (MR x NR): a product of fewer than MR rows (T < MR)
 */

/* C (M x N, row stride ldc) = alpha * A (M x K, strides rs_a, cs_a) B (K x N, row stride ldb)
 * with N a multiple of NR. padded: A has readable (zero) rows and C writable rows up to M
 * rounded up to MR. Otherwise the last partial row tile is moved back to end at row M,
 * overlapping the tile before it (those rows are recomputed from the same operands in the
 * same order, so they are rewritten with the same values); only when M < MR does it go
 * through apad (the rows, zeros below) and cedge (the result, valid rows copied out). */
static void SFX(tiles_gemm)(UKR_T ukr, idx_t M, idx_t N, idx_t K, REAL alpha,
                            const REAL *A, idx_t rs_a, idx_t cs_a, const REAL *B, idx_t ldb,
                            REAL *C, idx_t ldc, int padded, REAL *apad, REAL *cedge)
{
    idx_t full = padded ? (M + MR - 1) / MR * MR : M / MR * MR;   /* rows done in place */
    int moved = full < M && M >= MR;                               /* a moved-back last tile */
    int tiny = full < M && M < MR;                                 /* fewer rows than a tile */
    if (tiny)
        for (idx_t r = 0; r < MR; r++)
            for (idx_t p = 0; p < K; p++)
                apad[r * K + p] = r < M ? A[r * rs_a + p * cs_a] : (REAL)0;
    for (idx_t j = 0; j < N; j += NR) {
        for (idx_t i = 0; i < full; i += MR)
            ukr(K, alpha, A + i * rs_a, rs_a, cs_a, B + j, ldb, (REAL)0, C + i * ldc + j, ldc, 1, NULL);
        if (moved)
            ukr(K, alpha, A + (M - MR) * rs_a, rs_a, cs_a, B + j, ldb, (REAL)0, C + (M - MR) * ldc + j,
                ldc, 1, NULL);
        if (tiny) {
            ukr(K, alpha, apad, K, 1, B + j, ldb, (REAL)0, cedge, NR, 1, NULL);
            for (idx_t r = 0; r < M; r++)
                memcpy(C + r * ldc + j, cedge + r * NR, NR * sizeof(REAL));
        }
    }
}

typedef struct {
    idx_t Tr, Tc, Tcc;
    REAL *Kt, *Vt, *P, *dP, *Apad, *Cedge;
    REAL *mem;
} SFX(tiles_t);

/* values per 64-byte cache line */
#define LINE ((idx_t)(64 / sizeof(REAL)))
#define ROUND_LINE(n) (((n) + LINE - 1) / LINE * LINE)

static int SFX(tiles_alloc)(SFX(tiles_t) *b, idx_t T, idx_t D)
{
    b->Tr = (T + MR - 1) / MR * MR;
    b->Tc = (T + NR - 1) / NR * NR;
    /* every row of P and dP starts on a cache line (as SCORE_LD in attention.c): a
     * micro-kernel row store that straddles two lines cannot be forwarded to the softmax's
     * loads right after it, which then wait for the store to reach the cache */
    b->Tcc = ROUND_LINE(b->Tc > b->Tr ? b->Tc : b->Tr);
    idx_t cd = ROUND_LINE(b->Tc * D), pp = ROUND_LINE(b->Tr * b->Tcc);
    idx_t ka = D > b->Tcc ? D : b->Tcc;                /* the longest sum (K) of a tiny product */
    idx_t ap = ROUND_LINE(MR * ka);
    size_t bytes = (size_t)(2 * cd + 2 * pp + ap + ROUND_LINE(MR * NR)) * sizeof(REAL);
    b->mem = (REAL *)aligned_alloc(64, bytes);         /* bytes: a multiple of 64, as required */
    if (!b->mem) return 0;
    memset(b->mem, 0, bytes);                          /* every pad starts (and stays) zero */
    b->Kt = b->mem;      b->Vt = b->Kt + cd;     b->P = b->Vt + cd;
    b->dP = b->P + pp;   b->Apad = b->dP + pp;   b->Cedge = b->Apad + ap;
    return 1;
}

#undef ROUND_LINE
#undef LINE

static void SFX(attention_forward_tiles)(idx_t B, idx_t H, idx_t T, idx_t D, REAL scale, int causal,
                                         const REAL *q, attn_layout lq, const REAL *k, attn_layout lk,
                                         const REAL *v, attn_layout lv, REAL *out, attn_layout lo,
                                         REAL *lse, REAL *p)
{
    idx_t BH = B * H;
    UKR_T ukr = GET_UKR();
    #pragma omp parallel if((double)BH * T * T * D > ATTENTION_PARALLEL_WORK)
    {
        SFX(tiles_t) b;
        int ok = SFX(tiles_alloc)(&b, T, D);
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
            SFX(tiles_gemm)(ukr, T, b.Tc, D, scale, qh, lq.row, 1, b.Kt, b.Tc, b.P, b.Tcc, 0, b.Apad, b.Cedge);
            SFX(attn_softmax_rows)(T, b.Tcc, causal, b.P, lse + bh * T, NULL);
            if (p) SFX(keep_probabilities)(T, b.Tcc, b.P, p + bh * T * T);
            SFX(tiles_gemm)(ukr, T, D, T, 1, b.P, b.Tcc, 1, v + HEAD(lv, bi, h), lv.row, oh, lo.row,
                            0, b.Apad, b.Cedge);
        }
        free(b.mem);
    }
}

static void SFX(attention_backward_tiles)(idx_t B, idx_t H, idx_t T, idx_t D, REAL scale, int causal,
                                          const REAL *dout, attn_layout ldo, const REAL *q, attn_layout lq,
                                          const REAL *k, attn_layout lk, const REAL *v, attn_layout lv,
                                          const REAL *out, attn_layout lo, const REAL *lse, const REAL *p,
                                          REAL *dq, attn_layout ldq, REAL *dk, attn_layout ldk,
                                          REAL *dv, attn_layout ldv)
{
    idx_t BH = B * H;
    UKR_T ukr = GET_UKR();
    #pragma omp parallel if((double)BH * T * T * D > ATTENTION_PARALLEL_WORK)
    {
        SFX(tiles_t) b;
        int ok = SFX(tiles_alloc)(&b, T, D);
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
                SFX(tiles_gemm)(ukr, T, b.Tc, D, scale, qh, lq.row, 1, b.Kt, b.Tc, b.P, b.Tcc, 0, b.Apad, b.Cedge);
                SFX(attn_softmax_rows)(T, b.Tcc, causal, b.P, NULL, lse + bh * T);
            }
            /* dv = P^T dout (P^T: rs 1, cs ldp; the moved-back last tile reads no column past T) */
            SFX(tiles_gemm)(ukr, T, D, T, 1, Ph, 1, ldp, douth, ldo.row, dvh, ldv.row, 0, b.Apad, b.Cedge);
            /* dP = dout v^T, then dS = P * (dP - delta), delta_i = dout_i . out_i */
            SFX(transpose)(T, D, vh, lv.row, b.Vt, b.Tc);
            SFX(tiles_gemm)(ukr, T, b.Tc, D, 1, douth, ldo.row, 1, b.Vt, b.Tc, b.dP, b.Tcc, 0, b.Apad, b.Cedge);
            SFX(softmax_grad_rows)(T, D, b.Tcc, causal, Ph, ldp, b.dP, douth, ldo.row, outh, lo.row);
            /* dq = scale * dS k;  dk = scale * dS^T q (k, q read in place) */
            SFX(tiles_gemm)(ukr, T, D, T, scale, b.dP, b.Tcc, 1, kh, lk.row, dqh, ldq.row, 0, b.Apad, b.Cedge);
            SFX(tiles_gemm)(ukr, T, D, T, scale, b.dP, 1, b.Tcc, qh, lq.row, dkh, ldk.row, 0, b.Apad, b.Cedge);
        }
        free(b.mem);
    }
}
