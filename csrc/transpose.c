/* transpose.c: dst = src^T, in 8 x 8 (float32) or 4 x 4 (float64) register blocks with AVX2.
 *
 * A scalar transpose stores one value at a time to a new row of dst. With AVX2 we load
 * 8 rows of 8 values, shuffle them in registers (unpack pairs, then quads, then swap
 * 128-bit halves: the classic 24-instruction 8 x 8 transpose) and store 8 rows of dst.
 * Edges (fewer than 8 rows or columns left) use the scalar loop. Chosen at run time
 * like the GEMM micro-kernel (miniclip_use_avx2 in vexp.h).
 */
#include "transpose.h"
#include "vexp.h"

/* the scalar loop, for both types (real.h): dst[c, r] = src[r, c] over rows [r0, r1) and
 * columns [c0, c1); the whole transpose without AVX2, the edges with it */
#define REAL_BITS 32
#include "transpose_impl.h"
#define REAL_BITS 64
#include "transpose_impl.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

__attribute__((target("avx2")))
static void transpose_avx2_f32(idx_t rows, idx_t cols, const float *src, idx_t ld_src,
                               float *dst, idx_t ld_dst)
{
    idx_t r8 = rows / 8 * 8, c8 = cols / 8 * 8;
    for (idx_t r = 0; r < r8; r += 8) {
        for (idx_t c = 0; c < c8; c += 8) {
            const float *s = src + r * ld_src + c;
            __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + ld_src);
            __m256 r2 = _mm256_loadu_ps(s + 2 * ld_src), r3 = _mm256_loadu_ps(s + 3 * ld_src);
            __m256 r4 = _mm256_loadu_ps(s + 4 * ld_src), r5 = _mm256_loadu_ps(s + 5 * ld_src);
            __m256 r6 = _mm256_loadu_ps(s + 6 * ld_src), r7 = _mm256_loadu_ps(s + 7 * ld_src);
            __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
            __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
            __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
            __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
            __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
            __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
            __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
            __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
            float *d = dst + c * ld_dst + r;
            _mm256_storeu_ps(d, _mm256_permute2f128_ps(u0, u4, 0x20));
            _mm256_storeu_ps(d + ld_dst, _mm256_permute2f128_ps(u1, u5, 0x20));
            _mm256_storeu_ps(d + 2 * ld_dst, _mm256_permute2f128_ps(u2, u6, 0x20));
            _mm256_storeu_ps(d + 3 * ld_dst, _mm256_permute2f128_ps(u3, u7, 0x20));
            _mm256_storeu_ps(d + 4 * ld_dst, _mm256_permute2f128_ps(u0, u4, 0x31));
            _mm256_storeu_ps(d + 5 * ld_dst, _mm256_permute2f128_ps(u1, u5, 0x31));
            _mm256_storeu_ps(d + 6 * ld_dst, _mm256_permute2f128_ps(u2, u6, 0x31));
            _mm256_storeu_ps(d + 7 * ld_dst, _mm256_permute2f128_ps(u3, u7, 0x31));
        }
    }
    transpose_block_f32(0, r8, c8, cols, src, ld_src, dst, ld_dst);      /* right edge */
    transpose_block_f32(r8, rows, 0, cols, src, ld_src, dst, ld_dst);    /* bottom edge */
}

__attribute__((target("avx2")))
static void transpose_avx2_f64(idx_t rows, idx_t cols, const double *src, idx_t ld_src,
                               double *dst, idx_t ld_dst)
{
    idx_t r4 = rows / 4 * 4, c4 = cols / 4 * 4;
    for (idx_t r = 0; r < r4; r += 4) {
        for (idx_t c = 0; c < c4; c += 4) {
            const double *s = src + r * ld_src + c;
            __m256d r0 = _mm256_loadu_pd(s), r1 = _mm256_loadu_pd(s + ld_src);
            __m256d r2 = _mm256_loadu_pd(s + 2 * ld_src), r3 = _mm256_loadu_pd(s + 3 * ld_src);
            __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
            __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
            double *d = dst + c * ld_dst + r;
            _mm256_storeu_pd(d, _mm256_permute2f128_pd(t0, t2, 0x20));
            _mm256_storeu_pd(d + ld_dst, _mm256_permute2f128_pd(t1, t3, 0x20));
            _mm256_storeu_pd(d + 2 * ld_dst, _mm256_permute2f128_pd(t0, t2, 0x31));
            _mm256_storeu_pd(d + 3 * ld_dst, _mm256_permute2f128_pd(t1, t3, 0x31));
        }
    }
    transpose_block_f64(0, r4, c4, cols, src, ld_src, dst, ld_dst);
    transpose_block_f64(r4, rows, 0, cols, src, ld_src, dst, ld_dst);
}
#define HAVE_AVX2_TRANSPOSE 1
#else
#define HAVE_AVX2_TRANSPOSE 0
#endif

void transpose_f32(idx_t rows, idx_t cols, const float *src, idx_t ld_src, float *dst, idx_t ld_dst)
{
#if HAVE_AVX2_TRANSPOSE
    if (miniclip_use_avx2()) { transpose_avx2_f32(rows, cols, src, ld_src, dst, ld_dst); return; }
#endif
    transpose_block_f32(0, rows, 0, cols, src, ld_src, dst, ld_dst);
}

void transpose_f64(idx_t rows, idx_t cols, const double *src, idx_t ld_src, double *dst, idx_t ld_dst)
{
#if HAVE_AVX2_TRANSPOSE
    if (miniclip_use_avx2()) { transpose_avx2_f64(rows, cols, src, ld_src, dst, ld_dst); return; }
#endif
    transpose_block_f64(0, rows, 0, cols, src, ld_src, dst, ld_dst);
}
