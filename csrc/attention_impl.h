/* attention_impl.h: the body of attention.c, written once for any element type.
 *
 * Included twice by attention.c with REAL (float or double), SFX(name), VEXP and LOG
 * defined. Read attention.c first: it states the math; this file is the code.
 * T here is always the token count, REAL the element type.
 */

/* C = alpha * op(A) op(B) on the calling thread (beta = 0: C write-only). */
#define GEMM1(M, N, K, alpha, A, rs_a, cs_a, B, rs_b, cs_b, C, rs_c)                 \
    SFX(gemm_packed)((M), (N), (K), (alpha), (A), (rs_a), (cs_a), (B), (rs_b), (cs_b), \
                     (REAL)0, (C), (rs_c), 1, 1)

/* kt (D x T) = k (T x D) transposed, so that the products with k^T read rows of kt
 * contiguously (GEMM v3 then needs no packing at these sizes). */
static void SFX(transpose_head)(idx_t T, idx_t D, const REAL *k, REAL *kt)
{
    SFX(transpose)(T, D, k, D, kt, T);
}

/* S = scale * q k^T, (T x T) with row stride T, given kt = k^T (D x T);
 * causal: row block [i0, i1) only needs columns 0 .. i1. */
static void SFX(attn_scores)(idx_t T, idx_t D, REAL scale, int causal,
                             const REAL *q, const REAL *kt, REAL *S)
{
    if (!causal) {
        GEMM1(T, T, D, scale, q, D, 1, kt, T, 1, S, T);
        return;
    }
    for (idx_t i0 = 0; i0 < T; i0 += CAUSAL_BLOCK) {
        idx_t i1 = i0 + CAUSAL_BLOCK < T ? i0 + CAUSAL_BLOCK : T;
        /* S[i0:i1, 0:i1] = scale * q[i0:i1] k[0:i1]^T */
        GEMM1(i1 - i0, i1, D, scale, q + i0 * D, D, 1, kt, T, 1, S + i0 * T, T);
    }
}

/* C (T x D) = alpha * P C-rows: out = P v (or dq = scale * dS k); causal: row i only
 * needs columns j <= i of P, so row block [i0, i1) multiplies P[i0:i1, 0:i1] V[0:i1]. */
static void SFX(attn_rows_times)(idx_t T, idx_t D, REAL alpha, int causal,
                                 const REAL *P, const REAL *V, REAL *C)
{
    if (!causal) {
        GEMM1(T, D, T, alpha, P, T, 1, V, D, 1, C, D);
        return;
    }
    for (idx_t i0 = 0; i0 < T; i0 += CAUSAL_BLOCK) {
        idx_t i1 = i0 + CAUSAL_BLOCK < T ? i0 + CAUSAL_BLOCK : T;
        GEMM1(i1 - i0, D, i1, alpha, P + i0 * T, T, 1, V, D, 1, C + i0 * D, D);
    }
}

/* C (T x D) = alpha * P^T X: dv = P^T dout (or dk = scale * dS^T q); causal: column
 * j of P is nonzero only for rows i >= j, so block [j0, j1) uses rows j0 .. T. */
static void SFX(attn_cols_times)(idx_t T, idx_t D, REAL alpha, int causal,
                                 const REAL *P, const REAL *X, REAL *C)
{
    if (!causal) {
        GEMM1(T, D, T, alpha, P, 1, T, X, D, 1, C, D);        /* P^T: rs = 1, cs = T */
        return;
    }
    for (idx_t j0 = 0; j0 < T; j0 += CAUSAL_BLOCK) {
        idx_t j1 = j0 + CAUSAL_BLOCK < T ? j0 + CAUSAL_BLOCK : T;
        GEMM1(j1 - j0, D, T - j0, alpha, P + j0 * T + j0, 1, T, X + j0 * D, D, 1, C + j0 * D, D);
    }
}

