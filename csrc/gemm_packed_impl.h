/* gemm_packed_impl.h: the body of GEMM v3, written once for any element type.
 *
 * Included twice by gemm_packed.c, once per type, with REAL_BITS (real.h: REAL, SFX, UKR_T,
 * GET_UKR, and MR, NR: the generic / AVX2 tile; MR512, NR512, GET_UKR512: the AVX-512 tile
 * and kernel, NULL when it may not run) and these defined:
 *   MC, KC, NC               the cache blocks for the MR x NR tile (gemm_packed.c says why)
 *   MC512, KC512, NC512      the cache blocks for the MR512 x NR512 tile
 * The tile is chosen at run time (the kernel_t below), so the loops read it from `k`.
 * Read gemm_packed.c first: it explains the algorithm; this file is the code, top-down:
 *   choose_kernel   the micro-kernel for this CPU with its tile and cache blocks
 *   gemm_run        the driver: the special cases, the blocking, the threads
 *   gemm_loops      loops 5, 4, 3 around packing
 *   macro_kernel    loops 2, 1 around the micro-kernel (gemm_microkernel.c)
 *   pack_a, pack_b_panel, merge_edge
 *   gemm_packed, gemm_batched   the entry points
 * and then, in gemm_fast_paths_impl.h, what is not the five loops: gemm_small, gemm_direct,
 * the epilogue (gemm_epilogue, epi_at, epi_apply) and the out-of-memory fallbacks.
 */
#include "real.h"

/* The micro-kernel a product runs, with its tile and the cache blocks chosen for that tile:
 * the AVX-512 kernel's MR512 x NR512 or the generic / AVX2 kernel's MR x NR. Below, the locals
 * MR_, NR_, MC_, KC_, NC_ are this call's (k->mr, ...); real.h's MR and NR stay the 6-row tile. */
typedef struct {
    UKR_T ukr;
    idx_t mr, nr;            /* the tile: C[0:mr, 0:nr] in registers */
    idx_t mc, kc, nc;        /* the cache blocks: A~ mc x kc (L2), B~ kc x nc (L3) */
} SFX(kernel_t);

static SFX(kernel_t) SFX(choose_kernel)(void)
{
    UKR_T wide = GET_UKR512();
    if (wide) return (SFX(kernel_t)){wide, MR512, NR512, MC512, KC512, NC512};
    return (SFX(kernel_t)){GET_UKR(), MR, NR, MC, KC, NC};
}
#define EDGE_MAX (MR512 * NR512 > MR * NR ? MR512 * NR512 : MR * NR)  /* the largest tile */

/* What the epilogue adds once C holds the whole product (gemm_fast_paths_impl.h): bias per
 * column and R per element, either may be NULL. `bias` and `res` point at the values for C's
 * element (0, 0); callers working on a block of C shift them first (SFX(epi_at)). */
typedef struct {
    const REAL *bias;        /* bias[j] is added to column j (contiguous), or NULL */
    const REAL *res;         /* res[i * rs_res + j * cs_res] is added to C[i, j], or NULL */
    idx_t rs_res, cs_res;
} SFX(epi_t);

/* defined below */
static void SFX(gemm_loops)(idx_t M, idx_t N, idx_t K, REAL alpha,
                            const REAL *A, idx_t rs_a, idx_t cs_a,
                            const REAL *B, idx_t rs_b, idx_t cs_b,
                            REAL beta, REAL *C, idx_t rs_c, idx_t cs_c,
                            idx_t mc, idx_t n_ic, idx_t n_js, REAL *Bp, REAL *Ap, const SFX(kernel_t) *k,
                            const SFX(epi_t) *epi, int tid, int nt);
static void SFX(macro_kernel)(idx_t mc, idx_t nc, idx_t kc, idx_t jp0, idx_t jp1, REAL alpha,
                              const REAL *Ap, const REAL *Bp, REAL beta, REAL *C, idx_t rs_c, idx_t cs_c,
                              const SFX(kernel_t) *k, const REAL *bias);
static void SFX(pack_a)(const SFX(kernel_t) *k, idx_t mc, idx_t kc, const REAL *A, idx_t rs_a, idx_t cs_a,
                        REAL *Ap);
static void SFX(pack_b_panel)(const SFX(kernel_t) *k, idx_t kc, idx_t nr, const REAL *B, idx_t rs_b,
                              idx_t cs_b, REAL *Bp);
static void SFX(merge_edge)(const SFX(kernel_t) *k, idx_t mr, idx_t nr, REAL alpha, const REAL *edge,
                            REAL beta, REAL *c, idx_t rs_c, idx_t cs_c);
