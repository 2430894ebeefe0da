/* gemm_microkernel.c: the innermost loop of GEMM v3, in portable C, AVX2+FMA and AVX-512.
 *
 * See gemm_microkernel.h for the contract (one MR x NR tile of C from packed panels) and for
 * why each tile has the size it has.
 *
 * Three versions of each kernel are compiled into the same library:
 *   - generic: plain C that any compiler vectorises as well as it can (SSE2 on
 *     x86-64, NEON on arm64). It is the reference and the portable path.
 *   - avx2:    intrinsics compiled with __attribute__((target("avx2,fma"))), so the
 *     rest of the library is still built for baseline x86-64. It is only *called*
 *     after __builtin_cpu_supports says the CPU has AVX2 and FMA, so an older CPU
 *     never meets an illegal instruction.
 *   - avx512:  the same idea with target("avx512f") and 32 registers of 512 bits: a larger
 *     tile (14 x 32 float32, 14 x 16 float64), so GEMM v3 packs and blocks for it
 *     (gemm_packed.c); called only when __builtin_cpu_supports("avx512f").
 * The choice is made once, at the first GEMM call, and can be capped (tests do this) with
 * miniclip_set_simd: generic (also MINICLIP_FORCE_GENERIC=1), at most AVX2 (also
 * MINICLIP_FORCE_AVX2=1), or the best the CPU has.
 *
 * Rounding: every version sums over p in the same order with a fused or unfused
 * multiply-add; results agree to a few ulps times K, which is what the tests allow.
 */
#include <stdlib.h>
#include <string.h>

#include "gemm_microkernel.h"
#include "vexp.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define MINICLIP_HAVE_AVX2_KERNELS 1
#include <immintrin.h>
#else
#define MINICLIP_HAVE_AVX2_KERNELS 0
#endif

/* ------------------------------------------------------------------ generic C
 * The reference kernel, for both types (real.h): ukr_generic_f32 (6 x 16), ukr_generic_f64 (6 x 8). */
#define REAL_BITS 32
#include "gemm_microkernel_impl.h"
#define REAL_BITS 64
#include "gemm_microkernel_impl.h"

#if MINICLIP_HAVE_AVX2_KERNELS
/* --------------------------------------------------------------- AVX2 + FMA
 * float32, 6 x 16: row i of the tile is two 8-wide vectors c[i][0], c[i][1].
 * Per step p: load the 16 values of b (two aligned vectors), then for each of the
 * 6 rows broadcast A[i, p] and do two FMAs. 12 FMAs per 2 loads + 6 broadcasts.
 */