void SFX(attention_forward)(idx_t BH, idx_t T, idx_t D, REAL scale, int causal,
                            const REAL *q, const REAL *k, const REAL *v,
                            REAL *out, REAL *lse)
{
    #pragma omp parallel
    {
        REAL *S = (REAL *)malloc((size_t)T * (T + D) * sizeof(REAL)); /* scores, then k^T */
        REAL *kt = S ? S + T * T : NULL;
        #pragma omp for schedule(dynamic, 4)
        for (idx_t h = 0; h < BH; h++) {
            if (!S) continue;                                      /* reported below */
            const REAL *qh = q + h * T * D, *kh = k + h * T * D, *vh = v + h * T * D;
            SFX(transpose_head)(T, D, kh, kt);
            SFX(attn_scores)(T, D, scale, causal, qh, kt, S);
            for (idx_t i = 0; i < T; i++) {                        /* softmax of each row */
                REAL *row = S + i * T;
                idx_t n = causal ? i + 1 : T;                      /* columns i may see */
                REAL m = row[0];
                for (idx_t j = 1; j < n; j++) m = row[j] > m ? row[j] : m;
                REAL sum = VEXP(row, row, n, m);                   /* row = exp(row - m) */
                lse[h * T + i] = m + LOG(sum);
                REAL inv = (REAL)1 / sum;
                for (idx_t j = 0; j < n; j++) row[j] *= inv;
                for (idx_t j = n; j < T; j++) row[j] = 0;         /* the mask: exact zeros */
            }
            SFX(attn_rows_times)(T, D, (REAL)1, causal, S, vh, out + h * T * D);
        }
        if (!S) {                                                  /* out of memory: NaN, never garbage */
            #pragma omp for schedule(static)
            for (idx_t h = 0; h < BH; h++)
                for (idx_t i = 0; i < T * D; i++) out[h * T * D + i] = NAN;
        }
        free(S);
    }
}

void SFX(attention_backward)(idx_t BH, idx_t T, idx_t D, REAL scale, int causal,
                             const REAL *dout, const REAL *q, const REAL *k, const REAL *v,
                             const REAL *out, const REAL *lse,
                             REAL *dq, REAL *dk, REAL *dv)
{
    #pragma omp parallel
    {
        REAL *P = (REAL *)malloc((size_t)T * T * sizeof(REAL));   /* probabilities */
        REAL *dP = (REAL *)malloc((size_t)T * T * sizeof(REAL));  /* dP, then dS in place */
        REAL *delta = (REAL *)malloc((size_t)T * (1 + D) * sizeof(REAL)); /* delta, then k^T or v^T */
        REAL *xt = delta ? delta + T : NULL;
        int ok = P && dP && delta;
        #pragma omp for schedule(dynamic, 4)
        for (idx_t h = 0; h < BH; h++) {
            idx_t o = h * T * D;
            if (!ok) {
                for (idx_t i = 0; i < T * D; i++) dq[o + i] = dk[o + i] = dv[o + i] = NAN;
                continue;
            }
            /* in the forward pass P = softmax(S) was used and dropped; rebuild it from lse */
            SFX(transpose_head)(T, D, k + o, xt);
            SFX(attn_scores)(T, D, scale, causal, q + o, xt, P);
            for (idx_t i = 0; i < T; i++) {
                REAL *row = P + i * T, l = lse[h * T + i];
                idx_t n = causal ? i + 1 : T;
                VEXP(row, row, n, l);                              /* row = exp(row - lse) */
                for (idx_t j = n; j < T; j++) row[j] = 0;
            }
            /* out = P v, so dv = P^T dout and dP = dout v^T */
            SFX(attn_cols_times)(T, D, (REAL)1, causal, P, dout + o, dv + o);
            SFX(transpose_head)(T, D, v + o, xt);
            SFX(attn_scores)(T, D, (REAL)1, causal, dout + o, xt, dP);
            /* P = softmax(S) row-wise, so dS = P * (dP - delta), delta_i = dout_i . out_i */
            for (idx_t i = 0; i < T; i++) {
                REAL acc = 0;
                /* simd reduction: lanes sum separately, then together (an allowed reordering
                 * of this one sum; the rest of the build stays strict IEEE, no fast-math) */
                #pragma omp simd reduction(+:acc)
                for (idx_t d = 0; d < D; d++) acc += dout[o + i * D + d] * out[o + i * D + d];
                delta[i] = acc;
            }
            for (idx_t i = 0; i < T; i++) {
                REAL *ds = dP + i * T;
                const REAL *p = P + i * T;
                idx_t n = causal ? i + 1 : T;
                for (idx_t j = 0; j < n; j++) ds[j] = p[j] * (ds[j] - delta[i]);
                for (idx_t j = n; j < T; j++) ds[j] = 0;           /* never computed: zero it */
            }
            /* S = scale * q k^T, so dq = scale * dS k and dk = scale * dS^T q */
            SFX(attn_rows_times)(T, D, scale, causal, dP, k + o, dq + o);
            SFX(attn_cols_times)(T, D, scale, causal, dP, q + o, dk + o);
        }
        free(P);
        free(dP);
        free(delta);
    }
}

#undef GEMM1
