/* attention_impl.h: the body of attention.c, written once for any element type.
 *
 * Included twice by attention.c, once per REAL_BITS (real.h: REAL, SFX, VEXP, LOG, MR, NR).
 * Read attention.c first: it states the math; this file is the code, top-down: the entry
 * points and the general algorithm (any T, any D) with its three products, then the tile
 * path for short sequences (attention_tiles_impl.h). The helpers both paths use are in
 * attention_common_impl.h. T here is always the token count, REAL the element type.
 */
#include "real.h"
#include "attention_common_impl.h"   /* fill_nan, attn_softmax_rows, keep_probabilities, softmax_grad_rows */

/* the tile path (attention_tiles_impl.h), taken when tile_kernel finds a micro-kernel tk (its
 * function and its tile, mr x nr) whose tile fits T and D (see TILES_MAX_T in attention.c) */
typedef struct {
    UKR_T ukr;
    idx_t mr, nr;
} SFX(tile_kernel_t);
static int SFX(tile_kernel)(idx_t T, idx_t D, SFX(tile_kernel_t) *tk);   /* 0: none fits */
static void SFX(attention_forward_tiles)(const SFX(tile_kernel_t) *tk, idx_t B, idx_t H, idx_t T, idx_t D,
                                         REAL scale, int causal,
                                         const REAL *q, attn_layout lq, const REAL *k, attn_layout lk,
                                         const REAL *v, attn_layout lv, REAL *out, attn_layout lo,
                                         REAL *lse, REAL *p);
static void SFX(attention_backward_tiles)(const SFX(tile_kernel_t) *tk, idx_t B, idx_t H, idx_t T, idx_t D,
                                          REAL scale, int causal,
                                          const REAL *dout, attn_layout ldo, const REAL *q, attn_layout lq,
                                          const REAL *k, attn_layout lk, const REAL *v, attn_layout lv,
                                          const REAL *out, attn_layout lo, const REAL *lse, const REAL *p,
                                          REAL *dq, attn_layout ldq, REAL *dk, attn_layout ldk,
                                          REAL *dv, attn_layout ldv);

/* the three products of the general path, defined below */
static void SFX(attn_scores)(idx_t T, idx_t D, idx_t ld, REAL scale, int causal,
                             const REAL *q, idx_t ld_q, const REAL *kt, REAL *S);
static void SFX(attn_rows_times)(idx_t T, idx_t D, idx_t ld, REAL alpha, int causal,
                                 const REAL *P, const REAL *V, idx_t ld_v, REAL *C, idx_t ld_c);
static void SFX(attn_cols_times)(idx_t T, idx_t D, idx_t ld, REAL alpha, int causal,
                                 const REAL *P, const REAL *X, idx_t ld_x, REAL *C, idx_t ld_c);

void SFX(attention_forward)(idx_t B, idx_t H, idx_t T, idx_t D, REAL scale, int causal,
                            const REAL *q, attn_layout lq, const REAL *k, attn_layout lk,
                            const REAL *v, attn_layout lv, REAL *out, attn_layout lo, REAL *lse, REAL *p)
{
    SFX(tile_kernel_t) tk;
    if (SFX(tile_kernel)(T, D, &tk)) {
        SFX(attention_forward_tiles)(&tk, B, H, T, D, scale, causal, q, lq, k, lk, v, lv, out, lo, lse, p);
        return;
    }
    idx_t BH = B * H;
    /* threads only for enough work: waking a team costs more than a tiny attention */
    #pragma omp parallel if((double)BH * T * T * D > ATTENTION_PARALLEL_WORK)
    {
        idx_t ld = SCORE_LD(T);
        REAL *S = (REAL *)SCRATCH_ALLOC((size_t)(T * ld + D * ld) * sizeof(REAL)); /* scores, then k^T */
        REAL *kt = S ? S + T * ld : NULL;
        #pragma omp for schedule(dynamic, 4)
        for (idx_t bh = 0; bh < BH; bh++) {
            idx_t b = bh / H, h = bh % H;
            REAL *oh = out + HEAD(lo, b, h);
            if (!S) {                                              /* out of memory: NaN, never garbage */
                SFX(fill_nan)(T, D, oh, lo.row);
                continue;
            }
            const REAL *qh = q + HEAD(lq, b, h), *kh = k + HEAD(lk, b, h), *vh = v + HEAD(lv, b, h);
            SFX(transpose)(T, D, kh, lk.row, kt, ld);             /* kt (D x T, row stride ld) = k^T */
            SFX(attn_scores)(T, D, ld, scale, causal, qh, lq.row, kt, S);
            SFX(attn_softmax_rows)(T, ld, causal, S, lse + bh * T, NULL);  /* P = softmax(S), over S */
            if (p) SFX(keep_probabilities)(T, ld, S, p + bh * T * T);
            SFX(attn_rows_times)(T, D, ld, (REAL)1, causal, S, vh, lv.row, oh, lo.row);
        }
        free(S);
    }
}