__attribute__((target("avx2,fma")))
static void ukr_avx2_f32(idx_t kc, float alpha, const float *a, idx_t rs_a, idx_t cs_a,
                         const float *b, idx_t rs_b, float beta, float *c, idx_t rs_c, idx_t cs_c,
                         const float *bias)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    /* one pointer per row of A; step p reads a_i[p * cs_a] (packed: cs_a = MR, rs_a = 1) */
    const float *a0 = a, *a1 = a + rs_a, *a2 = a + 2 * rs_a, *a3 = a + 3 * rs_a, *a4 = a + 4 * rs_a,
              *a5 = a + 5 * rs_a;
    for (idx_t p = 0, pa = 0; p < kc; p++, pa += cs_a) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);   /* one row of B */
        __m256 ai;
        ai = _mm256_broadcast_ss(a0 + pa); c00 = _mm256_fmadd_ps(ai, b0, c00); c01 = _mm256_fmadd_ps(ai, b1, c01);
        ai = _mm256_broadcast_ss(a1 + pa); c10 = _mm256_fmadd_ps(ai, b0, c10); c11 = _mm256_fmadd_ps(ai, b1, c11);
        ai = _mm256_broadcast_ss(a2 + pa); c20 = _mm256_fmadd_ps(ai, b0, c20); c21 = _mm256_fmadd_ps(ai, b1, c21);
        ai = _mm256_broadcast_ss(a3 + pa); c30 = _mm256_fmadd_ps(ai, b0, c30); c31 = _mm256_fmadd_ps(ai, b1, c31);
        ai = _mm256_broadcast_ss(a4 + pa); c40 = _mm256_fmadd_ps(ai, b0, c40); c41 = _mm256_fmadd_ps(ai, b1, c41);
        ai = _mm256_broadcast_ss(a5 + pa); c50 = _mm256_fmadd_ps(ai, b0, c50); c51 = _mm256_fmadd_ps(ai, b1, c51);
        b += rs_b;
    }
    /* C = alpha * AB + beta * C (+ bias), one row (two vectors) at a time */
    __m256 rows[GEMM_MR_F32][2] = {{c00, c01}, {c10, c11}, {c20, c21},
                                   {c30, c31}, {c40, c41}, {c50, c51}};
    __m256 valpha = _mm256_set1_ps(alpha), vbeta = _mm256_set1_ps(beta);
    if (cs_c == 1) {          /* rows of C contiguous: vector loads and stores */
        __m256 bias0 = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
        __m256 bias1 = bias ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();
        for (int i = 0; i < GEMM_MR_F32; i++) {
            float *ci = c + i * rs_c;
            __m256 r0 = _mm256_mul_ps(valpha, rows[i][0]), r1 = _mm256_mul_ps(valpha, rows[i][1]);
            if (beta != 0) {
                r0 = _mm256_fmadd_ps(vbeta, _mm256_loadu_ps(ci), r0);
                r1 = _mm256_fmadd_ps(vbeta, _mm256_loadu_ps(ci + 8), r1);
            }
            if (bias) {
                r0 = _mm256_add_ps(r0, bias0);
                r1 = _mm256_add_ps(r1, bias1);
            }
            _mm256_storeu_ps(ci, r0);
            _mm256_storeu_ps(ci + 8, r1);
        }
    } else {                  /* any other layout: go through a small buffer */
        float ab[GEMM_MR_F32][GEMM_NR_F32];
        for (int i = 0; i < GEMM_MR_F32; i++) {
            _mm256_storeu_ps(&ab[i][0], rows[i][0]);
            _mm256_storeu_ps(&ab[i][8], rows[i][1]);
        }
        for (int i = 0; i < GEMM_MR_F32; i++)
            for (int j = 0; j < GEMM_NR_F32; j++) {
                float *cij = &c[i * rs_c + j * cs_c];
                float cv = (beta == 0) ? alpha * ab[i][j] : alpha * ab[i][j] + beta * *cij;
                *cij = bias ? cv + bias[j] : cv;
            }
    }
}

