/* online_softmax.c: measures exact per-head softmax (csrc/attention.c, the one miniclip
 * keeps) against a FlashAttention-style online softmax over tiles of BC key columns, both
 * on GEMM v3, forward only, one thread, B*H = 256. Not part of the library.
 *
 *   gcc -O3 -std=c11 -fopenmp -Icsrc -o /tmp/online_softmax benchmarks/online_softmax.c \
 *       csrc/gemm_packed.c csrc/gemm_microkernel.c csrc/gemm_tiled.c csrc/vexp.c \
 *       csrc/transpose.c csrc/attention.c csrc/info.c -lm
 *   /tmp/online_softmax 77 64        # T D
 *
 * Online softmax, per head: for each tile of BC keys, S = scale q k_tile^T (T x BC);
 * per row, m_new = max(m, max_j S_ij), P = exp(S - m_new), l = l exp(m - m_new) + sum_j P,
 * out = out exp(m - m_new) + P v_tile; at the end out /= l and lse = m + log l. */
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <time.h>
#include "miniclip.h"
#include "vexp.h"
#include "transpose.h"

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }

static void online_forward_f32(idx_t BH, idx_t T, idx_t D, float scale, int BC,
                               const float *q, const float *k, const float *v, float *out, float *lse)
{
    float *kt = malloc(sizeof(float) * T * D), *S = malloc(sizeof(float) * T * BC);
    float *m = malloc(sizeof(float) * T), *l = malloc(sizeof(float) * T);
    for (idx_t h = 0; h < BH; h++) {
        const float *qh = q + h * T * D, *kh = k + h * T * D, *vh = v + h * T * D;
        float *oh = out + h * T * D;
        transpose_f32(T, D, kh, D, kt, T);
        for (idx_t i = 0; i < T; i++) { m[i] = -INFINITY; l[i] = 0; }
        for (idx_t j0 = 0; j0 < T; j0 += BC) {
            idx_t bc = T - j0 < BC ? T - j0 : BC;
            gemm_packed_f32(T, bc, D, scale, qh, D, 1, kt + j0, T, 1, 0.0f, S, BC, 1, 1);
            for (idx_t i = 0; i < T; i++) {
                float *row = S + i * BC, mx = m[i];
                for (idx_t j = 0; j < bc; j++) mx = row[j] > mx ? row[j] : mx;
                float sum = exp_shift_sum_f32(row, row, bc, mx);
                float corr = expf(m[i] - mx);              /* rescale what was summed so far */
                l[i] = l[i] * corr + sum;
                m[i] = mx;
                if (j0 > 0) for (idx_t d = 0; d < D; d++) oh[i * D + d] *= corr;
            }
            gemm_packed_f32(T, D, bc, 1.0f, S, BC, 1, vh + j0 * D, D, 1, j0 > 0 ? 1.0f : 0.0f, oh, D, 1, 1);
        }
        for (idx_t i = 0; i < T; i++) {
            float inv = 1.0f / l[i];
            for (idx_t d = 0; d < D; d++) oh[i * D + d] *= inv;
            lse[h * T + i] = m[i] + logf(l[i]);
        }
    }
    free(kt); free(S); free(m); free(l);
}

int main(int argc, char **argv)
{
    idx_t BH = 256, T = argc > 1 ? atoi(argv[1]) : 77, D = argc > 2 ? atoi(argv[2]) : 64;
    size_t n = BH * T * D;
    float *q = malloc(4 * n), *k = malloc(4 * n), *v = malloc(4 * n), *o1 = malloc(4 * n), *o2 = malloc(4 * n);
    float *l1 = malloc(4 * BH * T), *l2 = malloc(4 * BH * T);
    srand(1);
    for (size_t i = 0; i < n; i++) { q[i] = rand() / (float)RAND_MAX - 0.5f; k[i] = rand() / (float)RAND_MAX - 0.5f; v[i] = rand() / (float)RAND_MAX - 0.5f; }
    miniclip_set_num_threads(1);
    float scale = 1.0f / sqrtf((float)D);
    int bcs[] = {16, 32, 64};
    double best_exact = 1e9, best_online[3] = {1e9, 1e9, 1e9};
    attn_layout l = {T * D, T * D, D};                  /* (BH, 1, T, D) contiguous */
    for (int r = 0; r < 15; r++) {
        double t0 = now(); attention_forward_f32(BH, 1, T, D, scale, 0, q, l, k, l, v, l, o1, l, l1); double t1 = now();
        if (t1 - t0 < best_exact) best_exact = t1 - t0;
        for (int b = 0; b < 3; b++) {
            t0 = now(); online_forward_f32(BH, T, D, scale, bcs[b], q, k, v, o2, l2); t1 = now();
            if (t1 - t0 < best_online[b]) best_online[b] = t1 - t0;
        }
    }
    double err = 0;
    for (size_t i = 0; i < n; i++) err = fmax(err, fabs(o1[i] - o2[i]));
    printf("T=%ld D=%ld forward, 1 thread, BH=256: exact %.2f ms | online BC=16 %.2f  BC=32 %.2f  BC=64 %.2f ms | max diff %.1e\n",
           (long)T, (long)D, best_exact * 1e3, best_online[0] * 1e3, best_online[1] * 1e3, best_online[2] * 1e3, err);
    return 0;
}
