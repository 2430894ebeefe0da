/* gemm_fast_paths_impl.h: GEMM v3 outside the five loops, for one element type.
 *
 * Included at the end of gemm_packed_impl.h (same macros: real.h, MC, KC, NC); read that file
 * first. gemm_run takes one of these paths before (or instead of) the five loops:
 *   gemm_no_product      K = 0 or alpha = 0: C = beta * C
 *   gemm_small           tiny products: no packing, no micro-kernel
 *   gemm_direct          small products with row-major B: the micro-kernel on A and B in place,
 *                        edge tiles moved back instead of padded
 *   gemm_out_of_memory   no memory for the packed blocks: GEMM v2 (gemm_tiled.c)
 * and the epilogue, C += bias + R once C holds the whole product: gemm_epilogue (the entry
 * point), epi_at and epi_apply.
 */

/* ---- K = 0 or alpha = 0: no product, C = beta * C (beta == 0: C write-only) ---- */
static void SFX(gemm_no_product)(idx_t M, idx_t N, REAL beta, REAL *C, idx_t rs_c, idx_t cs_c,
                                 const SFX(epi_t) *epi)
{
    for (idx_t i = 0; i < M; i++)
        for (idx_t j = 0; j < N; j++) {
            REAL *cij = &C[i * rs_c + j * cs_c];
            *cij = (beta == 0) ? (REAL)0 : beta * *cij;
        }
    SFX(epi_apply)(epi, M, N, C, rs_c, cs_c);
}

/* ---- small products: no packing -------------------------------------------
 * For tiny products the packing and the thread start-up cost more than they save;
 * the v2 loop order (i-p-j, unit-stride inner loop when possible) is enough. */
static void SFX(gemm_small)(idx_t M, idx_t N, idx_t K, REAL alpha,
                            const REAL *A, idx_t rs_a, idx_t cs_a,
                            const REAL *B, idx_t rs_b, idx_t cs_b,
                            REAL beta, REAL *C, idx_t rs_c, idx_t cs_c, const SFX(epi_t) *epi)
{
    REAL row[SMALL_N_MAX];                    /* one row of alpha * A B, accumulated here */
    for (idx_t i = 0; i < M; i++) {
        for (idx_t j = 0; j < N; j++) row[j] = 0;
        for (idx_t p = 0; p < K; p++) {
            REAL a_ip = A[i * rs_a + p * cs_a];
            const REAL *b = B + p * rs_b;
            if (cs_b == 1)
                for (idx_t j = 0; j < N; j++) row[j] += a_ip * b[j];
            else
                for (idx_t j = 0; j < N; j++) row[j] += a_ip * b[j * cs_b];
        }
        for (idx_t j = 0; j < N; j++) {
            REAL *cij = &C[i * rs_c + j * cs_c];
            *cij = (beta == 0) ? alpha * row[j] : alpha * row[j] + beta * *cij;
        }
    }
    SFX(epi_apply)(epi, M, N, C, rs_c, cs_c);
}

/* ---- small and medium products with row-major B: no packing -------------------
 * The micro-kernel only broadcasts values of A, and reads B a row of NR at a time, so
 * when B's rows are contiguous (cs_b == 1) and the whole product is small enough to
 * live in L1/L2, it can run on A and B where they are.
 * Edges without copies: when fewer than MR rows (NR columns) are left, the last tile
 * is moved back to end exactly at row M (column N), overlapping the tile before it;
 * it is computed into a small buffer and only its new rows (columns) are merged into C.
 * (Only a product smaller than one tile, M < MR or N < NR, needs a zero-padded copy.)
 * Runs on the calling thread. Returns 0 when a buffer cannot be allocated. */