/* float64, 6 x 8: row i is two 4-wide vectors; the same schedule as float32. */
__attribute__((target("avx2,fma")))
static void ukr_avx2_f64(idx_t kc, double alpha, const double *a, idx_t rs_a, idx_t cs_a,
                         const double *b, idx_t rs_b, double beta, double *c, idx_t rs_c, idx_t cs_c,
                         const double *bias)
{
    __m256d c00 = _mm256_setzero_pd(), c01 = _mm256_setzero_pd();
    __m256d c10 = _mm256_setzero_pd(), c11 = _mm256_setzero_pd();
    __m256d c20 = _mm256_setzero_pd(), c21 = _mm256_setzero_pd();
    __m256d c30 = _mm256_setzero_pd(), c31 = _mm256_setzero_pd();
    __m256d c40 = _mm256_setzero_pd(), c41 = _mm256_setzero_pd();
    __m256d c50 = _mm256_setzero_pd(), c51 = _mm256_setzero_pd();
    /* one pointer per row of A; step p reads a_i[p * cs_a] (packed: cs_a = MR, rs_a = 1) */
    const double *a0 = a, *a1 = a + rs_a, *a2 = a + 2 * rs_a, *a3 = a + 3 * rs_a, *a4 = a + 4 * rs_a,
              *a5 = a + 5 * rs_a;
    for (idx_t p = 0, pa = 0; p < kc; p++, pa += cs_a) {
        __m256d b0 = _mm256_loadu_pd(b), b1 = _mm256_loadu_pd(b + 4);
        __m256d ai;
        ai = _mm256_broadcast_sd(a0 + pa); c00 = _mm256_fmadd_pd(ai, b0, c00); c01 = _mm256_fmadd_pd(ai, b1, c01);
        ai = _mm256_broadcast_sd(a1 + pa); c10 = _mm256_fmadd_pd(ai, b0, c10); c11 = _mm256_fmadd_pd(ai, b1, c11);
        ai = _mm256_broadcast_sd(a2 + pa); c20 = _mm256_fmadd_pd(ai, b0, c20); c21 = _mm256_fmadd_pd(ai, b1, c21);
        ai = _mm256_broadcast_sd(a3 + pa); c30 = _mm256_fmadd_pd(ai, b0, c30); c31 = _mm256_fmadd_pd(ai, b1, c31);
        ai = _mm256_broadcast_sd(a4 + pa); c40 = _mm256_fmadd_pd(ai, b0, c40); c41 = _mm256_fmadd_pd(ai, b1, c41);
        ai = _mm256_broadcast_sd(a5 + pa); c50 = _mm256_fmadd_pd(ai, b0, c50); c51 = _mm256_fmadd_pd(ai, b1, c51);
        b += rs_b;
    }
    __m256d rows[GEMM_MR_F64][2] = {{c00, c01}, {c10, c11}, {c20, c21},
                                    {c30, c31}, {c40, c41}, {c50, c51}};
    __m256d valpha = _mm256_set1_pd(alpha), vbeta = _mm256_set1_pd(beta);
    if (cs_c == 1) {
        __m256d bias0 = bias ? _mm256_loadu_pd(bias) : _mm256_setzero_pd();
        __m256d bias1 = bias ? _mm256_loadu_pd(bias + 4) : _mm256_setzero_pd();
        for (int i = 0; i < GEMM_MR_F64; i++) {
            double *ci = c + i * rs_c;
            __m256d r0 = _mm256_mul_pd(valpha, rows[i][0]), r1 = _mm256_mul_pd(valpha, rows[i][1]);
            if (beta != 0) {
                r0 = _mm256_fmadd_pd(vbeta, _mm256_loadu_pd(ci), r0);
                r1 = _mm256_fmadd_pd(vbeta, _mm256_loadu_pd(ci + 4), r1);
            }
            if (bias) {
                r0 = _mm256_add_pd(r0, bias0);
                r1 = _mm256_add_pd(r1, bias1);
            }
            _mm256_storeu_pd(ci, r0);
            _mm256_storeu_pd(ci + 4, r1);
        }
    } else {
        double ab[GEMM_MR_F64][GEMM_NR_F64];
        for (int i = 0; i < GEMM_MR_F64; i++) {
            _mm256_storeu_pd(&ab[i][0], rows[i][0]);
            _mm256_storeu_pd(&ab[i][4], rows[i][1]);
        }
        for (int i = 0; i < GEMM_MR_F64; i++)
            for (int j = 0; j < GEMM_NR_F64; j++) {
                double *cij = &c[i * rs_c + j * cs_c];
                double cv = (beta == 0) ? alpha * ab[i][j] : alpha * ab[i][j] + beta * *cij;
                *cij = bias ? cv + bias[j] : cv;
            }
    }
}


/* --------------------------------------------------------------------- AVX-512
 * float32, 14 x 32: row i of the tile is two 16-wide vectors acc[i][0], acc[i][1]; per step p,
 * load the 32 values of b (two vectors), then for each of the 14 rows broadcast A[i, p] and do
 * two FMAs: 28 FMAs per 2 loads + 14 broadcasts (gemm_microkernel.h says why 14 x 32).
 * The accumulators are an array, fully unrolled, so the compiler keeps all 28 in registers
 * (the loops have constant bounds). The step loop is written once and inlined twice: with
 * rs_a = 1 (packed A: the 14 values of a step are consecutive, addressed by constant offsets)
 * and with any rs_a (gemm_direct reads A in place). */
