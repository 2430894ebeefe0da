/* gemm_packed_impl.h: the body of GEMM v3, written once for any element type.
 *
 * Included twice by gemm_packed.c, once per type, with these defined:
 *   T        the element type (float or double)
 *   SFX(n)   n with the type suffix (n##_f32 or n##_f64)
 *   MR, NR   the micro-kernel tile (gemm_microkernel.h)
 *   MC, KC, NC  the cache blocks (see gemm_packed.c for how they were chosen)
 *   UKR_T, GET_UKR()  the micro-kernel type and the run-time dispatcher
 * Read gemm_packed.c first: it explains the algorithm; this file is the code.
 */

/* ---- packing ------------------------------------------------------------
 * pack_a: the mc x kc block of A at A (any strides) -> Ap, as ceil(mc / MR)
 * micro-panels of MR rows. Inside a micro-panel the values are stored column by
 * column: Ap[p * MR + i] = A[i, p]; that is exactly the order in which the
 * micro-kernel reads them. Rows past mc are filled with 0 so the micro-kernel
 * can always run a full MR x NR tile (the zeros add nothing).
 * A transpose (rs_a == 1) only changes which index walks memory contiguously. */
static void SFX(pack_a)(idx_t mc, idx_t kc, const T *A, idx_t rs_a, idx_t cs_a, T *Ap)
{
    for (idx_t i0 = 0; i0 < mc; i0 += MR) {
        idx_t mr = mc - i0 < MR ? mc - i0 : MR;
        const T *a = A + i0 * rs_a;
        if (mr == MR && rs_a == 1) {              /* op(A) = A^T of a row-major array */
            for (idx_t p = 0; p < kc; p++)
                for (idx_t i = 0; i < MR; i++)
                    Ap[p * MR + i] = a[p * cs_a + i];
        } else if (mr == MR && cs_a == 1) {       /* row-major A: read each row contiguously */
            if (PACK_A_ROWMAJOR(kc, a, rs_a, Ap)) {   /* SIMD transpose where there is one */
                Ap += MR * kc;
                continue;
            }
            for (idx_t i = 0; i < MR; i++)
                for (idx_t p = 0; p < kc; p++)
                    Ap[p * MR + i] = a[i * rs_a + p];
        } else {
            for (idx_t p = 0; p < kc; p++) {
                for (idx_t i = 0; i < mr; i++)
                    Ap[p * MR + i] = a[i * rs_a + p * cs_a];
                for (idx_t i = mr; i < MR; i++)
                    Ap[p * MR + i] = 0;
            }
        }
        Ap += MR * kc;
    }
}

/* pack_b_panel: one kc x NR micro-panel of B (columns j0 .. j0 + nr) -> Bp,
 * stored row by row: Bp[p * NR + j] = B[p, j]; columns past nr are 0. */
static void SFX(pack_b_panel)(idx_t kc, idx_t nr, const T *B, idx_t rs_b, idx_t cs_b, T *Bp)
{
    if (nr == NR && cs_b == 1) {                   /* rows of B contiguous: plain copies */
        for (idx_t p = 0; p < kc; p++)
            for (idx_t j = 0; j < NR; j++)
                Bp[p * NR + j] = B[p * rs_b + j];
    } else if (nr == NR && rs_b == 1) {            /* op(B) = B^T of a row-major array */
        for (idx_t j = 0; j < NR; j++)
            for (idx_t p = 0; p < kc; p++)
                Bp[p * NR + j] = B[p + j * cs_b];
    } else {
        for (idx_t p = 0; p < kc; p++) {
            for (idx_t j = 0; j < nr; j++)
                Bp[p * NR + j] = B[p * rs_b + j * cs_b];
            for (idx_t j = nr; j < NR; j++)
                Bp[p * NR + j] = 0;
        }
    }
}