/* in gemm_fast_paths_impl.h (always_inline: the two rare cases of gemm_run are compiled into
 * it as if written there, so moving them out of the driver does not change its machine code) */
__attribute__((always_inline))
static inline void SFX(gemm_no_product)(idx_t M, idx_t N, REAL beta, REAL *C, idx_t rs_c, idx_t cs_c,
                                 const SFX(epi_t) *epi);
static void SFX(gemm_small)(idx_t M, idx_t N, idx_t K, REAL alpha,
                            const REAL *A, idx_t rs_a, idx_t cs_a,
                            const REAL *B, idx_t rs_b, idx_t cs_b,
                            REAL beta, REAL *C, idx_t rs_c, idx_t cs_c, const SFX(epi_t) *epi);
static int SFX(gemm_direct)(idx_t M, idx_t N, idx_t K, REAL alpha,
                            const REAL *A, idx_t rs_a, idx_t cs_a,
                            const REAL *B, idx_t rs_b,
                            REAL beta, REAL *C, idx_t rs_c, idx_t cs_c, const SFX(kernel_t) *k,
                            const SFX(epi_t) *epi);
__attribute__((always_inline))
static inline void SFX(gemm_out_of_memory)(idx_t M, idx_t N, idx_t K, REAL alpha,
                                    const REAL *A, idx_t rs_a, idx_t cs_a,
                                    const REAL *B, idx_t rs_b, idx_t cs_b,
                                    REAL beta, REAL *C, idx_t rs_c, idx_t cs_c, const SFX(epi_t) *epi);
static SFX(epi_t) SFX(epi_at)(const SFX(epi_t) *e, idx_t i, idx_t j);
static void SFX(epi_apply)(const SFX(epi_t) *e, idx_t m, idx_t n, REAL *C, idx_t rs_c, idx_t cs_c);

/* ---- the driver: the five loops of Goto's algorithm around the micro-kernel ----
 * C = alpha * A B + beta * C (+ the epilogue, when epi is not NULL) on nthreads threads
 * (<= 0: the OpenMP default). */
static void SFX(gemm_run)(idx_t M, idx_t N, idx_t K, REAL alpha,
                          const REAL *A, idx_t rs_a, idx_t cs_a,
                          const REAL *B, idx_t rs_b, idx_t cs_b,
                          REAL beta, REAL *C, idx_t rs_c, idx_t cs_c, const SFX(epi_t) *epi, int nthreads)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0) {                    /* no product: C = beta * C */
        SFX(gemm_no_product)(M, N, beta, C, rs_c, cs_c, epi);
        return;
    }
    if (N <= SMALL_N_MAX && (double)M * N * K <= SMALL_FLOPS) {
        SFX(gemm_small)(M, N, K, alpha, A, rs_a, cs_a, B, rs_b, cs_b, beta, C, rs_c, cs_c, epi);
        return;
    }
    int nt = nthreads > 0 ? nthreads : miniclip_max_threads();
    if ((double)M * N * K < PARALLEL_FLOPS) nt = 1; /* too little work to share */
    SFX(kernel_t) k = SFX(choose_kernel)();
    idx_t MR_ = k.mr, NR_ = k.nr, MC_ = k.mc, KC_ = k.kc, NC_ = k.nc;
    if (nt == 1 && cs_b == 1 && K <= DIRECT_K_MAX && (double)M * N * K <= DIRECT_FLOPS
            && SFX(gemm_direct)(M, N, K, alpha, A, rs_a, cs_a, B, rs_b, beta, C, rs_c, cs_c, &k, epi))
        return;

    /* Row blocks of C (the IC loop, split between threads): n_ic blocks of mc rows,
     * mc <= MC, a multiple of MR, and n_ic a multiple of the thread count so that
     * every thread gets the same number of rows. With fewer rows than that
     * (n_ic < nt) the threads split the columns (the JR loop) of each block instead.
     * They also do when all rows fit one block and splitting the columns balances the work
     * better: rows come in whole tiles of MR, so M = 256 on 2 threads is 10 + 9 tiles of 14
     * rows (the slower thread at 91% of even), while its N = 1024 columns are 16 + 16 panels. */
    idx_t n_ic = (M + MC_ - 1) / MC_;
    idx_t row_tiles = (M + MR_ - 1) / MR_, panels = (N + NR_ - 1) / NR_;
    int split_columns = nt > 1 && M <= MC_
        && row_tiles * ((panels + nt - 1) / nt) < (row_tiles + nt - 1) / nt * panels;
    if (nt > 1 && M >= MR_ * nt && !split_columns) n_ic = (n_ic + nt - 1) / nt * nt;
    idx_t mc = (M + n_ic - 1) / n_ic;
    mc = (mc + MR_ - 1) / MR_ * MR_;
    n_ic = (M + mc - 1) / mc;
    idx_t n_js = n_ic < nt ? nt : 1;

    idx_t kc_max = K < KC_ ? K : KC_;
    idx_t nc_max = N < NC_ ? N : NC_;
    size_t b_size = (size_t)kc_max * ((nc_max + NR_ - 1) / NR_ * NR_) * sizeof(REAL);
    size_t a_size = (size_t)mc * kc_max * sizeof(REAL);
    b_size = (b_size + 63) / 64 * 64;
    a_size = (a_size + 63) / 64 * 64;              /* each thread's A block starts 64-byte aligned */
    REAL *Bp = (REAL *)packing_buffer(0, b_size);      /* shared: every thread reads all of B~ */
    REAL *Ap_all = (REAL *)packing_buffer(1, a_size * nt); /* private: one A~ block per thread */
    if (!Bp || !Ap_all) {
        SFX(gemm_out_of_memory)(M, N, K, alpha, A, rs_a, cs_a, B, rs_b, cs_b, beta, C, rs_c, cs_c, epi);
        return;
    }

    if (nt == 1) {                                 /* no team, no barriers */
        SFX(gemm_loops)(M, N, K, alpha, A, rs_a, cs_a, B, rs_b, cs_b, beta, C, rs_c, cs_c,
                        mc, n_ic, n_js, Bp, Ap_all, &k, epi, 0, 1);
    } else {
        #pragma omp parallel num_threads(nt)
        SFX(gemm_loops)(M, N, K, alpha, A, rs_a, cs_a, B, rs_b, cs_b, beta, C, rs_c, cs_c,
                        mc, n_ic, n_js, Bp, (REAL *)((char *)Ap_all + a_size * omp_thread_id()), &k,
                        epi, omp_thread_id(), omp_team_size());
    }
}

