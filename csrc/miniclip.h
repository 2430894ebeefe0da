/* miniclip.h: the C kernels behind miniclip._C, one declaration per kernel.
 *
 * Conventions (shared by every kernel):
 *   - A matrix is a pointer plus two *element* strides: element (i, j) of A is
 *     A[i * rs_a + j * cs_a]. A transpose is the same pointer with rs and cs swapped,
 *     so op(A) in {A, A^T} never needs a copy (BLIS does the same).
 *   - Kernels *write* their outputs (C = alpha * A B + beta * C); they never keep state.
 *   - Every kernel exists for float (_f32) and double (_f64).
 */
#ifndef MINICLIP_H
#define MINICLIP_H

#include <stddef.h>

typedef ptrdiff_t idx_t;

/* ---- build information (info.c) ---- */
const char *miniclip_compile_flags(void);
int miniclip_has_openmp(void);
int miniclip_max_threads(void);
void miniclip_set_num_threads(int n);
int miniclip_debug_build(void);

/* ---- GEMM v1: the naive triple loop (gemm_naive.c) ----
 * C (M x N) = alpha * A (M x K) @ B (K x N) + beta * C.
 * beta == 0 means C is write-only (never read), as in BLAS, so NaN in C does not leak. */
void gemm_naive_f32(idx_t M, idx_t N, idx_t K, float alpha,
                    const float *A, idx_t rs_a, idx_t cs_a,
                    const float *B, idx_t rs_b, idx_t cs_b,
                    float beta, float *C, idx_t rs_c, idx_t cs_c);
void gemm_naive_f64(idx_t M, idx_t N, idx_t K, double alpha,
                    const double *A, idx_t rs_a, idx_t cs_a,
                    const double *B, idx_t rs_b, idx_t cs_b,
                    double beta, double *C, idx_t rs_c, idx_t cs_c);

/* ---- GEMM v2: loops reordered (i-p-j) and tiled for the caches (gemm_tiled.c) ---- */
void gemm_tiled_f32(idx_t M, idx_t N, idx_t K, float alpha,
                    const float *A, idx_t rs_a, idx_t cs_a,
                    const float *B, idx_t rs_b, idx_t cs_b,
                    float beta, float *C, idx_t rs_c, idx_t cs_c);
void gemm_tiled_f64(idx_t M, idx_t N, idx_t K, double alpha,
                    const double *A, idx_t rs_a, idx_t cs_a,
                    const double *B, idx_t rs_b, idx_t cs_b,
                    double beta, double *C, idx_t rs_c, idx_t cs_c);

/* ---- GEMM v3: packed panels, cache blocking, SIMD micro-kernel, threads (gemm_packed.c) ----
 * nthreads <= 0 means "the OpenMP default" (miniclip_max_threads()). */
void gemm_packed_f32(idx_t M, idx_t N, idx_t K, float alpha,
                     const float *A, idx_t rs_a, idx_t cs_a,
                     const float *B, idx_t rs_b, idx_t cs_b,
                     float beta, float *C, idx_t rs_c, idx_t cs_c, int nthreads);
void gemm_packed_f64(idx_t M, idx_t N, idx_t K, double alpha,
                     const double *A, idx_t rs_a, idx_t cs_a,
                     const double *B, idx_t rs_b, idx_t cs_b,
                     double beta, double *C, idx_t rs_c, idx_t cs_c, int nthreads);
/* GEMM v3 with an epilogue: C = alpha * A B + beta * C + bias + R, where bias[j * cs_bias] is
 * added to column j and R[i * rs_r + j * cs_r] to C[i, j] (either may be NULL). Each tile gets
 * them as soon as it is final, so y = x W^T + b (and x + h W^T + b) takes one pass over C.
 * R must not overlap C. */
void gemm_epilogue_f32(idx_t M, idx_t N, idx_t K, float alpha,
                       const float *A, idx_t rs_a, idx_t cs_a,
                       const float *B, idx_t rs_b, idx_t cs_b,
                       float beta, float *C, idx_t rs_c, idx_t cs_c,
                       const float *bias, idx_t cs_bias, const float *R, idx_t rs_r, idx_t cs_r,
                       int nthreads);
