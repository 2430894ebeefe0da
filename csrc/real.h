/* real.h: one kernel source for float32 and float64 (internal header, no include guard).
 *
 * A kernel is written once, in a `<kernel>_impl.h` file, with REAL for the element type and
 * SFX(name) for every name that exists per type. Its `.c` file compiles it twice:
 *
 *     #define REAL_BITS 32
 *     #include "softmax_impl.h"          // softmax_rows_f32, ...
 *     #define REAL_BITS 64
 *     #include "softmax_impl.h"          // softmax_rows_f64, ...
 *
 * Each `_impl.h` includes this header first and real_end.h last. Given REAL_BITS, it defines
 *   REAL          the element type: float or double
 *   SFX(name)     name with the type suffix: name_f32 or name_f64
 *   EXP, LOG, SQRT   libm for that type (expf / exp, ...)
 *   VEXP          y = exp(x - shift) over a row, returning the sum (vexp.h)
 *   MR, NR        the GEMM micro-kernel's tile, rows x columns (gemm_microkernel.h): generic / AVX2
 *   UKR_T, GET_UKR   the micro-kernel's type and its run-time choice (AVX2 or generic)
 *   MR512, NR512, GET_UKR512   the AVX-512 micro-kernel's tile and its run-time choice (NULL
 *                 where it may not run: no AVX-512, or capped by miniclip_set_simd)
 * (T is never the element type in csrc/: it is the token count, as in the shape legends.)
 */
#include <math.h>

#include "gemm_microkernel.h"
#include "vexp.h"

#if REAL_BITS == 32
#define REAL float
#define SFX(name) name##_f32
#define EXP expf
#define LOG logf
#define SQRT sqrtf
#define VEXP exp_shift_sum_f32
#define MR GEMM_MR_F32
#define NR GEMM_NR_F32
#define UKR_T gemm_ukr_f32_t
#define GET_UKR gemm_ukr_f32
#define MR512 GEMM_MR512_F32
#define NR512 GEMM_NR512_F32
#define GET_UKR512 gemm_ukr512_f32
#elif REAL_BITS == 64
#define REAL double
#define SFX(name) name##_f64
#define EXP exp
#define LOG log
#define SQRT sqrt
#define VEXP exp_shift_sum_f64
#define MR GEMM_MR_F64
#define NR GEMM_NR_F64
#define UKR_T gemm_ukr_f64_t
#define GET_UKR gemm_ukr_f64
#define MR512 GEMM_MR512_F64
#define NR512 GEMM_NR512_F64
#define GET_UKR512 gemm_ukr512_f64
#else
#error "define REAL_BITS as 32 or 64 before including a kernel's _impl.h"
#endif