/* Loops 5, 4 and 3 around packing and the macro-kernel, run by thread `tid` of a team of
 * `nt` (nt = 1: called directly, no OpenMP at all). Work is split by hand, statically:
 * thread tid packs B~ micro-panels tid, tid + nt, ... and takes a contiguous share of
 * the (row block, column share) units; a barrier separates packing B~ from using it
 * and using it from repacking it. Ap is this thread's private A~ buffer. */
static void SFX(gemm_loops)(idx_t M, idx_t N, idx_t K, REAL alpha,
                            const REAL *A, idx_t rs_a, idx_t cs_a,
                            const REAL *B, idx_t rs_b, idx_t cs_b,
                            REAL beta, REAL *C, idx_t rs_c, idx_t cs_c,
                            idx_t mc, idx_t n_ic, idx_t n_js, REAL *Bp, REAL *Ap, const SFX(kernel_t) *k,
                            const SFX(epi_t) *epi, int tid, int nt)
{
    idx_t NR_ = k->nr, KC_ = k->kc, NC_ = k->nc;
    idx_t n_units = n_ic * n_js;
    idx_t u0 = n_units * tid / nt, u1 = n_units * (tid + 1) / nt;
    for (idx_t jc = 0; jc < N; jc += NC_) {                     /* loop 5: NC columns (L3) */
        idx_t nc = N - jc < NC_ ? N - jc : NC_;
        idx_t n_panels = (nc + NR_ - 1) / NR_;
        for (idx_t pc = 0; pc < K; pc += KC_) {                 /* loop 4: KC of the sum */
            idx_t kc = K - pc < KC_ ? K - pc : KC_;
            REAL beta_pc = pc == 0 ? beta : (REAL)1;            /* later slices accumulate */

            /* pack B[pc:pc+kc, jc:jc+nc] -> B~, the threads sharing the micro-panels */
            for (idx_t jp = tid; jp < n_panels; jp += nt) {
                idx_t j = jp * NR_;
                idx_t nr = nc - j < NR_ ? nc - j : NR_;
                SFX(pack_b_panel)(k, kc, nr, B + pc * rs_b + (jc + j) * cs_b, rs_b, cs_b, Bp + j * kc);
            }
            team_barrier(nt);                                   /* B~ complete before use */

            idx_t packed_ic = -1;
            for (idx_t u = u0; u < u1; u++) {                   /* loop 3: MC rows (L2) */
                idx_t ic_blk = u / n_js, js = u % n_js;
                idx_t ic = ic_blk * mc;
                idx_t mcur = M - ic < mc ? M - ic : mc;
                if (ic_blk != packed_ic) {
                    SFX(pack_a)(k, mcur, kc, A + ic * rs_a + pc * cs_a, rs_a, cs_a, Ap);
                    packed_ic = ic_blk;
                }
                idx_t jp0 = n_panels * js / n_js, jp1 = n_panels * (js + 1) / n_js;
                /* loops 2 and 1 (JR, IR) and the micro-kernel; with the last slice of the sum,
                 * the epilogue: the bias per tile inside, then R over the whole block */
                int last = pc + kc >= K;
                SFX(epi_t) e = {NULL, NULL, 0, 0};
                if (epi) e = SFX(epi_at)(epi, ic, jc + jp0 * NR_);
                REAL *c_blk = C + ic * rs_c + (jc + jp0 * NR_) * cs_c;
                SFX(macro_kernel)(mcur, nc, kc, jp0, jp1, alpha, Ap, Bp, beta_pc,
                                  C + ic * rs_c + jc * cs_c, rs_c, cs_c, k,
                                  last && e.bias ? e.bias - jp0 * NR_ : NULL);
                if (last && e.res) {
                    idx_t j_end = jp1 * NR_ < nc ? jp1 * NR_ : nc;
                    e.bias = NULL;
                    SFX(epi_apply)(&e, mcur, j_end - jp0 * NR_, c_blk, rs_c, cs_c);
                }
            }
            team_barrier(nt);                                   /* nobody repacks B~ in use */
        }
    }
}