#define MR512 GEMM_MR512_F32
__attribute__((target("avx512f"), always_inline))
static inline void steps512_f32(idx_t kc, const float *a, idx_t rs_a, idx_t cs_a,
                                const float *b, idx_t rs_b, __m512 acc[MR512][2])
{
    for (idx_t p = 0; p < kc; p++) {
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);   /* one row of B */
        #pragma GCC unroll 14
        for (int i = 0; i < MR512; i++) {
            __m512 ai = _mm512_set1_ps(a[i * rs_a]);
            acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
        }
        a += cs_a;
        b += rs_b;
    }
}

__attribute__((target("avx512f")))
static void ukr_avx512_f32(idx_t kc, float alpha, const float *a, idx_t rs_a, idx_t cs_a,
                           const float *b, idx_t rs_b, float beta, float *c, idx_t rs_c, idx_t cs_c,
                           const float *bias)
{
    __m512 acc[MR512][2];
    #pragma GCC unroll 14
    for (int i = 0; i < MR512; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    if (cs_c == 1)            /* C's tile (2 cache lines per row) on its way while the sum runs */
        for (int i = 0; i < MR512; i++) {
            _mm_prefetch((const char *)(c + i * rs_c), _MM_HINT_T0);
            _mm_prefetch((const char *)(c + i * rs_c) + 64, _MM_HINT_T0);
        }
    if (rs_a == 1) steps512_f32(kc, a, 1, cs_a, b, rs_b, acc);
    else           steps512_f32(kc, a, rs_a, cs_a, b, rs_b, acc);
    /* C = alpha * AB + beta * C (+ bias), one row (two vectors) at a time */
    __m512 valpha = _mm512_set1_ps(alpha), vbeta = _mm512_set1_ps(beta);
    if (cs_c == 1) {          /* rows of C contiguous: vector loads and stores */
        __m512 bias0 = bias ? _mm512_loadu_ps(bias) : _mm512_setzero_ps();
        __m512 bias1 = bias ? _mm512_loadu_ps(bias + 16) : _mm512_setzero_ps();
        #pragma GCC unroll 14
        for (int i = 0; i < MR512; i++) {
            float *ci = c + i * rs_c;
            __m512 r0 = _mm512_mul_ps(valpha, acc[i][0]), r1 = _mm512_mul_ps(valpha, acc[i][1]);
            if (beta != 0) {
                r0 = _mm512_fmadd_ps(vbeta, _mm512_loadu_ps(ci), r0);
                r1 = _mm512_fmadd_ps(vbeta, _mm512_loadu_ps(ci + 16), r1);
            }
            if (bias) {
                r0 = _mm512_add_ps(r0, bias0);
                r1 = _mm512_add_ps(r1, bias1);
            }
            _mm512_storeu_ps(ci, r0);
            _mm512_storeu_ps(ci + 16, r1);
        }
    } else {                  /* any other layout: go through a small buffer */
        float ab[MR512][GEMM_NR512_F32];
        #pragma GCC unroll 14
        for (int i = 0; i < MR512; i++) {
            _mm512_storeu_ps(&ab[i][0], acc[i][0]);
            _mm512_storeu_ps(&ab[i][16], acc[i][1]);
        }
        for (int i = 0; i < MR512; i++)
            for (int j = 0; j < GEMM_NR512_F32; j++) {
                float *cij = &c[i * rs_c + j * cs_c];
                float cv = (beta == 0) ? alpha * ab[i][j] : alpha * ab[i][j] + beta * *cij;
                *cij = bias ? cv + bias[j] : cv;
            }
    }
}
#undef MR512

/* float64, 14 x 16: row i is two 8-wide vectors; the same schedule as float32. */
#define MR512 GEMM_MR512_F64
__attribute__((target("avx512f"), always_inline))
static inline void steps512_f64(idx_t kc, const double *a, idx_t rs_a, idx_t cs_a,
                                const double *b, idx_t rs_b, __m512d acc[MR512][2])
{
    for (idx_t p = 0; p < kc; p++) {
        __m512d b0 = _mm512_loadu_pd(b), b1 = _mm512_loadu_pd(b + 8);
        #pragma GCC unroll 14
        for (int i = 0; i < MR512; i++) {
            __m512d ai = _mm512_set1_pd(a[i * rs_a]);
            acc[i][0] = _mm512_fmadd_pd(ai, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_pd(ai, b1, acc[i][1]);
        }
        a += cs_a;
        b += rs_b;
    }
}

__attribute__((target("avx512f")))
static void ukr_avx512_f64(idx_t kc, double alpha, const double *a, idx_t rs_a, idx_t cs_a,
                           const double *b, idx_t rs_b, double beta, double *c, idx_t rs_c, idx_t cs_c,
                           const double *bias)
{
    __m512d acc[MR512][2];
    #pragma GCC unroll 14
    for (int i = 0; i < MR512; i++) acc[i][0] = acc[i][1] = _mm512_setzero_pd();
    if (cs_c == 1)            /* C's tile (2 cache lines per row) on its way while the sum runs */
        for (int i = 0; i < MR512; i++) {
            _mm_prefetch((const char *)(c + i * rs_c), _MM_HINT_T0);
            _mm_prefetch((const char *)(c + i * rs_c) + 64, _MM_HINT_T0);
        }
    if (rs_a == 1) steps512_f64(kc, a, 1, cs_a, b, rs_b, acc);
    else           steps512_f64(kc, a, rs_a, cs_a, b, rs_b, acc);
    __m512d valpha = _mm512_set1_pd(alpha), vbeta = _mm512_set1_pd(beta);
    if (cs_c == 1) {
        __m512d bias0 = bias ? _mm512_loadu_pd(bias) : _mm512_setzero_pd();
        __m512d bias1 = bias ? _mm512_loadu_pd(bias + 8) : _mm512_setzero_pd();
        #pragma GCC unroll 14
        for (int i = 0; i < MR512; i++) {
            double *ci = c + i * rs_c;
            __m512d r0 = _mm512_mul_pd(valpha, acc[i][0]), r1 = _mm512_mul_pd(valpha, acc[i][1]);
            if (beta != 0) {
                r0 = _mm512_fmadd_pd(vbeta, _mm512_loadu_pd(ci), r0);
                r1 = _mm512_fmadd_pd(vbeta, _mm512_loadu_pd(ci + 8), r1);
            }
            if (bias) {
                r0 = _mm512_add_pd(r0, bias0);
                r1 = _mm512_add_pd(r1, bias1);
            }
            _mm512_storeu_pd(ci, r0);
            _mm512_storeu_pd(ci + 8, r1);
        }
    } else {
        double ab[MR512][GEMM_NR512_F64];
        #pragma GCC unroll 14
        for (int i = 0; i < MR512; i++) {
            _mm512_storeu_pd(&ab[i][0], acc[i][0]);
            _mm512_storeu_pd(&ab[i][8], acc[i][1]);
        }
        for (int i = 0; i < MR512; i++)
            for (int j = 0; j < GEMM_NR512_F64; j++) {
                double *cij = &c[i * rs_c + j * cs_c];
                double cv = (beta == 0) ? alpha * ab[i][j] : alpha * ab[i][j] + beta * *cij;
                *cij = bias ? cv + bias[j] : cv;
            }
    }
}
#undef MR512

/* Packing a row-major A (cs_a == 1) for float32 is a 6 x kc -> kc x 6 transpose; done one
 * value at a time it costs about as much as the micro-kernel when N is small. Here 8
 * columns at a time: load 8 values of each of the 6 rows, transpose 8 x 8 in registers
 * (rows 6 and 7 are zero), and store each column as 6 values. Each 8-wide store spills 2
 * values into the next column's slots, which that column's store then overwrites; the
 * last column of a group is stored as 4 + 2 values, so nothing is written past Ap. */
__attribute__((target("avx2")))
static void pack_a_rowmajor_avx2_f32(idx_t kc, const float *a, idx_t rs_a, float *Ap)
{
    idx_t p = 0;
    __m256 zero = _mm256_setzero_ps();
    for (; p + 8 <= kc; p += 8) {
        __m256 r0 = _mm256_loadu_ps(a + p), r1 = _mm256_loadu_ps(a + rs_a + p);
        __m256 r2 = _mm256_loadu_ps(a + 2 * rs_a + p), r3 = _mm256_loadu_ps(a + 3 * rs_a + p);
        __m256 r4 = _mm256_loadu_ps(a + 4 * rs_a + p), r5 = _mm256_loadu_ps(a + 5 * rs_a + p);
        __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
        __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
        __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
        __m256 t6 = _mm256_unpacklo_ps(zero, zero), t7 = t6;
        __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
        __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
        __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
        __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
        float *d = Ap + p * GEMM_MR_F32;
        _mm256_storeu_ps(d + 0 * GEMM_MR_F32, _mm256_permute2f128_ps(u0, u4, 0x20));
        _mm256_storeu_ps(d + 1 * GEMM_MR_F32, _mm256_permute2f128_ps(u1, u5, 0x20));
        _mm256_storeu_ps(d + 2 * GEMM_MR_F32, _mm256_permute2f128_ps(u2, u6, 0x20));
        _mm256_storeu_ps(d + 3 * GEMM_MR_F32, _mm256_permute2f128_ps(u3, u7, 0x20));
        _mm256_storeu_ps(d + 4 * GEMM_MR_F32, _mm256_permute2f128_ps(u0, u4, 0x31));
        _mm256_storeu_ps(d + 5 * GEMM_MR_F32, _mm256_permute2f128_ps(u1, u5, 0x31));
        _mm256_storeu_ps(d + 6 * GEMM_MR_F32, _mm256_permute2f128_ps(u2, u6, 0x31));
        __m256 last = _mm256_permute2f128_ps(u3, u7, 0x31);           /* column p + 7 */
        _mm_storeu_ps(d + 7 * GEMM_MR_F32, _mm256_castps256_ps128(last));
        _mm_storel_pi((__m64 *)(d + 7 * GEMM_MR_F32 + 4), _mm256_extractf128_ps(last, 1));
    }
    for (; p < kc; p++)
        for (int i = 0; i < GEMM_MR_F32; i++)
            Ap[p * GEMM_MR_F32 + i] = a[i * rs_a + p];
}

/* Packing a row-major A (cs_a == 1) for the AVX-512 tile is a 14 x kc -> kc x 14 transpose,
 * and done one value at a time it is a visible part of a product with small N (each value of A~
 * is used only N times; benchmarks/README.md, Kernel notes). float32: 16 columns at a time: load 16 values of each of the 14 rows
 * (rows 14, 15 are zero), transpose 16 x 16 in registers, and store each column as 14 values
 * (a masked store: nothing is written past the column).
 * The transpose, in three steps of shuffles: pairs of rows interleaved (unpack), then quads
 * within each 128-bit lane (shuffle_ps: lane L of u[4 g + c] holds column 4 L + c of rows
 * 4 g .. 4 g + 3), then the 4 x 4 transpose of the 128-bit lanes (shuffle_f32x4, twice). */
__attribute__((target("avx512f")))
static void pack_a_rowmajor_avx512_f32(idx_t kc, const float *a, idx_t rs_a, float *Ap)
{
    enum { MR512 = GEMM_MR512_F32 };
    const __mmask16 column = (1u << MR512) - 1;       /* the 14 rows of one column */
    idx_t p = 0;
    for (; p + 16 <= kc; p += 16) {
        __m512 r[16], t[16], u[16];
        for (int i = 0; i < 16; i++)
            r[i] = i < MR512 ? _mm512_loadu_ps(a + i * rs_a + p) : _mm512_setzero_ps();
        for (int i = 0; i < 16; i += 2) {
            t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
            t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
        }
        for (int g = 0; g < 4; g++) {                 /* rows 4 g .. 4 g + 3 */
            __m512 lo0 = t[4 * g], hi0 = t[4 * g + 1], lo1 = t[4 * g + 2], hi1 = t[4 * g + 3];
            u[4 * g + 0] = _mm512_shuffle_ps(lo0, lo1, 0x44);
            u[4 * g + 1] = _mm512_shuffle_ps(lo0, lo1, 0xEE);
            u[4 * g + 2] = _mm512_shuffle_ps(hi0, hi1, 0x44);
            u[4 * g + 3] = _mm512_shuffle_ps(hi0, hi1, 0xEE);
        }
        for (int c = 0; c < 4; c++) {
            __m512 a0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x44);
            __m512 a1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xEE);
            __m512 a2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x44);
            __m512 a3 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xEE);
            float *d = Ap + (p + c) * MR512;          /* column p + 4 L + c */
            _mm512_mask_storeu_ps(d + 0 * 4 * MR512, column, _mm512_shuffle_f32x4(a0, a2, 0x88));
            _mm512_mask_storeu_ps(d + 1 * 4 * MR512, column, _mm512_shuffle_f32x4(a0, a2, 0xDD));
            _mm512_mask_storeu_ps(d + 2 * 4 * MR512, column, _mm512_shuffle_f32x4(a1, a3, 0x88));
            _mm512_mask_storeu_ps(d + 3 * 4 * MR512, column, _mm512_shuffle_f32x4(a1, a3, 0xDD));
        }
    }
    for (; p < kc; p++)
        for (int i = 0; i < MR512; i++)
            Ap[p * MR512 + i] = a[i * rs_a + p];
}