/* C[0:mr, 0:nr] = alpha * edge + beta * C (beta == 0: C write-only); edge is MR x NR. */
static void SFX(merge_edge)(idx_t mr, idx_t nr, T alpha, const T *edge, T beta,
                            T *c, idx_t rs_c, idx_t cs_c)
{
    for (idx_t i = 0; i < mr; i++)
        for (idx_t j = 0; j < nr; j++) {
            T *cij = &c[i * rs_c + j * cs_c];
            *cij = (beta == 0) ? alpha * edge[i * NR + j] : alpha * edge[i * NR + j] + beta * *cij;
        }
}

/* ---- the epilogue: C += bias (per column) + R, once C holds the whole product ----
 * A layer's y = x W^T + b, or a residual block's x + (h W^T + b), without a separate pass
 * over all of C later: each full tile gets its bias inside the micro-kernel, added to the
 * accumulators before the store (added after the store, the values were read back right
 * behind 256-bit stores, which stalled store-to-load forwarding: slower than a separate
 * pass); an edge tile gets it after the merge. Each block of C (at most MC rows, in L2) gets
 * R once the block is final, row by row. R is not added per tile: a tile touches 6 rows of
 * R, 6 cache lines far apart that the hardware prefetcher does not see coming, and R
 * (the residual stream, written long before) is usually no longer in cache; row by row it
 * streams. Both parts are optional (NULL); `bias` and `res` point at the values for C's
 * element (0, 0), so callers working on a block of C shift them first (SFX(epi_at)). */
typedef struct {
    const T *bias;           /* bias[j] is added to column j (contiguous), or NULL */
    const T *res;            /* res[i * rs_res + j * cs_res] is added to C[i, j], or NULL */
    idx_t rs_res, cs_res;
} SFX(epi_t);

/* the epilogue for the block of C starting at row i, column j */
static SFX(epi_t) SFX(epi_at)(const SFX(epi_t) *e, idx_t i, idx_t j)
{
    SFX(epi_t) out = *e;
    if (out.bias) out.bias += j;
    if (out.res) out.res += i * out.rs_res + j * out.cs_res;
    return out;
}

/* C[0:m, 0:n] += bias + res (C and the epilogue both start at the same element) */
static void SFX(epi_apply)(const SFX(epi_t) *e, idx_t m, idx_t n, T *C, idx_t rs_c, idx_t cs_c)
{
    if (!e || (!e->bias && !e->res)) return;
    for (idx_t i = 0; i < m; i++) {
        T *c = C + i * rs_c;
        if (e->bias && cs_c == 1)                               /* the usual case: unit strides */
            for (idx_t j = 0; j < n; j++) c[j] += e->bias[j];
        else if (e->bias)
            for (idx_t j = 0; j < n; j++) c[j * cs_c] += e->bias[j];
        if (e->res) {
            const T *r = e->res + i * e->rs_res;
            if (cs_c == 1 && e->cs_res == 1)
                for (idx_t j = 0; j < n; j++) c[j] += r[j];
            else
                for (idx_t j = 0; j < n; j++) c[j * cs_c] += r[j * e->cs_res];
        }
    }
}

/* ---- macro-kernel --------------------------------------------------------
 * C[0:mc, panels jp0..jp1 of NR columns] (+)= alpha * Ap Bp: loop over the tiles,
 * one micro-kernel call each. The jr loop is outside the ir loop so one kc x NR
 * micro-panel of B stays in L1 while the mc x kc block of A streams from L2.
 * Edge tiles (fewer than MR rows or NR columns left) are computed into a small
 * buffer and only the valid part is merged into C. `bias` (NULL unless this is the last
 * slice of the sum) is added to each tile as soon as it is final. */
