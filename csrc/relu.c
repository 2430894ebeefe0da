/* relu.c: ReLU's backward, dx = dy where y > 0, else 0 (y = max(x, 0), the forward's output).
 *
 * x, y, dy, dx: n contiguous values. NumPy's np.where(y > 0, dy, 0) (the reference,
 * backend/reference.py) branches on every value, and a ReLU's mask is as good as random, so
 * most of its time goes to mispredicted branches; the loop below is a select the compiler
 * turns into vector compares and blends, with no branch per value. Same values as np.where,
 * NaN included: where y > 0 is false (y = 0 or NaN) dx is +0, whatever dy holds.
 */
#include "miniclip.h"

#define PARALLEL_ELEMENTS 32768

void relu_backward_f32(idx_t n, const float *y, const float *dy, float *dx)
{
    #pragma omp parallel for schedule(static) if(n > PARALLEL_ELEMENTS)
    for (idx_t i = 0; i < n; i++) {
        float g = dy[i];                /* read unconditionally: a select, not a branch around a load */
        dx[i] = y[i] > 0 ? g : 0.0f;
    }
}

void relu_backward_f64(idx_t n, const double *y, const double *dy, double *dx)
{
    #pragma omp parallel for schedule(static) if(n > PARALLEL_ELEMENTS)
    for (idx_t i = 0; i < n; i++) {
        double g = dy[i];
        dx[i] = y[i] > 0 ? g : 0.0;
    }
}