void SFX(attention_backward)(idx_t B, idx_t H, idx_t T, idx_t D, REAL scale, int causal,
                             const REAL *dout, attn_layout ldo, const REAL *q, attn_layout lq,
                             const REAL *k, attn_layout lk, const REAL *v, attn_layout lv,
                             const REAL *out, attn_layout lo, const REAL *lse, const REAL *p,
                             REAL *dq, attn_layout ldq, REAL *dk, attn_layout ldk,
                             REAL *dv, attn_layout ldv)
{
    SFX(tile_kernel_t) tk;
    if (SFX(tile_kernel)(T, D, &tk)) {
        SFX(attention_backward_tiles)(&tk, B, H, T, D, scale, causal, dout, ldo, q, lq, k, lk, v, lv,
                                      out, lo, lse, p, dq, ldq, dk, ldk, dv, ldv);
        return;
    }
    idx_t BH = B * H;
    #pragma omp parallel if((double)BH * T * T * D > ATTENTION_PARALLEL_WORK)
    {
        idx_t ld = SCORE_LD(T);
        REAL *P = (REAL *)SCRATCH_ALLOC((size_t)T * ld * sizeof(REAL));  /* probabilities */
        REAL *dP = (REAL *)SCRATCH_ALLOC((size_t)T * ld * sizeof(REAL)); /* dP, then dS in place */
        REAL *xt = (REAL *)SCRATCH_ALLOC((size_t)D * ld * sizeof(REAL));  /* k^T, then v^T */
        int ok = P && dP && xt;
        #pragma omp for schedule(dynamic, 4)
        for (idx_t bh = 0; bh < BH; bh++) {
            idx_t b = bh / H, h = bh % H;
            REAL *dqh = dq + HEAD(ldq, b, h), *dkh = dk + HEAD(ldk, b, h), *dvh = dv + HEAD(ldv, b, h);
            if (!ok) {
                SFX(fill_nan)(T, D, dqh, ldq.row);
                SFX(fill_nan)(T, D, dkh, ldk.row);
                SFX(fill_nan)(T, D, dvh, ldv.row);
                continue;
            }
            const REAL *qh = q + HEAD(lq, b, h), *kh = k + HEAD(lk, b, h), *vh = v + HEAD(lv, b, h);
            const REAL *douth = dout + HEAD(ldo, b, h), *outh = out + HEAD(lo, b, h);
            /* in the forward pass P = softmax(S) was used, and kept in p or dropped: then
             * rebuild it from lse */
            const REAL *Ph = P;                                    /* this head's P, row stride ldp */
            idx_t ldp = ld;
            if (p) {
                Ph = p + bh * T * T;
                ldp = T;
            } else {
                SFX(transpose)(T, D, kh, lk.row, xt, ld);         /* xt (D x T) = k^T */
                SFX(attn_scores)(T, D, ld, scale, causal, qh, lq.row, xt, P);
                SFX(attn_softmax_rows)(T, ld, causal, P, NULL, lse + bh * T);  /* P = exp(S - lse) */
            }
            /* out = P v, so dv = P^T dout and dP = dout v^T */
            SFX(attn_cols_times)(T, D, ldp, (REAL)1, causal, Ph, douth, ldo.row, dvh, ldv.row);
            SFX(transpose)(T, D, vh, lv.row, xt, ld);             /* xt = v^T */
            SFX(attn_scores)(T, D, ld, (REAL)1, causal, douth, ldo.row, xt, dP);
            /* P = softmax(S) row-wise, so dS = P * (dP - delta), delta_i = dout_i . out_i */
            SFX(softmax_grad_rows)(T, D, ld, causal, Ph, ldp, dP, douth, ldo.row, outh, lo.row);
            /* S = scale * q k^T, so dq = scale * dS k and dk = scale * dS^T q */
            SFX(attn_rows_times)(T, D, ld, scale, causal, dP, kh, lk.row, dqh, ldq.row);
            SFX(attn_cols_times)(T, D, ld, scale, causal, dP, qh, lq.row, dkh, ldk.row);
        }
        free(P);
        free(dP);
        free(xt);
    }
}