static int SFX(gemm_direct)(idx_t M, idx_t N, idx_t K, REAL alpha,
                            const REAL *A, idx_t rs_a, idx_t cs_a,
                            const REAL *B, idx_t rs_b,
                            REAL beta, REAL *C, idx_t rs_c, idx_t cs_c, const SFX(kernel_t) *k,
                            const SFX(epi_t) *epi)
{
    idx_t MR_ = k->mr, NR_ = k->nr;
    UKR_T ukr = k->ukr;
    REAL *a_pad = NULL, *b_pad = NULL;                     /* only for M < MR or N < NR */
    idx_t rs_bp = rs_b;
    if (M < MR_) {
        if (!(a_pad = (REAL *)malloc((size_t)MR_ * K * sizeof(REAL)))) return 0;
        SFX(pack_a)(k, M, K, A, rs_a, cs_a, a_pad);
        A = a_pad; rs_a = 1; cs_a = MR_;
    }
    if (N < NR_) {
        if (!(b_pad = (REAL *)malloc((size_t)K * NR_ * sizeof(REAL)))) { free(a_pad); return 0; }
        SFX(pack_b_panel)(k, K, N, B, rs_b, 1, b_pad);
        B = b_pad; rs_bp = NR_;
    }
    REAL edge[EDGE_MAX];
    const REAL *bias = epi ? epi->bias : NULL;
    for (idx_t j = 0; j < N; j += NR_) {
        idx_t j_tile = j + NR_ <= N || N < NR_ ? j : N - NR_; /* last tile moved back */
        idx_t new_j = j - j_tile;                          /* its first column not done yet */
        idx_t nr = (N < NR_ ? N : j_tile + NR_) - j;
        for (idx_t i = 0; i < M; i += MR_) {
            idx_t i_tile = i + MR_ <= M || M < MR_ ? i : M - MR_;
            idx_t new_i = i - i_tile;
            idx_t mr = (M < MR_ ? M : i_tile + MR_) - i;
            const REAL *a = A + i_tile * rs_a, *b = B + j_tile;
            if (new_i == 0 && new_j == 0 && mr == MR_ && nr == NR_) {   /* the bias in registers */
                ukr(K, alpha, a, rs_a, cs_a, b, rs_bp, beta, C + i * rs_c + j * cs_c, rs_c, cs_c,
                    bias ? bias + j : NULL);
            } else if (beta == 0 && M >= MR_ && N >= NR_) {
                /* C write-only: the overlapping part of a moved-back tile is recomputed with
                 * the same operands in the same order (and the same bias), so it is
                 * bit-identical and can simply be written again; no buffer, no merge */
                ukr(K, alpha, a, rs_a, cs_a, b, rs_bp, beta, C + i_tile * rs_c + j_tile * cs_c, rs_c, cs_c,
                    bias ? bias + j_tile : NULL);
            } else {
                SFX(epi_t) e = {bias ? bias + j : NULL, NULL, 0, 0};
                ukr(K, (REAL)1, a, rs_a, cs_a, b, rs_bp, (REAL)0, edge, NR_, 1, NULL);
                SFX(merge_edge)(k, mr, nr, alpha, edge + new_i * NR_ + new_j, beta,
                                C + i * rs_c + j * cs_c, rs_c, cs_c);
                SFX(epi_apply)(&e, mr, nr, C + i * rs_c + j * cs_c, rs_c, cs_c);
            }
        }
    }
    if (epi && epi->res) {                              /* R last, over all of C (see above) */
        SFX(epi_t) r = *epi;
        r.bias = NULL;
        SFX(epi_apply)(&r, M, N, C, rs_c, cs_c);
    }
    free(a_pad);
    free(b_pad);
    return 1;
}

/* ---- out of memory for the packed blocks: fall back to v2, then the epilogue ---- */
static void SFX(gemm_out_of_memory)(idx_t M, idx_t N, idx_t K, REAL alpha,
                                    const REAL *A, idx_t rs_a, idx_t cs_a,
                                    const REAL *B, idx_t rs_b, idx_t cs_b,
                                    REAL beta, REAL *C, idx_t rs_c, idx_t cs_c, const SFX(epi_t) *epi)
{
    SFX(gemm_tiled)(M, N, K, alpha, A, rs_a, cs_a, B, rs_b, cs_b, beta, C, rs_c, cs_c);
    SFX(epi_apply)(epi, M, N, C, rs_c, cs_c);
}

