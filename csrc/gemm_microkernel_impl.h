/* gemm_microkernel_impl.h: the generic C micro-kernel for one element type (REAL, SFX, MR, NR:
 * real.h); gemm_microkernel.h states the contract.
 * acc[i][j] lives in registers as far as the compiler can manage; the loop over j is the one
 * it vectorises. */
#include "real.h"

static void SFX(ukr_generic)(idx_t kc, REAL alpha, const REAL *a, idx_t rs_a, idx_t cs_a,
                             const REAL *b, idx_t rs_b, REAL beta, REAL *c, idx_t rs_c, idx_t cs_c,
                             const REAL *bias)
{
    REAL acc[MR][NR];
    memset(acc, 0, sizeof(acc));
    for (idx_t p = 0; p < kc; p++) {                   /* one outer product per step p */
        for (int i = 0; i < MR; i++) {
            REAL a_ip = a[i * rs_a + p * cs_a];
            for (int j = 0; j < NR; j++)
                acc[i][j] += a_ip * b[p * rs_b + j];
        }
    }
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) {
            REAL *cij = &c[i * rs_c + j * cs_c];
            REAL cv = (beta == 0) ? alpha * acc[i][j] : alpha * acc[i][j] + beta * *cij;
            *cij = bias ? cv + bias[j] : cv;
        }
}

#include "real_end.h"