void gemm_epilogue_f64(idx_t M, idx_t N, idx_t K, double alpha,
                       const double *A, idx_t rs_a, idx_t cs_a,
                       const double *B, idx_t rs_b, idx_t cs_b,
                       double beta, double *C, idx_t rs_c, idx_t cs_c,
                       const double *bias, idx_t cs_bias, const double *R, idx_t rs_r, idx_t cs_r,
                       int nthreads);

/* Strided batched GEMM v3: for b < nbatch, C_b = alpha * A_b B_b + beta * C_b with
 * A_b = A + b * bs_a (likewise B, C); a batch stride of 0 reuses one matrix (broadcast).
 * Threads go over the batch when there are enough products, inside each product otherwise. */
void gemm_batched_f32(idx_t nbatch, idx_t M, idx_t N, idx_t K, float alpha,
                      const float *A, idx_t bs_a, idx_t rs_a, idx_t cs_a,
                      const float *B, idx_t bs_b, idx_t rs_b, idx_t cs_b,
                      float beta, float *C, idx_t bs_c, idx_t rs_c, idx_t cs_c);
void gemm_batched_f64(idx_t nbatch, idx_t M, idx_t N, idx_t K, double alpha,
                      const double *A, idx_t bs_a, idx_t rs_a, idx_t cs_a,
                      const double *B, idx_t bs_b, idx_t rs_b, idx_t cs_b,
                      double beta, double *C, idx_t bs_c, idx_t rs_c, idx_t cs_c);

/* ---- fused multi-head attention (attention.c) ----
 * q, k, v, out, dout, dq, dk, dv: (B, H, T, D) arrays with unit stride along D and any
 * other element strides (attn_layout), so heads can be read from and written to a
 * packed (B, T, 3C) projection in place; lse: (B, H, T) and p: (B, H, T, T) contiguous.
 * forward:  out = softmax(scale * q k^T + causal mask) v,  lse = row log-sum-exp of the scores;
 *           p = the probabilities softmax(...) too, unless p is NULL
 * backward: dq, dk, dv from dout, with the probabilities p kept by the forward, or (p NULL)
 *           recomputing them from lse. */
typedef struct {
    idx_t batch, head, row;   /* element (b, h, t, d) is at b * batch + h * head + t * row + d */
} attn_layout;
void attention_forward_f32(idx_t B, idx_t H, idx_t T, idx_t D, float scale, int causal,
                           const float *q, attn_layout lq, const float *k, attn_layout lk,
                           const float *v, attn_layout lv, float *out, attn_layout lo, float *lse,
                           float *p);
void attention_forward_f64(idx_t B, idx_t H, idx_t T, idx_t D, double scale, int causal,
                           const double *q, attn_layout lq, const double *k, attn_layout lk,
                           const double *v, attn_layout lv, double *out, attn_layout lo, double *lse,
                           double *p);
void attention_backward_f32(idx_t B, idx_t H, idx_t T, idx_t D, float scale, int causal,
                            const float *dout, attn_layout ldo, const float *q, attn_layout lq,
                            const float *k, attn_layout lk, const float *v, attn_layout lv,
                            const float *out, attn_layout lo, const float *lse, const float *p,
                            float *dq, attn_layout ldq, float *dk, attn_layout ldk,
                            float *dv, attn_layout ldv);
void attention_backward_f64(idx_t B, idx_t H, idx_t T, idx_t D, double scale, int causal,
                            const double *dout, attn_layout ldo, const double *q, attn_layout lq,
                            const double *k, attn_layout lk, const double *v, attn_layout lv,
                            const double *out, attn_layout lo, const double *lse, const double *p,
                            double *dq, attn_layout ldq, double *dk, attn_layout ldk,
                            double *dv, attn_layout ldv);

/* ---- embedding gradient (embedding.c): dweight (V, C) = scatter-add of dout (N, C) rows
 * to rows ids (N,) (int64, each in [0, V: checked by the caller)). */
void embedding_backward_f32(idx_t N, idx_t C, idx_t V, const long long *ids, const float *dout,
                            float *dweight);
void embedding_backward_f64(idx_t N, idx_t C, idx_t V, const long long *ids, const double *dout,
                            double *dweight);

/* ---- softmax family (softmax.c); x, y, dy, dx (R, C) contiguous, rows independent ----
 * log_space = 0: softmax, 1: log_softmax. */