static void SFX(macro_kernel)(idx_t mc, idx_t nc, idx_t kc, idx_t jp0, idx_t jp1, T alpha,
                              const T *Ap, const T *Bp, T beta, T *C, idx_t rs_c, idx_t cs_c,
                              UKR_T ukr, const T *bias)
{
    T edge[MR * NR];
    for (idx_t jp = jp0; jp < jp1; jp++) {
        idx_t j = jp * NR;
        idx_t nr = nc - j < NR ? nc - j : NR;
        for (idx_t i = 0; i < mc; i += MR) {
            idx_t mr = mc - i < MR ? mc - i : MR;
            T *c = C + i * rs_c + j * cs_c;
            if (mr == MR && nr == NR) {                          /* the bias in registers */
                ukr(kc, alpha, Ap + i * kc, 1, MR, Bp + j * kc, NR, beta, c, rs_c, cs_c,
                    bias ? bias + j : NULL);
            } else {
                ukr(kc, (T)1, Ap + i * kc, 1, MR, Bp + j * kc, NR, (T)0, edge, NR, 1, NULL);
                SFX(merge_edge)(mr, nr, alpha, edge, beta, c, rs_c, cs_c);
                if (bias) {                                        /* the bias of the valid part */
                    SFX(epi_t) e = {bias + j, NULL, 0, 0};
                    SFX(epi_apply)(&e, mr, nr, c, rs_c, cs_c);
                }
            }
        }
    }
}

/* ---- small products: no packing -------------------------------------------
 * For tiny products the packing and the thread start-up cost more than they save;
 * the v2 loop order (i-p-j, unit-stride inner loop when possible) is enough. */
