# kernels.pxd: the C declarations of csrc/miniclip.h, for the Cython wrappers in _C.pyx.
cdef extern from "miniclip.h" nogil:
    ctypedef Py_ssize_t idx_t

    const char *miniclip_compile_flags()
    int miniclip_has_openmp()
    int miniclip_max_threads()
    void miniclip_set_num_threads(int n)
    int miniclip_debug_build()

    void gemm_naive_f32(idx_t M, idx_t N, idx_t K, float alpha,
                        const float *A, idx_t rs_a, idx_t cs_a,
                        const float *B, idx_t rs_b, idx_t cs_b,
                        float beta, float *C, idx_t rs_c, idx_t cs_c)
    void gemm_naive_f64(idx_t M, idx_t N, idx_t K, double alpha,
                        const double *A, idx_t rs_a, idx_t cs_a,
                        const double *B, idx_t rs_b, idx_t cs_b,
                        double beta, double *C, idx_t rs_c, idx_t cs_c)

    void gemm_tiled_f32(idx_t M, idx_t N, idx_t K, float alpha,
                        const float *A, idx_t rs_a, idx_t cs_a,
                        const float *B, idx_t rs_b, idx_t cs_b,
                        float beta, float *C, idx_t rs_c, idx_t cs_c)
    void gemm_tiled_f64(idx_t M, idx_t N, idx_t K, double alpha,
                        const double *A, idx_t rs_a, idx_t cs_a,
                        const double *B, idx_t rs_b, idx_t cs_b,
                        double beta, double *C, idx_t rs_c, idx_t cs_c)
    void gemm_packed_f32(idx_t M, idx_t N, idx_t K, float alpha,
                         const float *A, idx_t rs_a, idx_t cs_a,
                         const float *B, idx_t rs_b, idx_t cs_b,
                         float beta, float *C, idx_t rs_c, idx_t cs_c, int nthreads)
    void gemm_packed_f64(idx_t M, idx_t N, idx_t K, double alpha,
                         const double *A, idx_t rs_a, idx_t cs_a,
                         const double *B, idx_t rs_b, idx_t cs_b,
                         double beta, double *C, idx_t rs_c, idx_t cs_c, int nthreads)
    void gemm_epilogue_f32(idx_t M, idx_t N, idx_t K, float alpha,
                           const float *A, idx_t rs_a, idx_t cs_a,
                           const float *B, idx_t rs_b, idx_t cs_b,
                           float beta, float *C, idx_t rs_c, idx_t cs_c,
                           const float *bias, idx_t cs_bias, const float *R, idx_t rs_r, idx_t cs_r,
                           int nthreads)
    void gemm_epilogue_f64(idx_t M, idx_t N, idx_t K, double alpha,
                           const double *A, idx_t rs_a, idx_t cs_a,
                           const double *B, idx_t rs_b, idx_t cs_b,
                           double beta, double *C, idx_t rs_c, idx_t cs_c,
                           const double *bias, idx_t cs_bias, const double *R, idx_t rs_r, idx_t cs_r,
                           int nthreads)
    void gemm_batched_f32(idx_t nbatch, idx_t M, idx_t N, idx_t K, float alpha,
                          const float *A, idx_t bs_a, idx_t rs_a, idx_t cs_a,
                          const float *B, idx_t bs_b, idx_t rs_b, idx_t cs_b,
                          float beta, float *C, idx_t bs_c, idx_t rs_c, idx_t cs_c)
    void gemm_batched_f64(idx_t nbatch, idx_t M, idx_t N, idx_t K, double alpha,
                          const double *A, idx_t bs_a, idx_t rs_a, idx_t cs_a,
                          const double *B, idx_t bs_b, idx_t rs_b, idx_t cs_b,
                          double beta, double *C, idx_t bs_c, idx_t rs_c, idx_t cs_c)

    void miniclip_set_simd(int mode)
    const char *miniclip_simd_name()
    double peak_gflops_f32(int nthreads, double seconds)
    double peak_gflops_f64(int nthreads, double seconds)

    ctypedef struct attn_layout:
        idx_t batch
        idx_t head
        idx_t row
    void attention_forward_f32(idx_t B, idx_t H, idx_t T, idx_t D, float scale, int causal,
                               const float *q, attn_layout lq, const float *k, attn_layout lk,
                               const float *v, attn_layout lv, float *out, attn_layout lo, float *lse,
                               float *p)
    void attention_forward_f64(idx_t B, idx_t H, idx_t T, idx_t D, double scale, int causal,
                               const double *q, attn_layout lq, const double *k, attn_layout lk,
                               const double *v, attn_layout lv, double *out, attn_layout lo, double *lse,
                               double *p)
    void attention_backward_f32(idx_t B, idx_t H, idx_t T, idx_t D, float scale, int causal,
                                const float *dout, attn_layout ldo, const float *q, attn_layout lq,
                                const float *k, attn_layout lk, const float *v, attn_layout lv,
                                const float *out, attn_layout lo, const float *lse, const float *p,
                                float *dq, attn_layout ldq, float *dk, attn_layout ldk,
                                float *dv, attn_layout ldv)
    void attention_backward_f64(idx_t B, idx_t H, idx_t T, idx_t D, double scale, int causal,
                                const double *dout, attn_layout ldo, const double *q, attn_layout lq,
                                const double *k, attn_layout lk, const double *v, attn_layout lv,
                                const double *out, attn_layout lo, const double *lse, const double *p,
                                double *dq, attn_layout ldq, double *dk, attn_layout ldk,
                                double *dv, attn_layout ldv)

    void embedding_backward_f32(idx_t N, idx_t C, idx_t V, const long long *ids, const float *dout,
                                float *dweight)
    void embedding_backward_f64(idx_t N, idx_t C, idx_t V, const long long *ids, const double *dout,
                                double *dweight)

    void softmax_rows_f32(idx_t R, idx_t C, const float *x, float *y, int log_space)
    void softmax_rows_f64(idx_t R, idx_t C, const double *x, double *y, int log_space)
    void softmax_backward_rows_f32(idx_t R, idx_t C, const float *y, const float *dy, float *dx, int log_space)
    void softmax_backward_rows_f64(idx_t R, idx_t C, const double *y, const double *dy, double *dx, int log_space)
    
    void layer_norm_forward_f32(idx_t R, idx_t C, const float *x, const float *weight, const float *bias,
                                float eps, float *y, float *mean, float *rstd)
    void layer_norm_forward_f64(idx_t R, idx_t C, const double *x, const double *weight, const double *bias,
                                double eps, double *y, double *mean, double *rstd)
    int layer_norm_backward_f32(idx_t R, idx_t C, const float *dy, const float *x, const float *weight,
                                const float *mean, const float *rstd, float *dx, float *dweight, float *dbias)
    int layer_norm_backward_f64(idx_t R, idx_t C, const double *dy, const double *x, const double *weight,
                                const double *mean, const double *rstd, double *dx, double *dweight, double *dbias)
    
    void gelu_forward_f32(idx_t n, const float *x, float *y)
    void gelu_forward_f64(idx_t n, const double *x, double *y)
    void gelu_backward_f32(idx_t n, const float *x, const float *dy, float *dx)
    void gelu_backward_f64(idx_t n, const double *x, const double *dy, double *dx)
    void quick_gelu_forward_f32(idx_t n, const float *x, float *y)
    void quick_gelu_forward_f64(idx_t n, const double *x, double *y)
    void quick_gelu_backward_f32(idx_t n, const float *x, const float *dy, float *dx)
    void quick_gelu_backward_f64(idx_t n, const double *x, const double *dy, double *dx)
    
    void adamw_step_f32(idx_t n, float *p, const float *g, float *m, float *v, float decay, float beta1,
                        float beta2, float step_size, float inv_sqrt_bc2, float eps)
    void adamw_step_f64(idx_t n, double *p, const double *g, double *m, double *v, double decay, double beta1,
                        double beta2, double step_size, double inv_sqrt_bc2, double eps)

    int conv2d_forward_f32(idx_t N, idx_t C, idx_t H, idx_t W, idx_t O, idx_t kh, idx_t kw, idx_t s, idx_t p,
                           const float *x, const float *w, const float *scale, const float *shift,
                           const float *res, int relu, float *y)
    int conv2d_forward_f64(idx_t N, idx_t C, idx_t H, idx_t W, idx_t O, idx_t kh, idx_t kw, idx_t s, idx_t p,
                           const double *x, const double *w, const double *scale, const double *shift,
                           const double *res, int relu, double *y)
    int conv2d_backward_f32(idx_t N, idx_t C, idx_t H, idx_t W, idx_t O, idx_t kh, idx_t kw, idx_t s, idx_t p,
                            const float *x, const float *w, const float *dy, idx_t block_bytes, float *dx,
                            float *dw)
    int conv2d_backward_f64(idx_t N, idx_t C, idx_t H, idx_t W, idx_t O, idx_t kh, idx_t kw, idx_t s, idx_t p,
                            const double *x, const double *w, const double *dy, idx_t block_bytes, double *dx,
                            double *dw)
    void im2col_f32(idx_t N, idx_t C, idx_t H, idx_t W, idx_t kh, idx_t kw, idx_t s, idx_t p,
                    const float *x, float *cols, int merged)
    void im2col_f64(idx_t N, idx_t C, idx_t H, idx_t W, idx_t kh, idx_t kw, idx_t s, idx_t p,
                    const double *x, double *cols, int merged)
    void col2im_f32(idx_t N, idx_t C, idx_t H, idx_t W, idx_t kh, idx_t kw, idx_t s, idx_t p,
                    const float *cols, float *dx, int merged)
    void col2im_f64(idx_t N, idx_t C, idx_t H, idx_t W, idx_t kh, idx_t kw, idx_t s, idx_t p,
                    const double *cols, double *dx, int merged)
    void avg_pool2d_f32(idx_t P, idx_t H, idx_t W, idx_t k, const float *x, float *y)
    void avg_pool2d_f64(idx_t P, idx_t H, idx_t W, idx_t k, const double *x, double *y)
    void avg_pool2d_backward_f32(idx_t P, idx_t H, idx_t W, idx_t k, const float *dy, float *dx)
    void avg_pool2d_backward_f64(idx_t P, idx_t H, idx_t W, idx_t k, const double *dy, double *dx)
    void relu_backward_f32(idx_t n, const float *y, const float *dy, float *dx)
    void relu_backward_f64(idx_t n, const double *y, const double *dy, double *dx)
    int batchnorm_stats_f32(idx_t N, idx_t C, idx_t HW, const float *x, float *mean, float *var)
    int batchnorm_stats_f64(idx_t N, idx_t C, idx_t HW, const double *x, double *mean, double *var)
    void batchnorm_apply_f32(idx_t N, idx_t C, idx_t HW, const float *x, const float *scale, const float *shift,
                             float *y)
    void batchnorm_apply_f64(idx_t N, idx_t C, idx_t HW, const double *x, const double *scale,
                             const double *shift, double *y)
    int batchnorm_backward_f32(idx_t N, idx_t C, idx_t HW, const float *x, const float *dy, const float *mu,
                                const float *rstd, const float *weight, int training,
                                float *dx, float *dweight, float *dbias)
    int batchnorm_backward_f64(idx_t N, idx_t C, idx_t HW, const double *x, const double *dy,
                                const double *mu, const double *rstd, const double *weight, int training,
                                double *dx, double *dweight, double *dbias)
    int winograd3x3_forward_f32(idx_t N, idx_t C, idx_t H, idx_t W, idx_t O, const float *x, const float *w,
                                const float *scale, const float *shift, const float *res, int relu, float *y)
    int winograd3x3_forward_f64(idx_t N, idx_t C, idx_t H, idx_t W, idx_t O, const double *x, const double *w,
                                const double *scale, const double *shift, const double *res, int relu, double *y)
