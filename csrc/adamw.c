/* adamw.c: one AdamW step (Loshchilov & Hutter 2019, as torch.optim.AdamW), in place.
 *
 * p (parameter), g (its gradient), m, v (the two moments): n contiguous values each.
 * For every element, with step t >= 1 (the number of this update):
 *     p = p - lr * weight_decay * p                      decoupled weight decay (first)
 *     m = beta1 * m + (1 - beta1) * g                    first moment
 *     v = beta2 * v + (1 - beta2) * g^2                  second moment
 *     p = p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 * which is p -= lr * mhat / (sqrt(vhat) + eps) with the bias-corrected mhat = m / (1 - beta1^t),
 * vhat = v / (1 - beta2^t), arranged as PyTorch does. One pass over p, g, m, v instead of
 * the dozen NumPy passes (and temporaries) of the same formula. The scalar coefficients are
 * computed once in double by the caller and rounded to the array's type.
 * float32 with AVX2: 8 values at a time, the same operations in the same order (separate
 * multiplies and adds, no FMA, as the C loop compiles under -std=c11), so both paths give
 * the same bits. The C loop alone is not vectorised by the compiler: sqrtf may set errno,
 * so each value goes through a scalar sqrt and a check.
 */
#include <math.h>

#include "miniclip.h"
#include "vexp.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define PARALLEL_ELEMENTS 65536

#define REAL_BITS 32
#include "adamw_impl.h"
#define REAL_BITS 64
#include "adamw_impl.h"

#if MINICLIP_HAVE_AVX2
#include <immintrin.h>

__attribute__((target("avx2")))
static void adamw_step_avx2_f32(idx_t n, float *p, const float *g, float *m, float *v, float decay,
                                float beta1, float beta2, float step_size, float inv_sqrt_bc2, float eps)
{
    const __m256 vdecay = _mm256_set1_ps(decay), vb1 = _mm256_set1_ps(beta1), vb2 = _mm256_set1_ps(beta2);
    const __m256 c1 = _mm256_set1_ps(1.0f - beta1), c2 = _mm256_set1_ps(1.0f - beta2);
    const __m256 vstep = _mm256_set1_ps(step_size), vinv = _mm256_set1_ps(inv_sqrt_bc2);
    const __m256 veps = _mm256_set1_ps(eps);
    idx_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 gi = _mm256_loadu_ps(g + i);
        __m256 pi = _mm256_mul_ps(_mm256_loadu_ps(p + i), vdecay);
        __m256 mi = _mm256_add_ps(_mm256_mul_ps(vb1, _mm256_loadu_ps(m + i)), _mm256_mul_ps(c1, gi));
        __m256 vi = _mm256_add_ps(_mm256_mul_ps(vb2, _mm256_loadu_ps(v + i)),
                                  _mm256_mul_ps(_mm256_mul_ps(c2, gi), gi));
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
        __m256 denom = _mm256_add_ps(_mm256_mul_ps(_mm256_sqrt_ps(vi), vinv), veps);
        _mm256_storeu_ps(p + i, _mm256_sub_ps(pi, _mm256_div_ps(_mm256_mul_ps(vstep, mi), denom)));
    }
    if (i < n)
        adamw_step_generic_f32(n - i, p + i, g + i, m + i, v + i, decay, beta1, beta2, step_size,
                               inv_sqrt_bc2, eps);
}
#endif

void adamw_step_f32(idx_t n, float *p, const float *g, float *m, float *v, float decay, float beta1,
                    float beta2, float step_size, float inv_sqrt_bc2, float eps)
{
#if MINICLIP_HAVE_AVX2
    if (miniclip_use_avx2()) {
        /* big arrays: the threads split them (as the C loop's omp parallel for would) */
        #pragma omp parallel if(n > PARALLEL_ELEMENTS)
        {
            idx_t nt = 1, t = 0;
#ifdef _OPENMP
            nt = omp_get_num_threads();
            t = omp_get_thread_num();
#endif
            idx_t lo = n * t / nt / 8 * 8, hi = t == nt - 1 ? n : n * (t + 1) / nt / 8 * 8;
            adamw_step_avx2_f32(hi - lo, p + lo, g + lo, m + lo, v + lo, decay, beta1, beta2,
                                step_size, inv_sqrt_bc2, eps);
        }
        return;
    }
#endif
    adamw_step_generic_f32(n, p, g, m, v, decay, beta1, beta2, step_size, inv_sqrt_bc2, eps);
}

void adamw_step_f64(idx_t n, double *p, const double *g, double *m, double *v, double decay, double beta1,
                    double beta2, double step_size, double inv_sqrt_bc2, double eps)
{
    adamw_step_generic_f64(n, p, g, m, v, decay, beta1, beta2, step_size, inv_sqrt_bc2, eps);
}
