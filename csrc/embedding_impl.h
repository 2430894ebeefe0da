/* embedding_impl.h: the embedding gradient for one element type (REAL, SFX: real.h); see embedding.c. */
#include "real.h"

void SFX(embedding_backward)(idx_t N, idx_t C, idx_t V, const long long *ids, const REAL *dout,
                             REAL *dweight)
{
    memset(dweight, 0, (size_t)V * (size_t)C * sizeof(REAL));
    for (idx_t n = 0; n < N; n++) {
        REAL *row = dweight + (idx_t)ids[n] * C;
        const REAL *src = dout + n * C;
        for (idx_t c = 0; c < C; c++) row[c] += src[c];
    }
}

#include "real_end.h"
