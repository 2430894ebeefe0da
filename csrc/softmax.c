/* softmax.c: softmax, log-softmax and their backward over the last axis, row by row.
 *
 * Shape legend: R rows (every leading axis flattened), C the last axis (classes, keys).
 * x, y, dy, dx: (R, C) contiguous. One pass over a row computes its max and one more
 * its exponentials and their sum (vectorised for float32, vexp.c), so nothing but the
 * output is written to memory, where NumPy's formula makes four temporaries.
 *
 *   softmax:      y = exp(x - m) / sum_j exp(x_j - m),  m = max_j x_j (for stability)
 *   log_softmax:  y = x - m - log sum_j exp(x_j - m)
 *   softmax backward:      dx = y * (dy - sum_j dy_j y_j)
 *   log_softmax backward:  dx = dy - exp(y) * sum_j dy_j
 * Threads: OpenMP over rows once there are enough elements to share.
 * The code: softmax_impl.h, written once for float and double (real.h).
 */
#include <math.h>

#include "miniclip.h"
#include "vexp.h"

#define PARALLEL_ELEMENTS 32768

#define REAL_BITS 32
#include "softmax_impl.h"
#define REAL_BITS 64
#include "softmax_impl.h"
