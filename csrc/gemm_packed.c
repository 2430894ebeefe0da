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
 * Two tiles (gemm_microkernel.h): the AVX-512 kernel's 14 x 32 (float32; 14 x 16 float64) and
 * the generic / AVX2 kernels' 6 x 16 (6 x 8). The kernel is chosen at run time, and with it the
 * tile and the cache blocks below (choose_kernel in gemm_packed_impl.h).
 *
 * Why these block sizes, for the AVX-512 tile (a Xeon with 48 KiB L1d and 2 MiB L2 per core):
 *   - KC: the KC x NR micro-panel of B~ stays in L1 while the MR x KC micro-panels of A~
 *     stream past it, one per micro-kernel call: float32 256 x 32 x 4 B = 32 KiB of B~ + 14 KiB
 *     for the A~ panel in flight; float64 256 x 16 x 8 B = 32 KiB + 28 KiB (the A~ panel is
 *     read once and may be evicted; B~ is read again by every call). KC = 256 is also the
 *     model's width, so its K = 256 products take one slice.
 *   - MC: the MC x KC block A~ sits in about a quarter of L2, leaving room for the B~
 *     micro-panels coming from L3 and the C tiles: float32 448 x 256 x 4 B = 448 KiB,
 *     float64 224 x 256 x 8 B = 448 KiB. (MC a multiple of MR = 14.)
 *   - NC: KC x NC of B~ in L3, shared by the threads: 256 x 4096 x 4 B = 4 MiB (8 MiB float64).
 * and for the 6 x 16 tile (chosen for a 32 KiB L1d, 1 MiB L2 core):
 *   - KC: float32 256 x 16 x 4 B = 16 KiB of B~ + 6 KiB of A~; float64 16 KiB + 12 KiB.
 *   - MC: float32 192 x 256 x 4 B = 192 KiB, float64 96 x 256 x 8 B = 192 KiB.
 *   - NC: 256 x 4080 x 4 B = 4 MiB.
 *
 * Threads (OpenMP): the threads split loop 3, each packing its own A~ into a
 * private buffer (A~ belongs in the private L2 of its core), while B~ is packed by
 * all of them together and shared. When C has too few rows for every thread to get
 * a row block, or all its rows fit one block and whole MR-row tiles would share them
 * unevenly, they split loop 2 (the columns) instead.
 *
 * Small products run on one thread (starting a team costs microseconds); when B's rows
 * are contiguous they also skip packing (gemm_direct: the micro-kernel reads A and B in
 * place, which pays while everything fits in L1/L2); tiny ones skip the micro-kernel
 * too (gemm_small).
 *
 * The code, written once for float and double (real.h): gemm_packed_impl.h holds the five
 * loops top-down (gemm_run, gemm_loops, macro_kernel, packing), gemm_fast_paths_impl.h what
 * runs beside them (gemm_small, gemm_direct, the epilogue, the out-of-memory fallback), and
 * gemm_microkernel.c the micro-kernels.
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

/* The packing buffers, kept from one call to the next by each calling thread: B~ (which = 0)
 * and the threads' A~ blocks (which = 1), grown when a call needs more, never shrunk; at most
 * KC x NC + nt x MC x KC values (~8.5 MiB float64, by the blocks below). Why keep them: a
 * buffer this large comes from mmap, and a fresh one costs a page fault and a page of zeros
 * per 4 KiB at every call (benchmarks/README.md, Kernel notes). Returns NULL when out of memory. */
#if defined(_MSC_VER)
#define THREAD_LOCAL __declspec(thread)
#else
#define THREAD_LOCAL _Thread_local
#endif
static void *packing_buffer(int which, size_t bytes)
{
    static THREAD_LOCAL void *kept[2];
    static THREAD_LOCAL size_t kept_bytes[2];
    if (kept_bytes[which] < bytes) {
        free(kept[which]);
        kept[which] = aligned_alloc(64, bytes);
        kept_bytes[which] = kept[which] ? bytes : 0;
    }
    return kept[which];
}

/* below this many multiply-adds a product runs on one thread (waking a second thread
 * costs microseconds on a quiet machine, and far more when the core is busy) */
#define PARALLEL_FLOPS (100.0 * 100.0 * 100.0)
/* at most this many multiply-adds and columns: no packing at all */
#define SMALL_FLOPS (16.0 * 16.0 * 16.0)
#define SMALL_N_MAX 64
/* one-thread products with row-major B up to this size run without packing (gemm_direct) */
#define DIRECT_FLOPS (128.0 * 128.0 * 128.0)
#define DIRECT_K_MAX 512

/* ---- float32: the 6 x 16 and 14 x 32 micro-kernels (real.h's MR x NR and MR512 x NR512) ---- */
#define REAL_BITS 32
#define MC 192
#define KC 256
#define NC 4080
#define MC512 448
#define KC512 256
#define NC512 4096
#include "gemm_packed_impl.h"

/* ---- float64: 6 x 8 and 14 x 16 ---- */
#define REAL_BITS 64
#define MC 96
#define KC 256
#define NC 4080
#define MC512 224
#define KC512 256
#define NC512 4096
#include "gemm_packed_impl.h"
