/* transpose.h: out-of-place matrix transpose (internal header; transpose.c).
 *
 * dst (cols x rows, row stride ld_dst) = src (rows x cols, row stride ld_src)^T.
 * Attention uses it to turn k and v (T x D) into k^T and v^T (D x T) once per head, so
 * the products with k^T and v^T read contiguous rows (see attention.c).
 */
#ifndef MINICLIP_TRANSPOSE_H
#define MINICLIP_TRANSPOSE_H

#include "miniclip.h"

void transpose_f32(idx_t rows, idx_t cols, const float *src, idx_t ld_src, float *dst, idx_t ld_dst);
void transpose_f64(idx_t rows, idx_t cols, const double *src, idx_t ld_src, double *dst, idx_t ld_dst);

#endif
