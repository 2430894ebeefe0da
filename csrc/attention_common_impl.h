/* attention_common_impl.h: what both attention paths use (the general one, attention_impl.h,
 * and the tile path, attention_tiles_impl.h), for one element type (real.h).
 * Included by attention_impl.h; T is the token count, D the head dim, REAL the element type. */

/* out of memory for the scratch buffers: a head's result (T x D, row stride ld) becomes NaN,
 * never garbage */
static void SFX(fill_nan)(idx_t T, idx_t D, REAL *x, idx_t ld)
{
    for (idx_t i = 0; i < T; i++)
        for (idx_t d = 0; d < D; d++) x[i * ld + d] = NAN;
}

/* the probabilities of one head (T x T, row stride ld) copied to p (T x T, contiguous), for the
 * backward: keeping them costs T*T values per head and saves the backward the scores' product
 * and their exps */
static void SFX(keep_probabilities)(idx_t T, idx_t ld, const REAL *P, REAL *p)
{
    for (idx_t i = 0; i < T; i++) memcpy(p + i * T, P + i * ld, (size_t)T * sizeof(REAL));
}

/* P (the T x T block, row stride ld) = the probabilities from the scores already in P:
 * forward (lse_out != NULL): row max, log-sum-exp (stored), normalise;
 * backward (lse_in != NULL): exp(S - lse). Masked entries become exact zeros. Nothing
 * outside the T x T block is read or written (the tile path's padding is left as it is). */
static void SFX(attn_softmax_rows)(idx_t T, idx_t ld, int causal, REAL *P, REAL *lse_out, const REAL *lse_in)
{
    for (idx_t i = 0; i < T; i++) {
        REAL *row = P + i * ld;
        idx_t n = causal ? i + 1 : T;                          /* columns i may see */
        if (lse_out) {
            REAL m = row[0];
            #pragma omp simd reduction(max:m)
            for (idx_t j = 1; j < n; j++) m = row[j] > m ? row[j] : m;
            REAL sum = VEXP(row, row, n, m);                   /* row = exp(row - m) */
            lse_out[i] = m + LOG(sum);
            REAL inv = (REAL)1 / sum;
            for (idx_t j = 0; j < n; j++) row[j] *= inv;
        } else {
            VEXP(row, row, n, lse_in[i]);                      /* row = exp(row - lse) */
        }
        for (idx_t j = n; j < T; j++) row[j] = 0;              /* the mask: exact zeros */
    }
}

/* dP (T x T block, row stride ld) becomes dS = P * (dP - delta) row by row (P: row stride
 * ld_p), delta_i = dout_i . out_i (= sum_j P_ij dP_ij: the softmax backward without P's row
 * sums); masked entries (causal: j > i) are written as exact zeros. */
static void SFX(softmax_grad_rows)(idx_t T, idx_t D, idx_t ld, int causal, const REAL *P, idx_t ld_p,
                                   REAL *dP, const REAL *dout, idx_t ld_dout, const REAL *out, idx_t ld_out)
{
    for (idx_t i = 0; i < T; i++) {
        const REAL *dor = dout + i * ld_dout, *our = out + i * ld_out;
        REAL delta = 0;
        /* simd reduction: lanes sum separately, then together (an allowed reordering
         * of this one sum; the rest of the build stays strict IEEE, no fast-math) */
        #pragma omp simd reduction(+:delta)
        for (idx_t d = 0; d < D; d++) delta += dor[d] * our[d];
        REAL *ds = dP + i * ld;
        const REAL *p = P + i * ld_p;
        idx_t n = causal ? i + 1 : T;
        for (idx_t j = 0; j < n; j++) ds[j] = p[j] * (ds[j] - delta);
        for (idx_t j = n; j < T; j++) ds[j] = 0;
    }
}
