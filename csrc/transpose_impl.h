/* transpose_impl.h: the scalar transpose for one element type (REAL, SFX: real.h); see transpose.c. */
#include "real.h"

static void SFX(transpose_block)(idx_t r0, idx_t r1, idx_t c0, idx_t c1, const REAL *src, idx_t ld_src,
                                 REAL *dst, idx_t ld_dst)
{
    for (idx_t r = r0; r < r1; r++)
        for (idx_t c = c0; c < c1; c++)
            dst[c * ld_dst + r] = src[r * ld_src + c];
}

#include "real_end.h"
