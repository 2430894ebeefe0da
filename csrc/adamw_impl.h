/* adamw_impl.h: the AdamW loop for one element type (REAL, SFX, SQRT: real.h); adamw.c states
 * the formula. adamw_step_generic_f32 is also the tail of the AVX2 float32 loop. */
#include "real.h"

void SFX(adamw_step_generic)(idx_t n, REAL *p, const REAL *g, REAL *m, REAL *v, REAL decay,
                             REAL beta1, REAL beta2, REAL step_size, REAL inv_sqrt_bc2, REAL eps)
{
    #pragma omp parallel for schedule(static) if(n > PARALLEL_ELEMENTS)
    for (idx_t i = 0; i < n; i++) {
        REAL gi = g[i];
        REAL pi = p[i] * decay;                            /* decay = 1 - lr * wd */
        REAL mi = beta1 * m[i] + ((REAL)1 - beta1) * gi;
        REAL vi = beta2 * v[i] + ((REAL)1 - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - step_size * mi / (SQRT(vi) * inv_sqrt_bc2 + eps);
    }
}

#include "real_end.h"