/* float64: 8 columns at a time, rows 0..7 and rows 8..13 (+ 2 zero rows) each an 8 x 8
 * transpose: unpack (lane L of t[2 g + c] holds column 2 L + c of rows 2 g, 2 g + 1), then the
 * 4 x 4 transpose of the 128-bit lanes as for float32. Column p gets 8 + 6 values. */
__attribute__((target("avx512f")))
static void transpose8_store_f64(const __m512d r[8], double *d, idx_t ld, __mmask8 rows)
{
    __m512d t[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm512_unpacklo_pd(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_pd(r[i], r[i + 1]);
    }
    for (int c = 0; c < 2; c++) {
        __m512d a0 = _mm512_shuffle_f64x2(t[c], t[2 + c], 0x44);
        __m512d a1 = _mm512_shuffle_f64x2(t[c], t[2 + c], 0xEE);
        __m512d a2 = _mm512_shuffle_f64x2(t[4 + c], t[6 + c], 0x44);
        __m512d a3 = _mm512_shuffle_f64x2(t[4 + c], t[6 + c], 0xEE);
        double *dc = d + c * ld;                      /* column 2 L + c */
        _mm512_mask_storeu_pd(dc + 0 * 2 * ld, rows, _mm512_shuffle_f64x2(a0, a2, 0x88));
        _mm512_mask_storeu_pd(dc + 1 * 2 * ld, rows, _mm512_shuffle_f64x2(a0, a2, 0xDD));
        _mm512_mask_storeu_pd(dc + 2 * 2 * ld, rows, _mm512_shuffle_f64x2(a1, a3, 0x88));
        _mm512_mask_storeu_pd(dc + 3 * 2 * ld, rows, _mm512_shuffle_f64x2(a1, a3, 0xDD));
    }
}

__attribute__((target("avx512f")))
static void pack_a_rowmajor_avx512_f64(idx_t kc, const double *a, idx_t rs_a, double *Ap)
{
    enum { MR512 = GEMM_MR512_F64 };
    idx_t p = 0;
    for (; p + 8 <= kc; p += 8) {
        __m512d top[8], bottom[8];
        for (int i = 0; i < 8; i++) {
            top[i] = _mm512_loadu_pd(a + i * rs_a + p);
            bottom[i] = 8 + i < MR512 ? _mm512_loadu_pd(a + (8 + i) * rs_a + p) : _mm512_setzero_pd();
        }
        transpose8_store_f64(top, Ap + p * MR512, MR512, 0xFF);
        transpose8_store_f64(bottom, Ap + p * MR512 + 8, MR512, (1u << (MR512 - 8)) - 1);
    }
    for (; p < kc; p++)
        for (int i = 0; i < MR512; i++)
            Ap[p * MR512 + i] = a[i * rs_a + p];
}
#endif /* MINICLIP_HAVE_AVX2_KERNELS */

/* ------------------------------------------------------------------ dispatch
 * simd_cap: the best level allowed (-1: not decided yet, then read from the environment).
 * Each level runs only where the CPU has it, so a cap above the CPU's level changes nothing. */
enum { SIMD_GENERIC = 0, SIMD_AVX2 = 1, SIMD_AVX512 = 2 };
static int simd_cap = -1;

static int cpu_has_avx2_fma(void)
{
#if MINICLIP_HAVE_AVX2_KERNELS
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

static int cpu_has_avx512(void)
{
#if MINICLIP_HAVE_AVX2_KERNELS
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && cpu_has_avx2_fma();
#else
    return 0;
#endif
}

static int env_set(const char *name)
{
    const char *env = getenv(name);
    return env && env[0] && strcmp(env, "0") != 0;
}

static int cap(void)
{
    if (simd_cap < 0)
        simd_cap = env_set("MINICLIP_FORCE_GENERIC") ? SIMD_GENERIC
                 : env_set("MINICLIP_FORCE_AVX2") ? SIMD_AVX2 : SIMD_AVX512;
    return simd_cap;
}

int miniclip_use_avx2(void) { return cap() >= SIMD_AVX2 && cpu_has_avx2_fma(); }
int miniclip_use_avx512(void) { return cap() >= SIMD_AVX512 && cpu_has_avx512(); }

/* mode: 0 the best the CPU has, 1 generic, 2 at most AVX2 (miniclip.h) */
void miniclip_set_simd(int mode) { simd_cap = mode == 1 ? SIMD_GENERIC : mode == 2 ? SIMD_AVX2 : SIMD_AVX512; }

const char *miniclip_simd_name(void)
{
    return miniclip_use_avx512() ? "avx512" : miniclip_use_avx2() ? "avx2+fma" : "generic";
}

gemm_ukr_f32_t gemm_ukr_f32(void)
{
#if MINICLIP_HAVE_AVX2_KERNELS
    if (miniclip_use_avx2()) return ukr_avx2_f32;
#endif
    return ukr_generic_f32;
}

gemm_ukr_f64_t gemm_ukr_f64(void)
{
#if MINICLIP_HAVE_AVX2_KERNELS
    if (miniclip_use_avx2()) return ukr_avx2_f64;
#endif
    return ukr_generic_f64;
}

gemm_ukr_f32_t gemm_ukr512_f32(void)
{
#if MINICLIP_HAVE_AVX2_KERNELS
    if (miniclip_use_avx512()) return ukr_avx512_f32;
#endif
    return NULL;
}

gemm_ukr_f64_t gemm_ukr512_f64(void)
{
#if MINICLIP_HAVE_AVX2_KERNELS
    if (miniclip_use_avx512()) return ukr_avx512_f64;
#endif
    return NULL;
}

int gemm_pack_a_rowmajor_f32(idx_t mr, idx_t kc, const float *a, idx_t rs_a, float *Ap)
{
#if MINICLIP_HAVE_AVX2_KERNELS
    if (mr == GEMM_MR512_F32 && miniclip_use_avx512()) {
        pack_a_rowmajor_avx512_f32(kc, a, rs_a, Ap);
        return 1;
    }
    if (mr == GEMM_MR_F32 && miniclip_use_avx2()) {
        pack_a_rowmajor_avx2_f32(kc, a, rs_a, Ap);
        return 1;
    }
#endif
    (void)mr; (void)kc; (void)a; (void)rs_a; (void)Ap;
    return 0;
}

int gemm_pack_a_rowmajor_f64(idx_t mr, idx_t kc, const double *a, idx_t rs_a, double *Ap)
{
#if MINICLIP_HAVE_AVX2_KERNELS
    if (mr == GEMM_MR512_F64 && miniclip_use_avx512()) {
        pack_a_rowmajor_avx512_f64(kc, a, rs_a, Ap);
        return 1;
    }
#endif
    (void)mr; (void)kc; (void)a; (void)rs_a; (void)Ap;     /* float64 6 x 8: the portable loop */
    return 0;
}