static void SFX(gemm_small)(idx_t M, idx_t N, idx_t K, T alpha,
                            const T *A, idx_t rs_a, idx_t cs_a,
                            const T *B, idx_t rs_b, idx_t cs_b,
                            T beta, T *C, idx_t rs_c, idx_t cs_c, const SFX(epi_t) *epi)
{
    T row[SMALL_N_MAX];                    /* one row of alpha * A B, accumulated here */
    for (idx_t i = 0; i < M; i++) {
        for (idx_t j = 0; j < N; j++) row[j] = 0;
        for (idx_t p = 0; p < K; p++) {
            T a_ip = A[i * rs_a + p * cs_a];
            const T *b = B + p * rs_b;
            if (cs_b == 1)
                for (idx_t j = 0; j < N; j++) row[j] += a_ip * b[j];
            else
                for (idx_t j = 0; j < N; j++) row[j] += a_ip * b[j * cs_b];
        }
        for (idx_t j = 0; j < N; j++) {
            T *cij = &C[i * rs_c + j * cs_c];
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
static int SFX(gemm_direct)(idx_t M, idx_t N, idx_t K, T alpha,
                            const T *A, idx_t rs_a, idx_t cs_a,
                            const T *B, idx_t rs_b,
                            T beta, T *C, idx_t rs_c, idx_t cs_c, UKR_T ukr,
                            const SFX(epi_t) *epi)
{
    T *a_pad = NULL, *b_pad = NULL;                     /* only for M < MR or N < NR */
    idx_t rs_bp = rs_b;
    if (M < MR) {
        if (!(a_pad = (T *)malloc((size_t)MR * K * sizeof(T)))) return 0;
        SFX(pack_a)(M, K, A, rs_a, cs_a, a_pad);
        A = a_pad; rs_a = 1; cs_a = MR;
    }
    if (N < NR) {
        if (!(b_pad = (T *)malloc((size_t)K * NR * sizeof(T)))) { free(a_pad); return 0; }
        SFX(pack_b_panel)(K, N, B, rs_b, 1, b_pad);
        B = b_pad; rs_bp = NR;
    }
    T edge[MR * NR];
    const T *bias = epi ? epi->bias : NULL;
    for (idx_t j = 0; j < N; j += NR) {
        idx_t j_tile = j + NR <= N || N < NR ? j : N - NR; /* last tile moved back */
        idx_t new_j = j - j_tile;                          /* its first column not done yet */
        idx_t nr = (N < NR ? N : j_tile + NR) - j;
        for (idx_t i = 0; i < M; i += MR) {
            idx_t i_tile = i + MR <= M || M < MR ? i : M - MR;
            idx_t new_i = i - i_tile;
            idx_t mr = (M < MR ? M : i_tile + MR) - i;
            const T *a = A + i_tile * rs_a, *b = B + j_tile;
            if (new_i == 0 && new_j == 0 && mr == MR && nr == NR) {   /* the bias in registers */
                ukr(K, alpha, a, rs_a, cs_a, b, rs_bp, beta, C + i * rs_c + j * cs_c, rs_c, cs_c,
                    bias ? bias + j : NULL);
            } else if (beta == 0 && M >= MR && N >= NR) {
                /* C write-only: the overlapping part of a moved-back tile is recomputed with
                 * the same operands in the same order (and the same bias), so it is
                 * bit-identical and can simply be written again; no buffer, no merge */
                ukr(K, alpha, a, rs_a, cs_a, b, rs_bp, beta, C + i_tile * rs_c + j_tile * cs_c, rs_c, cs_c,
                    bias ? bias + j_tile : NULL);
            } else {
                SFX(epi_t) e = {bias ? bias + j : NULL, NULL, 0, 0};
                ukr(K, (T)1, a, rs_a, cs_a, b, rs_bp, (T)0, edge, NR, 1, NULL);
                SFX(merge_edge)(mr, nr, alpha, edge + new_i * NR + new_j, beta,
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

/* Loops 5 and 4 around packing and the macro-kernel, run by thread `tid` of a team of
 * `nt` (nt = 1: called directly, no OpenMP at all). Work is split by hand, statically:
 * thread tid packs B~ micro-panels tid, tid + nt, ... and takes a contiguous share of
 * the (row block, column share) units; a barrier separates packing B~ from using it
 * and using it from repacking it. Ap is this thread's private A~ buffer. */
static void SFX(gemm_loops)(idx_t M, idx_t N, idx_t K, T alpha,
                            const T *A, idx_t rs_a, idx_t cs_a,
                            const T *B, idx_t rs_b, idx_t cs_b,
                            T beta, T *C, idx_t rs_c, idx_t cs_c,
                            idx_t mc, idx_t n_ic, idx_t n_js, T *Bp, T *Ap, UKR_T ukr,
                            const SFX(epi_t) *epi, int tid, int nt)
{
    idx_t n_units = n_ic * n_js;
    idx_t u0 = n_units * tid / nt, u1 = n_units * (tid + 1) / nt;
    for (idx_t jc = 0; jc < N; jc += NC) {                      /* loop 5: NC columns (L3) */
        idx_t nc = N - jc < NC ? N - jc : NC;
        idx_t n_panels = (nc + NR - 1) / NR;
        for (idx_t pc = 0; pc < K; pc += KC) {                  /* loop 4: KC of the sum */
            idx_t kc = K - pc < KC ? K - pc : KC;
            T beta_pc = pc == 0 ? beta : (T)1;                  /* later slices accumulate */

            /* pack B[pc:pc+kc, jc:jc+nc] -> B~, the threads sharing the micro-panels */
            for (idx_t jp = tid; jp < n_panels; jp += nt) {
                idx_t j = jp * NR;
                idx_t nr = nc - j < NR ? nc - j : NR;
                SFX(pack_b_panel)(kc, nr, B + pc * rs_b + (jc + j) * cs_b, rs_b, cs_b, Bp + j * kc);
            }
            team_barrier(nt);                                   /* B~ complete before use */

            idx_t packed_ic = -1;
            for (idx_t u = u0; u < u1; u++) {                   /* loop 3: MC rows (L2) */
                idx_t ic_blk = u / n_js, js = u % n_js;
                idx_t ic = ic_blk * mc;
                idx_t mcur = M - ic < mc ? M - ic : mc;
                if (ic_blk != packed_ic) {
                    SFX(pack_a)(mcur, kc, A + ic * rs_a + pc * cs_a, rs_a, cs_a, Ap);
                    packed_ic = ic_blk;
                }
                idx_t jp0 = n_panels * js / n_js, jp1 = n_panels * (js + 1) / n_js;
                /* loops 2 and 1 (JR, IR) and the micro-kernel; with the last slice of the sum,
                 * the epilogue: the bias per tile inside, then R over the whole block */
                int last = pc + kc >= K;
                SFX(epi_t) e = {NULL, NULL, 0, 0};
                if (epi) e = SFX(epi_at)(epi, ic, jc + jp0 * NR);
                T *c_blk = C + ic * rs_c + (jc + jp0 * NR) * cs_c;
                SFX(macro_kernel)(mcur, nc, kc, jp0, jp1, alpha, Ap, Bp, beta_pc,
                                  C + ic * rs_c + jc * cs_c, rs_c, cs_c, ukr,
                                  last && e.bias ? e.bias - jp0 * NR : NULL);
                if (last && e.res) {
                    idx_t j_end = jp1 * NR < nc ? jp1 * NR : nc;
                    e.bias = NULL;
                    SFX(epi_apply)(&e, mcur, j_end - jp0 * NR, c_blk, rs_c, cs_c);
                }
            }
            team_barrier(nt);                                   /* nobody repacks B~ in use */
        }
    }
}

/* ---- the driver: the five loops of Goto's algorithm around the micro-kernel ---- */
static void SFX(gemm_run)(idx_t M, idx_t N, idx_t K, T alpha,
                          const T *A, idx_t rs_a, idx_t cs_a,
                          const T *B, idx_t rs_b, idx_t cs_b,
                          T beta, T *C, idx_t rs_c, idx_t cs_c, const SFX(epi_t) *epi, int nthreads)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0) {                    /* no product: C = beta * C */
        for (idx_t i = 0; i < M; i++)
            for (idx_t j = 0; j < N; j++) {
                T *cij = &C[i * rs_c + j * cs_c];
                *cij = (beta == 0) ? (T)0 : beta * *cij;
            }
        SFX(epi_apply)(epi, M, N, C, rs_c, cs_c);
        return;
    }
    if (N <= SMALL_N_MAX && (double)M * N * K <= SMALL_FLOPS) {
        SFX(gemm_small)(M, N, K, alpha, A, rs_a, cs_a, B, rs_b, cs_b, beta, C, rs_c, cs_c, epi);
        return;
    }
    int nt = nthreads > 0 ? nthreads : miniclip_max_threads();
    if ((double)M * N * K < PARALLEL_FLOPS) nt = 1; /* too little work to share */
    UKR_T ukr = GET_UKR();
    if (nt == 1 && cs_b == 1 && K <= DIRECT_K_MAX && (double)M * N * K <= DIRECT_FLOPS
            && SFX(gemm_direct)(M, N, K, alpha, A, rs_a, cs_a, B, rs_b, beta, C, rs_c, cs_c, ukr, epi))
        return;

    /* Row blocks of C (the IC loop, split between threads): n_ic blocks of mc rows,
     * mc <= MC, a multiple of MR, and n_ic a multiple of the thread count so that
     * every thread gets the same number of rows. With fewer rows than that
     * (n_ic < nt) the threads split the columns (the JR loop) of each block instead. */
    idx_t n_ic = (M + MC - 1) / MC;
    if (nt > 1 && M >= (idx_t)MR * nt) n_ic = (n_ic + nt - 1) / nt * nt;
    idx_t mc = (M + n_ic - 1) / n_ic;
    mc = (mc + MR - 1) / MR * MR;
    n_ic = (M + mc - 1) / mc;
    idx_t n_js = n_ic < nt ? nt : 1;

    idx_t kc_max = K < KC ? K : KC;
    idx_t nc_max = N < NC ? N : NC;
    size_t b_size = (size_t)kc_max * ((nc_max + NR - 1) / NR * NR) * sizeof(T);
    size_t a_size = (size_t)mc * kc_max * sizeof(T);
    b_size = (b_size + 63) / 64 * 64;
    a_size = (a_size + 63) / 64 * 64;              /* each thread's A block starts 64-byte aligned */
    T *Bp = (T *)aligned_alloc(64, b_size);        /* shared: every thread reads all of B~ */
    T *Ap_all = (T *)aligned_alloc(64, a_size * nt); /* private: one A~ block per thread */
    if (!Bp || !Ap_all) {                          /* out of memory: fall back to v2 */
        free(Bp); free(Ap_all);
        SFX(gemm_tiled)(M, N, K, alpha, A, rs_a, cs_a, B, rs_b, cs_b, beta, C, rs_c, cs_c);
        SFX(epi_apply)(epi, M, N, C, rs_c, cs_c);
        return;
    }

    if (nt == 1) {                                 /* no team, no barriers */
        SFX(gemm_loops)(M, N, K, alpha, A, rs_a, cs_a, B, rs_b, cs_b, beta, C, rs_c, cs_c,
                        mc, n_ic, n_js, Bp, Ap_all, ukr, epi, 0, 1);
    } else {
        #pragma omp parallel num_threads(nt)
        SFX(gemm_loops)(M, N, K, alpha, A, rs_a, cs_a, B, rs_b, cs_b, beta, C, rs_c, cs_c,
                        mc, n_ic, n_js, Bp, (T *)((char *)Ap_all + a_size * omp_thread_id()), ukr,
                        epi, omp_thread_id(), omp_team_size());
    }
    free(Bp);
    free(Ap_all);
}

void SFX(gemm_packed)(idx_t M, idx_t N, idx_t K, T alpha,
                      const T *A, idx_t rs_a, idx_t cs_a,
                      const T *B, idx_t rs_b, idx_t cs_b,
                      T beta, T *C, idx_t rs_c, idx_t cs_c, int nthreads)
{
    SFX(gemm_run)(M, N, K, alpha, A, rs_a, cs_a, B, rs_b, cs_b, beta, C, rs_c, cs_c, NULL, nthreads);
}

/* C = alpha * A B + beta * C + bias (per column, may be NULL) + R (may be NULL): a layer's
 * x W^T + b, and a residual block's x + (h W^T + b), without a second pass over C. */
void SFX(gemm_epilogue)(idx_t M, idx_t N, idx_t K, T alpha,
                        const T *A, idx_t rs_a, idx_t cs_a,
                        const T *B, idx_t rs_b, idx_t cs_b,
                        T beta, T *C, idx_t rs_c, idx_t cs_c,
                        const T *bias, idx_t cs_bias, const T *R, idx_t rs_r, idx_t cs_r, int nthreads)
{
    T *bias_copy = NULL;
    if (bias && cs_bias != 1) {                    /* the micro-kernel loads the bias as vectors */
        if (!(bias_copy = (T *)malloc((size_t)N * sizeof(T)))) {
            SFX(gemm_run)(M, N, K, alpha, A, rs_a, cs_a, B, rs_b, cs_b, beta, C, rs_c, cs_c, NULL, nthreads);
            for (idx_t i = 0; i < M; i++)          /* out of memory: the plain loops instead */
                for (idx_t j = 0; j < N; j++)
                    C[i * rs_c + j * cs_c] += bias[j * cs_bias] + (R ? R[i * rs_r + j * cs_r] : (T)0);
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

/* Strided batched GEMM: the (B, H, T, D) products of attention and batched matmul. */
void SFX(gemm_batched)(idx_t nbatch, idx_t M, idx_t N, idx_t K, T alpha,
                       const T *A, idx_t bs_a, idx_t rs_a, idx_t cs_a,
                       const T *B, idx_t bs_b, idx_t rs_b, idx_t cs_b,
                       T beta, T *C, idx_t bs_c, idx_t rs_c, idx_t cs_c)
{
    int nt = miniclip_max_threads();
    double flops = (double)M * N * K;
    /* Many products, or small ones: one whole product per thread (no sharing inside
     * a product, so no barriers). Few large products: all threads inside each. */
    if (nt > 1 && nbatch > 1 && (nbatch >= 4 * nt || flops < 4 * PARALLEL_FLOPS)) {
        #pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
        for (idx_t b = 0; b < nbatch; b++)
            SFX(gemm_packed)(M, N, K, alpha, A + b * bs_a, rs_a, cs_a, B + b * bs_b, rs_b, cs_b,
                             beta, C + b * bs_c, rs_c, cs_c, 1);
    } else {
        for (idx_t b = 0; b < nbatch; b++)
            SFX(gemm_packed)(M, N, K, alpha, A + b * bs_a, rs_a, cs_a, B + b * bs_b, rs_b, cs_b,
                             beta, C + b * bs_c, rs_c, cs_c, nt);
    }
}
