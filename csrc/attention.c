/* attention.c: fused multi-head attention, forward and backward, one head per task.
 *
 * Shape legend: B batch, H heads (B * H = BH independent problems), T tokens, D head dim.
 * q, k, v, out, dout, dq, dk, dv: (B, H, T, D) with unit stride along D and any other
 * strides (attn_layout in miniclip.h); lse: (B, H, T) contiguous. The strides let the
 * kernel read q, k, v straight out of the packed projection qkv (B, T, 3C) (head h of q
 * is columns h*D .. h*D+D, row stride 3C) and write out as (B, T, C), so the model's
 * attention needs no copies into and out of a heads-first layout.
 *
 * Forward, per head (S and P are T x T scratch in the thread's own buffer):
 *     S   = scale * q k^T                       (GEMM v3, k^T is a stride swap)
 *     lse = log sum_j exp(S_ij)                 (per row, shifted by the row max)
 *     P   = exp(S - lse)                        (the softmax, written over S)
 *     out = P v                                 (GEMM v3)
 * out and lse leave the kernel, and P itself when the caller passes p (B, H, T, T): the ops
 * keep it for short sequences (T <= D, where it is no larger than out), long ones keep only lse.
 *
 * Backward, per head, with P from p, or recomputed from lse (see reference.attention_backward):
 *     P  = exp(scale * q k^T - lse)             (only without p)
 *     dv = P^T dout
 *     dP = dout v^T
 *     dS = P * (dP - delta),  delta_i = sum_d dout_id out_id  (= sum_j P_ij dP_ij)
 *     dq = scale * dS k,      dk = scale * dS^T q
 *
 * Causal (position i sees j <= i): the products are cut into blocks of CAUSAL_BLOCK
 * rows (or columns) and each block only multiplies the part left of (or below) the
 * diagonal, so about half of the multiply-adds and exps are skipped. Masked entries
 * of P and dS are written as exact zeros.
 *
 * Threads: OpenMP over the BH heads, handed out 4 at a time (dynamic schedule: every
 * head costs the same, but on a shared machine a thread that loses its core for a while
 * should not hold the others up at the end); the GEMMs inside run on the calling thread.
 *
 * Exact per-head softmax, not FlashAttention's online softmax. At CLIP's sizes (T <= a few
 * hundred) one head's T x T scores fit in L2 (77 x 77 x 4 B = 23 KiB), so we compute the whole
 * row of scores, then its max and log-sum-exp exactly, then P, each in one pass with GEMM v3
 * doing the products at full micro-kernel speed. The online softmax walks k, v in tiles of
 * columns, keeps a running max m and sum l per row, and rescales the partial output by
 * exp(m_old - m_new) whenever the max grows: it never materialises a row of S, which matters
 * when T is in the thousands and a row no longer fits in cache; at T <= 200 it only adds the
 * rescaling work and turns the big GEMMs into many tiny ones (a tile as wide as T *is* the
 * exact version). The comparison is measured in benchmarks/README.md (benchmarks/online_softmax.c).
 *
 * Files: attention_impl.h (the general algorithm above, any T and D), attention_tiles_impl.h
 * (the same math on whole micro-kernel tiles, for short sequences), attention_common_impl.h
 * (the helpers both use); all written once for float and double (real.h).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "miniclip.h"
#include "transpose.h"

/* rows per causal block: whole tiles of the micro-kernel GEMM v3 runs (choose_kernel in
 * gemm_packed_impl.h), about two dozen rows: 2 of the AVX-512 kernel's 14, 4 of the AVX2 or
 * generic kernel's 6 (smaller blocks skip more of the masked triangle but make smaller products;
 * benchmarks/README.md) */
#define CAUSAL_BLOCK (GET_UKR512() ? 2 * MR512 : 4 * MR)
/* row stride of the T x T scratch (S, P, dP): T rounded up to 16 values (64 bytes in
 * float32), so every row starts on a cache line and the micro-kernel's row stores do not
 * straddle two lines (a 17-token row would otherwise start at every 68th byte) */
#define SCORE_LD(T) (((T) + 15) / 16 * 16)
/* multiply-adds (B*H * T*T * D) below which one thread does the whole attention: on a
 * 2-core machine waking the second thread costs more than a tiny attention (as in gemm) */
#define ATTENTION_PARALLEL_WORK 1e6
/* scratch buffers start on a cache line (aligned_alloc wants a multiple of the alignment) */
#define SCRATCH_ALLOC(bytes) aligned_alloc(64, ((bytes) + 63) / 64 * 64)

/* offset of head (b, h) in an array with layout l (see attn_layout in miniclip.h) */
#define HEAD(l, b, h) ((b) * (l).batch + (h) * (l).head)

/* The tile path (attention_tiles_impl.h) for short sequences: a sequence takes it when one of
 * the micro-kernels' tiles fits it (tile_kernel there): D a multiple of the tile's columns and
 * T up to the tile's limit below; for the AVX-512 tile also at least its 14 rows (a shorter
 * sequence would be padded to 14 rows, where the 6-row tile wastes less), and not where T
 * rounded up to 14 rows is more than 1.5 T (T = 15 .. 18). Past the limit the
 * tile path stops paying: its edge savings shrink while it computes whole score matrices where
 * the general path skips the masked blocks of causal ones (measured per tile:
 * benchmarks/README.md). */
#define TILES_MAX_T 24          /* the 6-row tile (AVX2, generic): four tiles of rows */
#define TILES512_MAX_T 42       /* the 14-row tile (AVX-512): three tiles of rows */

#define REAL_BITS 32
#include "attention_impl.h"
#define REAL_BITS 64
#include "attention_impl.h"