void softmax_rows_f32(idx_t R, idx_t C, const float *x, float *y, int log_space);
void softmax_rows_f64(idx_t R, idx_t C, const double *x, double *y, int log_space);
void softmax_backward_rows_f32(idx_t R, idx_t C, const float *y, const float *dy, float *dx, int log_space);
void softmax_backward_rows_f64(idx_t R, idx_t C, const double *y, const double *dy, double *dx, int log_space);

/* ---- layer norm over the last axis (layernorm.c); weight/bias/dweight may be NULL.
 * backward returns 0 when out of memory (nothing written), 1 otherwise. */
void layer_norm_forward_f32(idx_t R, idx_t C, const float *x, const float *weight, const float *bias,
                            float eps, float *y, float *mean, float *rstd);
void layer_norm_forward_f64(idx_t R, idx_t C, const double *x, const double *weight, const double *bias,
                            double eps, double *y, double *mean, double *rstd);
int layer_norm_backward_f32(idx_t R, idx_t C, const float *dy, const float *x, const float *weight,
                            const float *mean, const float *rstd, float *dx, float *dweight, float *dbias);
int layer_norm_backward_f64(idx_t R, idx_t C, const double *dy, const double *x, const double *weight,
                            const double *mean, const double *rstd, double *dx, double *dweight, double *dbias);

/* ---- activations, elementwise over n values (activation.c) ---- */
void gelu_forward_f32(idx_t n, const float *x, float *y);
void gelu_forward_f64(idx_t n, const double *x, double *y);
void gelu_backward_f32(idx_t n, const float *x, const float *dy, float *dx);
void gelu_backward_f64(idx_t n, const double *x, const double *dy, double *dx);
void quick_gelu_forward_f32(idx_t n, const float *x, float *y);
void quick_gelu_forward_f64(idx_t n, const double *x, double *y);
void quick_gelu_backward_f32(idx_t n, const float *x, const float *dy, float *dx);
void quick_gelu_backward_f64(idx_t n, const double *x, const double *dy, double *dx);

/* ---- AdamW, in place over n values (adamw.c); see adamw.c for the formula ---- */
void adamw_step_f32(idx_t n, float *p, const float *g, float *m, float *v, float decay, float beta1,
                    float beta2, float step_size, float inv_sqrt_bc2, float eps);
void adamw_step_f64(idx_t n, double *p, const double *g, double *m, double *v, double decay, double beta1,
                    double beta2, double step_size, double inv_sqrt_bc2, double eps);

/* ---- convolution (conv.c); x (N, C, H, W), w (O, C*kh*kw), y and res (N, O, Ho, Wo), cols
 * (N, C*kh*kw, Ho*Wo), or (C*kh*kw, N*Ho*Wo) when merged, dx (N, C, H, W), all contiguous. conv2d_forward: y = conv(x, w) (stride s,
 * zero padding p), then y = y * scale[o] + shift[o] + res, then max(y, 0) when relu; scale, shift,
 * res may be NULL. Returns 0 when out of memory (nothing written), 1 otherwise. */
int conv2d_forward_f32(idx_t N, idx_t C, idx_t H, idx_t W, idx_t O, idx_t kh, idx_t kw, idx_t s, idx_t p,
                       const float *x, const float *w, const float *scale, const float *shift,
                       const float *res, int relu, float *y);
int conv2d_forward_f64(idx_t N, idx_t C, idx_t H, idx_t W, idx_t O, idx_t kh, idx_t kw, idx_t s, idx_t p,
                       const double *x, const double *w, const double *scale, const double *shift,
                       const double *res, int relu, double *y);
/* conv2d_backward: dx = the gradient of x, dw = of w (O, C*kh*kw) (either NULL: not wanted), from
 * dy (N, O, Ho, Wo), on blocks of whole images whose columns and dy take at most block_bytes.
 * Returns 0 when out of memory (nothing written), 1 otherwise. */
int conv2d_backward_f32(idx_t N, idx_t C, idx_t H, idx_t W, idx_t O, idx_t kh, idx_t kw, idx_t s, idx_t p,
                        const float *x, const float *w, const float *dy, idx_t block_bytes, float *dx,
                        float *dw);
int conv2d_backward_f64(idx_t N, idx_t C, idx_t H, idx_t W, idx_t O, idx_t kh, idx_t kw, idx_t s, idx_t p,
                        const double *x, const double *w, const double *dy, idx_t block_bytes, double *dx,
                        double *dw);
void im2col_f32(idx_t N, idx_t C, idx_t H, idx_t W, idx_t kh, idx_t kw, idx_t s, idx_t p,
                const float *x, float *cols, int merged);
