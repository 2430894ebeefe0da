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

    void attention_forward_f32(idx_t BH, idx_t T, idx_t D, float scale, int causal,
                               const float *q, const float *k, const float *v, float *out, float *lse)
    void attention_forward_f64(idx_t BH, idx_t T, idx_t D, double scale, int causal,
                               const double *q, const double *k, const double *v, double *out, double *lse)
    void attention_backward_f32(idx_t BH, idx_t T, idx_t D, float scale, int causal,
                                const float *dout, const float *q, const float *k, const float *v,
                                const float *out, const float *lse, float *dq, float *dk, float *dv)
    void attention_backward_f64(idx_t BH, idx_t T, idx_t D, double scale, int causal,
                                const double *dout, const double *q, const double *k, const double *v,
                                const double *out, const double *lse, double *dq, double *dk, double *dv)
