/* peak.c: the machine's peak floating-point rate, measured by a register-only FMA loop.
 *
 * A GEMM can at best keep every FMA unit of every core busy on every cycle. That rate is what
 * the benchmarks divide by for their "fraction of peak" column, and it is measured rather than
 * computed from a data sheet because the clock under a full vector load (AVX-512 lowers it on
 * many CPUs), the number of FMA units and what a virtual machine really gets are all unknown.
 *
 * The loop: ACC independent accumulators, each updated once per step with a fused multiply-add
 * on values that never leave the registers (no loads, no stores):
 *
 *     for step in 0..n:   acc[i] = acc[i] * m + d      (i < ACC, every lane)
 *
 * ACC = 16 chains hide the FMA latency (4 cycles x 2 FMA pipes = 8 in flight needed) with
 * room to spare. m = 1 - 2^-20 and d = 2^-20 keep every value at 1 (a fixed point), so nothing
 * overflows or turns subnormal. The FLOPs: 2 per lane per FMA (a multiply and an add).
 * The widest vectors the SIMD selection allows (gemm_microkernel.c): AVX-512, AVX2+FMA, or the
 * generic C loop (the compiler's vectors, multiply and add unfused). Each of `nthreads` OpenMP
 * threads runs the loop; the wall time of the slowest gives the rate. The best of 3 runs of
 * about `seconds` each is returned. Never -ffast-math: the loop must be exactly this.
 */
#include <time.h>

#include "gemm_microkernel.h"    /* miniclip_use_avx512 */
#include "miniclip.h"
#include "vexp.h"                /* miniclip_use_avx2, MINICLIP_HAVE_AVX2 */

#ifdef _OPENMP
#include <omp.h>
#endif

#define ACC 16

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* One thread's loop for one vector type: ACC accumulators, n steps; returns a value that
 * depends on every accumulator, so the compiler cannot drop any of them. */
#define PEAK_LOOP(VEC, SET1, FMADD, FIRST)                                   \
    VEC acc[ACC], m = SET1(1.0 - 1.0 / 1048576), d = SET1(1.0 / 1048576);   \
    for (int i = 0; i < ACC; i++) acc[i] = SET1(1.0 + i * 1e-3);             \
    for (long s = 0; s < n; s++) {                                           \
        _Pragma("GCC unroll 16")                                             \
        for (int i = 0; i < ACC; i++) acc[i] = FMADD(acc[i], m, d);          \
    }                                                                        \
    double sum = 0;                                                          \
    for (int i = 0; i < ACC; i++) sum += FIRST(acc[i]);                      \
    return sum;

#if MINICLIP_HAVE_AVX2
__attribute__((target("avx512f")))
static double loop_avx512_f32(long n) { PEAK_LOOP(__m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_cvtss_f32) }
__attribute__((target("avx512f")))
static double loop_avx512_f64(long n) { PEAK_LOOP(__m512d, _mm512_set1_pd, _mm512_fmadd_pd, _mm512_cvtsd_f64) }
__attribute__((target("avx2,fma")))
static double loop_avx2_f32(long n) { PEAK_LOOP(__m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_cvtss_f32) }
__attribute__((target("avx2,fma")))
static double loop_avx2_f64(long n) { PEAK_LOOP(__m256d, _mm256_set1_pd, _mm256_fmadd_pd, _mm256_cvtsd_f64) }
#endif

/* the generic loop: 16 lanes per accumulator, written as plain C for the compiler to vectorise */
typedef struct { float v[16]; } vec_f32;
typedef struct { double v[8]; } vec_f64;
#define GENERIC_OPS(T, VEC, LANES)                                                       \
    static VEC set1_##T(double x) { VEC r; for (int l = 0; l < LANES; l++) r.v[l] = (T)x; return r; } \
    static VEC fmadd_##T(VEC a, VEC b, VEC c) {                                          \
        VEC r; for (int l = 0; l < LANES; l++) r.v[l] = a.v[l] * b.v[l] + c.v[l]; return r; } \
    static double first_##T(VEC a) { return a.v[0]; }
GENERIC_OPS(float, vec_f32, 16)
GENERIC_OPS(double, vec_f64, 8)
static double loop_generic_f32(long n) { PEAK_LOOP(vec_f32, set1_float, fmadd_float, first_float) }
static double loop_generic_f64(long n) { PEAK_LOOP(vec_f64, set1_double, fmadd_double, first_double) }

typedef double (*peak_loop_t)(long n);

/* GFLOP/s of nt threads each running loop(n); flops_per_step counts one step of one thread */
static double run(peak_loop_t loop, long n, int nt, double flops_per_step, volatile double *sink)
{
    double t0 = now();
#ifdef _OPENMP
    #pragma omp parallel num_threads(nt)
#endif
    {
        double r = loop(n);
#ifdef _OPENMP
        #pragma omp atomic
#endif
        *sink += r;
    }
    double t = now() - t0;
    return flops_per_step * n * nt / t / 1e9;
}

static double peak(int is_f64, int nthreads, double seconds)
{
    int nt = nthreads > 0 ? nthreads : miniclip_max_threads();
#ifndef _OPENMP
    nt = 1;
#endif
    peak_loop_t loop = is_f64 ? loop_generic_f64 : loop_generic_f32;
    int lanes = 16 / (is_f64 ? 2 : 1);                 /* the generic vectors: 64 bytes */
#if MINICLIP_HAVE_AVX2
    if (miniclip_use_avx512()) {
        loop = is_f64 ? loop_avx512_f64 : loop_avx512_f32;
    } else if (miniclip_use_avx2()) {
        loop = is_f64 ? loop_avx2_f64 : loop_avx2_f32;
        lanes /= 2;
    }
#endif
    double flops_per_step = 2.0 * ACC * lanes;
    volatile double sink = 0;
    long n = 1000;                                     /* grow n until one run takes `seconds` */
    for (;;) {
        double t0 = now();
        run(loop, n, nt, flops_per_step, &sink);
        double t = now() - t0;
        if (t >= seconds || n > (1L << 40)) break;
        n = t < seconds / 16 ? n * 16 : (long)(n * seconds / t * 1.1) + 1;
    }
    double best = 0;
    for (int r = 0; r < 3; r++) {
        double g = run(loop, n, nt, flops_per_step, &sink);
        if (g > best) best = g;
    }
    return best;
}

double peak_gflops_f32(int nthreads, double seconds) { return peak(0, nthreads, seconds); }
double peak_gflops_f64(int nthreads, double seconds) { return peak(1, nthreads, seconds); }