void im2col_f64(idx_t N, idx_t C, idx_t H, idx_t W, idx_t kh, idx_t kw, idx_t s, idx_t p,
                const double *x, double *cols, int merged);
void col2im_f32(idx_t N, idx_t C, idx_t H, idx_t W, idx_t kh, idx_t kw, idx_t s, idx_t p,
                const float *cols, float *dx, int merged);
void col2im_f64(idx_t N, idx_t C, idx_t H, idx_t W, idx_t kh, idx_t kw, idx_t s, idx_t p,
                const double *cols, double *dx, int merged);

/* ---- 3x3 convolution, stride 1, padding 1, by Winograd's F(2x2, 3x3) (winograd.c); x (N, C, H, W),
 * w (O, C, 3, 3), y and res (N, O, H, W) contiguous; the epilogue and the result as conv2d_forward. */
int winograd3x3_forward_f32(idx_t N, idx_t C, idx_t H, idx_t W, idx_t O, const float *x, const float *w,
                            const float *scale, const float *shift, const float *res, int relu, float *y);
int winograd3x3_forward_f64(idx_t N, idx_t C, idx_t H, idx_t W, idx_t O, const double *x, const double *w,
                            const double *scale, const double *shift, const double *res, int relu, double *y);

/* ---- average pooling over k x k blocks (pool.c); x (P, H, W), y (P, H/k, W/k) contiguous ---- */
void avg_pool2d_f32(idx_t P, idx_t H, idx_t W, idx_t k, const float *x, float *y);
void avg_pool2d_f64(idx_t P, idx_t H, idx_t W, idx_t k, const double *x, double *y);
void avg_pool2d_backward_f32(idx_t P, idx_t H, idx_t W, idx_t k, const float *dy, float *dx);
void avg_pool2d_backward_f64(idx_t P, idx_t H, idx_t W, idx_t k, const double *dy, double *dx);

/* ---- ReLU's backward (relu.c): dx = dy where y > 0, else 0; n contiguous values */
void relu_backward_f32(idx_t n, const float *y, const float *dy, float *dx);
void relu_backward_f64(idx_t n, const double *y, const double *dy, double *dx);

/* ---- BatchNorm2d (batchnorm.c); x, y, dy, dx (N, C, HW) contiguous, the rest (C,); see batchnorm.c */
int batchnorm_stats_f32(idx_t N, idx_t C, idx_t HW, const float *x, float *mean, float *var);
int batchnorm_stats_f64(idx_t N, idx_t C, idx_t HW, const double *x, double *mean, double *var);
void batchnorm_apply_f32(idx_t N, idx_t C, idx_t HW, const float *x, const float *scale, const float *shift,
                         float *y);
void batchnorm_apply_f64(idx_t N, idx_t C, idx_t HW, const double *x, const double *scale, const double *shift,
                         double *y);
int batchnorm_backward_f32(idx_t N, idx_t C, idx_t HW, const float *x, const float *dy, const float *mu,
                            const float *rstd, const float *weight, int training,
                            float *dx, float *dweight, float *dbias);
int batchnorm_backward_f64(idx_t N, idx_t C, idx_t HW, const double *x, const double *dy, const double *mu,
                            const double *rstd, const double *weight, int training,
                            double *dx, double *dweight, double *dbias);

/* SIMD selection for the micro-kernels (gemm_microkernel.c):
 * mode 0 = auto (the best the CPU supports: AVX-512, AVX2+FMA or generic), 1 = force the
 * portable generic C kernel, 2 = at most AVX2+FMA (AVX-512 off, so its path stays tested on an
 * AVX-512 CPU). The environment variables MINICLIP_FORCE_GENERIC=1 and MINICLIP_FORCE_AVX2=1
 * set mode 1 and 2 at load time. simd_name: "avx512", "avx2+fma" or "generic". */
void miniclip_set_simd(int mode);
const char *miniclip_simd_name(void);

/* ---- the machine's peak: a register-only FMA loop (peak.c) ----
 * GFLOP/s of `nthreads` threads (<= 0: the OpenMP default) each running independent FMA
 * chains with the widest vectors the SIMD selection allows, for about `seconds`. */
double peak_gflops_f32(int nthreads, double seconds);
double peak_gflops_f64(int nthreads, double seconds);

#endif