/* ---- macro-kernel: loops 2 and 1 ----------------------------------------------
 * C[0:mc, panels jp0..jp1 of NR columns] (+)= alpha * Ap Bp: loop over the tiles,
 * one micro-kernel call each. The jr loop is outside the ir loop so one kc x NR
 * micro-panel of B stays in L1 while the mc x kc block of A streams from L2.
 * Edge tiles (fewer than MR rows or NR columns left) are computed into a small
 * buffer and only the valid part is merged into C. `bias` (NULL unless this is the last
 * slice of the sum) is added to each tile as soon as it is final. */
static void SFX(macro_kernel)(idx_t mc, idx_t nc, idx_t kc, idx_t jp0, idx_t jp1, REAL alpha,
                              const REAL *Ap, const REAL *Bp, REAL beta, REAL *C, idx_t rs_c, idx_t cs_c,
                              const SFX(kernel_t) *k, const REAL *bias)
{
    idx_t MR_ = k->mr, NR_ = k->nr;
    UKR_T ukr = k->ukr;
    REAL edge[EDGE_MAX];
    for (idx_t jp = jp0; jp < jp1; jp++) {                      /* loop 2: NR columns (L1) */
        idx_t j = jp * NR_;
        idx_t nr = nc - j < NR_ ? nc - j : NR_;
        for (idx_t i = 0; i < mc; i += MR_) {                   /* loop 1: MR rows */
            idx_t mr = mc - i < MR_ ? mc - i : MR_;
            REAL *c = C + i * rs_c + j * cs_c;
            if (mr == MR_ && nr == NR_) {                        /* the bias in registers */
                ukr(kc, alpha, Ap + i * kc, 1, MR_, Bp + j * kc, NR_, beta, c, rs_c, cs_c,
                    bias ? bias + j : NULL);
            } else {
                ukr(kc, (REAL)1, Ap + i * kc, 1, MR_, Bp + j * kc, NR_, (REAL)0, edge, NR_, 1, NULL);
                SFX(merge_edge)(k, mr, nr, alpha, edge, beta, c, rs_c, cs_c);
                if (bias) {                                        /* the bias of the valid part */
                    SFX(epi_t) e = {bias + j, NULL, 0, 0};
                    SFX(epi_apply)(&e, mr, nr, c, rs_c, cs_c);
                }
            }
        }
    }
}

/* ---- packing ------------------------------------------------------------
 * pack_a: the mc x kc block of A at A (any strides) -> Ap, as ceil(mc / MR)
 * micro-panels of MR rows. Inside a micro-panel the values are stored column by
 * column: Ap[p * MR + i] = A[i, p]; that is exactly the order in which the
 * micro-kernel reads them. Rows past mc are filled with 0 so the micro-kernel
 * can always run a full MR x NR tile (the zeros add nothing).
 * A transpose (rs_a == 1) only changes which index walks memory contiguously. */
