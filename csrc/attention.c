/* attention.c: fused multi-head attention, forward and backward, one head per task.
 *
 * Shape legend: BH = batch * heads (independent problems), T tokens, D head dim.
 * q, k, v, out, dout, dq, dk, dv: (BH, T, D) contiguous; lse: (BH, T).
 *
 * Forward, per head (S and P are T x T scratch in the thread's own buffer):
 *     S   = scale * q k^T                       (GEMM v3, k^T is a stride swap)
 *     lse = log sum_j exp(S_ij)                 (per row, shifted by the row max)
 *     P   = exp(S - lse)                        (the softmax, written over S)
 *     out = P v                                 (GEMM v3)
 * Only out and lse leave the kernel: nothing T x T is kept for the backward.
 *
 * Backward, per head, recomputing P from lse (see reference.attention_backward):
 *     P  = exp(scale * q k^T - lse)
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
 * Exact per-head softmax vs online softmax. At CLIP's sizes (T <= a few hundred) one
 * head's T x T scores fit in L2 (77 x 77 x 4 B = 23 KiB), so we compute the whole
 * row of scores, then its max and log-sum-exp exactly, then P, each in one pass
 * with GEMM v3 doing the products at full micro-kernel speed. The alternative is
 * FlashAttention's *online* softmax: walk k, v in tiles of columns, keep a running
 * max m and sum l per row, and rescale the partial output by exp(m_old - m_new)
 * whenever the max grows. It never materialises a row of S, which matters when T
 * is in the thousands and a row no longer fits in cache; at T <= 200 it only adds
 * the rescaling work (an exp and a D-wide multiply per row per tile) and turns the
 * big GEMMs into many tiny ones. Measured here (T = 77, D = 64, BH = 256, float32):
 * see benchmarks/README.md; the exact version is the one we keep.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "miniclip.h"
#include "transpose.h"
#include "vexp.h"

/* rows per causal block: a multiple of the micro-kernel's MR = 6 */
#define CAUSAL_BLOCK 24

#define REAL float
#define SFX(name) name##_f32
#define VEXP exp_shift_sum_f32
#define LOG logf
#include "attention_impl.h"
#undef REAL
#undef SFX
#undef VEXP
#undef LOG

#define REAL double
#define SFX(name) name##_f64
#define VEXP exp_shift_sum_f64
#define LOG log
#include "attention_impl.h"
