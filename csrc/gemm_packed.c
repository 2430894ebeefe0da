/* gemm_packed.c: GEMM v3, the BLIS / Goto & van de Geijn algorithm.
 *
 *     C (M x N) = alpha * op(A) (M x K) @ op(B) (K x N) + beta * C
 *
 * (op(X) = X or X^T is just a choice of strides, see miniclip.h.)
 * The teaching sequence: v1 gemm_naive.c -> v2 gemm_tiled.c -> v3 this file.
 *
 * The five loops around the micro-kernel (Goto & van de Geijn 2008; BLIS):
 *
 *   for jc in 0..N step NC            loop 5: a block of NC columns of C and B
 *     for pc in 0..K step KC          loop 4: a slice KC of the sum
 *       pack B[pc:pc+KC, jc:jc+NC] -> B~    (KC x NC, lives in L3)
 *       for ic in 0..M step MC        loop 3: a block of MC rows   [threads split this loop]
 *         pack A[ic:ic+MC, pc:pc+KC] -> A~  (MC x KC, lives in L2)
 *         for jr in 0..NC step NR     loop 2: one micro-panel of B~ (KC x NR, lives in L1)
 *           for ir in 0..MC step MR   loop 1: one micro-panel of A~ (MR x KC)
 *             micro-kernel: C[ir:ir+MR, jr:jr+NR] += A~_ir B~_jr   (in registers)
 *
 * Why packing: the micro-kernel wants its operands contiguous, aligned and in exactly
 * the order it reads them, whatever the layout of A and B (a transpose is only a
 * different walk during packing, never a copy of the whole matrix). Packing costs
 * O(MC KC + KC NC) copies per block and is reused O(MC KC NC / (MR NR)) times.
 *
 * Why these block sizes (this machine: 32 KiB L1d, 1 MiB L2 per core, 32 MiB L3):
 *   - KC: a KC x NR micro-panel of B~ plus an MR x KC micro-panel of A~ should fill
 *     about half of L1: float32 256 x 16 x 4 B = 16 KiB (+ 6 KiB of A~).
 *     float64 uses KC = 256 too: 16 KiB of B~ + 12 KiB of A~.
 *   - MC: the MC x KC block A~ should sit in about half of L2 with room for B~ and C:
 *     float32 MC = 192: 192 KiB; float64 MC = 96: 192 KiB. (A 512 KiB L2 gets the same.)
 *   - NC: KC x NC of B~ in L3, shared by the threads: 256 x 4080 x 4 B = 4 MiB.
 *
 * Threads (OpenMP): the threads split loop 3, each packing its own A~ into a
 * private buffer (A~ belongs in the private L2 of its core), while B~ is packed by
 * all of them together and shared. When C has too few rows for every thread to get
 * a row block, they split loop 2 (the columns) instead.
 *
 * Small products run on one thread (starting a team costs microseconds); when B's rows
 * are contiguous they also skip packing (gemm_direct: the micro-kernel reads A and B in
 * place, which pays while everything fits in L1/L2); tiny ones skip the micro-kernel
 * too (gemm_small).
 *
 * The code, written once for float and double (real.h): gemm_packed_impl.h holds the five
 * loops top-down (gemm_run, gemm_loops, macro_kernel, packing), gemm_fast_paths_impl.h what
 * runs beside them (gemm_small, gemm_direct, the epilogue, the out-of-memory fallback), and
 * gemm_microkernel.c the micro-kernel.
 */
#include <stdlib.h>

#include "gemm_microkernel.h"
#include "miniclip.h"

#ifdef _OPENMP
#include <omp.h>
static int omp_thread_id(void) { return omp_get_thread_num(); }
static int omp_team_size(void) { return omp_get_num_threads(); }
static void team_barrier(int nt) {
    if (nt > 1) {
        #pragma omp barrier
    }
}
#else
static int omp_thread_id(void) { return 0; }
static int omp_team_size(void) { return 1; }
static void team_barrier(int nt) { (void)nt; }
#endif

/* below this many multiply-adds a product runs on one thread (waking a second thread
 * costs microseconds on a quiet machine, and far more when the core is busy) */
#define PARALLEL_FLOPS (100.0 * 100.0 * 100.0)
/* at most this many multiply-adds and columns: no packing at all */
#define SMALL_FLOPS (16.0 * 16.0 * 16.0)
#define SMALL_N_MAX 64
/* one-thread products with row-major B up to this size run without packing (gemm_direct) */
#define DIRECT_FLOPS (128.0 * 128.0 * 128.0)
#define DIRECT_K_MAX 512

/* ---- float32: 6 x 16 micro-kernel (MR x NR, real.h) ---- */
#define REAL_BITS 32
#define MC 192
#define KC 256
#define NC 4080
#define PACK_A_ROWMAJOR gemm_pack_a_rowmajor_f32
#include "gemm_packed_impl.h"

/* ---- float64: 6 x 8 micro-kernel ---- */
#define REAL_BITS 64
#define MC 96
#define KC 256
#define NC 4080
#define PACK_A_ROWMAJOR(kc, a, rs_a, Ap) 0   /* float64: the portable loop */
#include "gemm_packed_impl.h"
