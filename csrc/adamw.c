/* adamw.c: one AdamW step (Loshchilov & Hutter 2019, as torch.optim.AdamW), in place.
 *
 * For every element, with step t >= 1 (the number of this update):
 *     p = p - lr * weight_decay * p                      decoupled weight decay (first)
 *     m = beta1 * m + (1 - beta1) * g                    first moment
 *     v = beta2 * v + (1 - beta2) * g^2                  second moment
 *     p = p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 * which is p -= lr * mhat / (sqrt(vhat) + eps) with the bias-corrected mhat = m / (1 - beta1^t),
 * vhat = v / (1 - beta2^t), arranged as PyTorch does. One pass over p, g, m, v instead of
 * the dozen NumPy passes (and temporaries) of the same formula. The scalar coefficients are
 * computed once in double by the caller and rounded to the array's type.
 */
#include <math.h>

#include "miniclip.h"

#define PARALLEL_ELEMENTS 65536

#define DEFINE_ADAMW(SFX, T, SQRT)                                                       \
void adamw_step##SFX(idx_t n, T *p, const T *g, T *m, T *v, T decay, T beta1, T beta2,   \
                     T step_size, T inv_sqrt_bc2, T eps)                                 \
{                                                                                        \
    _Pragma("omp parallel for schedule(static) if(n > PARALLEL_ELEMENTS)")               \
    for (idx_t i = 0; i < n; i++) {                                                      \
        T gi = g[i];                                                                     \
        T pi = p[i] * decay;                                /* decay = 1 - lr * wd */    \
        T mi = beta1 * m[i] + ((T)1 - beta1) * gi;                                       \
        T vi = beta2 * v[i] + ((T)1 - beta2) * gi * gi;                                  \
        m[i] = mi;                                                                       \
        v[i] = vi;                                                                       \
        p[i] = pi - step_size * mi / (SQRT(vi) * inv_sqrt_bc2 + eps);                    \
    }                                                                                    \
}

DEFINE_ADAMW(_f32, float, sqrtf)
DEFINE_ADAMW(_f64, double, sqrt)