/* C = alpha * op(A) op(B) on the calling thread (beta = 0: C write-only). */
#define GEMM1(M, N, K, alpha, A, rs_a, cs_a, B, rs_b, cs_b, C, rs_c)                 \
    SFX(gemm_packed)((M), (N), (K), (alpha), (A), (rs_a), (cs_a), (B), (rs_b), (cs_b), \
                     (REAL)0, (C), (rs_c), 1, 1)

/* S = scale * q k^T, (T x T) with row stride ld, given q (T x D, row stride ld_q) and
 * kt = k^T (D x T, row stride ld too: the products with k^T then read rows of kt with unit
 * stride, and GEMM v3 needs no packing at these sizes; the transpose's row stores start on
 * a cache line, as the scores' do);
 * causal: row block [i0, i1) only needs columns 0 .. i1. */
static void SFX(attn_scores)(idx_t T, idx_t D, idx_t ld, REAL scale, int causal,
                             const REAL *q, idx_t ld_q, const REAL *kt, REAL *S)
{
    if (!causal) {
        GEMM1(T, T, D, scale, q, ld_q, 1, kt, ld, 1, S, ld);
        return;
    }
    idx_t blk = CAUSAL_BLOCK;
    for (idx_t i0 = 0; i0 < T; i0 += blk) {
        idx_t i1 = i0 + blk < T ? i0 + blk : T;
        /* S[i0:i1, 0:i1] = scale * q[i0:i1] k[0:i1]^T */
        GEMM1(i1 - i0, i1, D, scale, q + i0 * ld_q, ld_q, 1, kt, ld, 1, S + i0 * ld, ld);
    }
}

/* C (T x D, row stride ld_c) = alpha * P V (V: T x D, row stride ld_v): out = P v (or
 * dq = scale * dS k); causal: row i only needs columns j <= i of P, so row block
 * [i0, i1) multiplies P[i0:i1, 0:i1] V[0:i1]. */
static void SFX(attn_rows_times)(idx_t T, idx_t D, idx_t ld, REAL alpha, int causal,
                                 const REAL *P, const REAL *V, idx_t ld_v, REAL *C, idx_t ld_c)
{
    if (!causal) {
        GEMM1(T, D, T, alpha, P, ld, 1, V, ld_v, 1, C, ld_c);
        return;
    }
    idx_t blk = CAUSAL_BLOCK;
    for (idx_t i0 = 0; i0 < T; i0 += blk) {
        idx_t i1 = i0 + blk < T ? i0 + blk : T;
        GEMM1(i1 - i0, D, i1, alpha, P + i0 * ld, ld, 1, V, ld_v, 1, C + i0 * ld_c, ld_c);
    }
}

/* C (T x D, row stride ld_c) = alpha * P^T X (X: T x D, row stride ld_x): dv = P^T dout
 * (or dk = scale * dS^T q); causal: column j of P is nonzero only for rows i >= j, so
 * block [j0, j1) uses rows j0 .. T. */
static void SFX(attn_cols_times)(idx_t T, idx_t D, idx_t ld, REAL alpha, int causal,
                                 const REAL *P, const REAL *X, idx_t ld_x, REAL *C, idx_t ld_c)
{
    if (!causal) {
        GEMM1(T, D, T, alpha, P, 1, ld, X, ld_x, 1, C, ld_c);  /* P^T: rs = 1, cs = ld */
        return;
    }
    idx_t blk = CAUSAL_BLOCK;
    for (idx_t j0 = 0; j0 < T; j0 += blk) {
        idx_t j1 = j0 + blk < T ? j0 + blk : T;
        GEMM1(j1 - j0, D, T - j0, alpha, P + j0 * ld + j0, 1, ld, X + j0 * ld_x, ld_x, 1,
              C + j0 * ld_c, ld_c);
    }
}

#undef GEMM1

#include "attention_tiles_impl.h"   /* the tile path for short sequences */
#include "real_end.h"