/* ---- the epilogue: C += bias (per column) + R, once C holds the whole product ----
 * A layer's y = x W^T + b, or a residual block's x + (h W^T + b), without a separate pass
 * over all of C later. Each full tile gets its bias inside the micro-kernel, added to the
 * accumulators before the store (adding it to values just stored would read them back
 * through store-to-load forwarding, which stalls after 256-bit stores); an edge tile gets it
 * after the merge. Each block of C (at most MC rows, in L2) gets R once the block is final,
 * row by row. R is not added per tile: a tile touches 6 rows of R, 6 cache lines far apart
 * that the hardware prefetcher does not see coming, and R (the residual stream, written long
 * before) is usually no longer in cache; row by row it streams. (benchmarks/README.md has
 * the measurements.)
 *
 * gemm_epilogue: C = alpha * A B + beta * C + bias (per column, may be NULL) + R (may be NULL): a layer's
 * x W^T + b, and a residual block's x + (h W^T + b), without a second pass over C. */
void SFX(gemm_epilogue)(idx_t M, idx_t N, idx_t K, REAL alpha,
                        const REAL *A, idx_t rs_a, idx_t cs_a,
                        const REAL *B, idx_t rs_b, idx_t cs_b,
                        REAL beta, REAL *C, idx_t rs_c, idx_t cs_c,
                        const REAL *bias, idx_t cs_bias, const REAL *R, idx_t rs_r, idx_t cs_r, int nthreads)
{
    REAL *bias_copy = NULL;
    if (bias && cs_bias != 1) {                    /* the micro-kernel loads the bias as vectors */
        if (!(bias_copy = (REAL *)malloc((size_t)N * sizeof(REAL)))) {
            SFX(gemm_run)(M, N, K, alpha, A, rs_a, cs_a, B, rs_b, cs_b, beta, C, rs_c, cs_c, NULL, nthreads);
            for (idx_t i = 0; i < M; i++)          /* out of memory: the plain loops instead */
                for (idx_t j = 0; j < N; j++)
                    C[i * rs_c + j * cs_c] += bias[j * cs_bias] + (R ? R[i * rs_r + j * cs_r] : (REAL)0);
            return;
        }
        for (idx_t j = 0; j < N; j++) bias_copy[j] = bias[j * cs_bias];
        bias = bias_copy;
    }
    SFX(epi_t) epi = {bias, R, rs_r, cs_r};
    SFX(gemm_run)(M, N, K, alpha, A, rs_a, cs_a, B, rs_b, cs_b, beta, C, rs_c, cs_c,
                  bias || R ? &epi : NULL, nthreads);
    free(bias_copy);
}

/* the epilogue for the block of C starting at row i, column j */
static SFX(epi_t) SFX(epi_at)(const SFX(epi_t) *e, idx_t i, idx_t j)
{
    SFX(epi_t) out = *e;
    if (out.bias) out.bias += j;
    if (out.res) out.res += i * out.rs_res + j * out.cs_res;
    return out;
}

/* C[0:m, 0:n] += bias + res (C and the epilogue both start at the same element) */
static void SFX(epi_apply)(const SFX(epi_t) *e, idx_t m, idx_t n, REAL *C, idx_t rs_c, idx_t cs_c)
{
    if (!e || (!e->bias && !e->res)) return;
    for (idx_t i = 0; i < m; i++) {
        REAL *c = C + i * rs_c;
        if (e->bias && cs_c == 1)                               /* the usual case: unit strides */
            for (idx_t j = 0; j < n; j++) c[j] += e->bias[j];
        else if (e->bias)
            for (idx_t j = 0; j < n; j++) c[j * cs_c] += e->bias[j];
        if (e->res) {
            const REAL *r = e->res + i * e->rs_res;
            if (cs_c == 1 && e->cs_res == 1)
                for (idx_t j = 0; j < n; j++) c[j] += r[j];
            else
                for (idx_t j = 0; j < n; j++) c[j * cs_c] += r[j * e->cs_res];
        }
    }
}