static void SFX(pack_a)(const SFX(kernel_t) *k, idx_t mc, idx_t kc, const REAL *A, idx_t rs_a, idx_t cs_a,
                        REAL *Ap)
{
    idx_t MR_ = k->mr;
    for (idx_t i0 = 0; i0 < mc; i0 += MR_) {
        idx_t mr = mc - i0 < MR_ ? mc - i0 : MR_;
        const REAL *a = A + i0 * rs_a;
        if (mr == MR_ && rs_a == 1) {             /* op(A) = A^T of a row-major array */
            for (idx_t p = 0; p < kc; p++)
                for (idx_t i = 0; i < MR_; i++)
                    Ap[p * MR_ + i] = a[p * cs_a + i];
        } else if (mr == MR_ && cs_a == 1) {      /* row-major A: read each row contiguously */
            if (SFX(gemm_pack_a_rowmajor)(MR_, kc, a, rs_a, Ap)) {   /* SIMD transpose where there is one */
                Ap += MR_ * kc;
                continue;
            }
            for (idx_t i = 0; i < MR_; i++)
                for (idx_t p = 0; p < kc; p++)
                    Ap[p * MR_ + i] = a[i * rs_a + p];
        } else {
            for (idx_t p = 0; p < kc; p++) {
                for (idx_t i = 0; i < mr; i++)
                    Ap[p * MR_ + i] = a[i * rs_a + p * cs_a];
                for (idx_t i = mr; i < MR_; i++)
                    Ap[p * MR_ + i] = 0;
            }
        }
        Ap += MR_ * kc;
    }
}

/* pack_b_panel: one kc x NR micro-panel of B (columns j0 .. j0 + nr) -> Bp,
 * stored row by row: Bp[p * NR + j] = B[p, j]; columns past nr are 0. */
static void SFX(pack_b_panel)(const SFX(kernel_t) *k, idx_t kc, idx_t nr, const REAL *B, idx_t rs_b,
                              idx_t cs_b, REAL *Bp)
{
    idx_t NR_ = k->nr;
    if (nr == NR_ && cs_b == 1) {                  /* rows of B contiguous: plain copies */
        for (idx_t p = 0; p < kc; p++)             /* (a loop: memcpy's call costs more than NR values) */
            for (idx_t j = 0; j < NR_; j++)
                Bp[p * NR_ + j] = B[p * rs_b + j];
    } else if (nr == NR_ && rs_b == 1) {           /* op(B) = B^T of a row-major array */
        for (idx_t j = 0; j < NR_; j++)
            for (idx_t p = 0; p < kc; p++)
                Bp[p * NR_ + j] = B[p + j * cs_b];
    } else {
        for (idx_t p = 0; p < kc; p++) {
            for (idx_t j = 0; j < nr; j++)
                Bp[p * NR_ + j] = B[p * rs_b + j * cs_b];
            for (idx_t j = nr; j < NR_; j++)
                Bp[p * NR_ + j] = 0;
        }
    }
}

/* C[0:mr, 0:nr] = alpha * edge + beta * C (beta == 0: C write-only); edge is MR x NR. */
static void SFX(merge_edge)(const SFX(kernel_t) *k, idx_t mr, idx_t nr, REAL alpha, const REAL *edge,
                            REAL beta, REAL *c, idx_t rs_c, idx_t cs_c)
{
    idx_t NR_ = k->nr;
    for (idx_t i = 0; i < mr; i++)
        for (idx_t j = 0; j < nr; j++) {
            REAL *cij = &c[i * rs_c + j * cs_c];
            *cij = (beta == 0) ? alpha * edge[i * NR_ + j] : alpha * edge[i * NR_ + j] + beta * *cij;
        }
}

/* ---- the entry points (miniclip.h) ---- */
void SFX(gemm_packed)(idx_t M, idx_t N, idx_t K, REAL alpha,
                      const REAL *A, idx_t rs_a, idx_t cs_a,
                      const REAL *B, idx_t rs_b, idx_t cs_b,
                      REAL beta, REAL *C, idx_t rs_c, idx_t cs_c, int nthreads)
{
    SFX(gemm_run)(M, N, K, alpha, A, rs_a, cs_a, B, rs_b, cs_b, beta, C, rs_c, cs_c, NULL, nthreads);
}

/* Strided batched GEMM: the (B, H, T, D) products of attention and batched matmul. */
void SFX(gemm_batched)(idx_t nbatch, idx_t M, idx_t N, idx_t K, REAL alpha,
                       const REAL *A, idx_t bs_a, idx_t rs_a, idx_t cs_a,
                       const REAL *B, idx_t bs_b, idx_t rs_b, idx_t cs_b,
                       REAL beta, REAL *C, idx_t bs_c, idx_t rs_c, idx_t cs_c)
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

#include "gemm_fast_paths_impl.h"   /* gemm_small, gemm_direct, the epilogue, out of memory */

#undef MC
#undef KC
#undef NC
#undef MC512
#undef KC512
#undef NC512
#undef EDGE_MAX
#include "real_end.h"
