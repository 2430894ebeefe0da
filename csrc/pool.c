/* pool.c: average pooling over k x k blocks, the ResNet's anti-aliased downsampling.
 *
 * Shape legend: P = N*C planes (images times channels), H, W input size, k the block,
 * Ho = H / k, Wo = W / k (rows and columns past the last whole block are dropped).
 * x (P, H, W) and y (P, Ho, Wo), contiguous.
 *
 *     y[q, i, j] = (sum over a, b < k of x[q, i*k + a, j*k + b]) / k^2
 *
 * NumPy's reference (backend/reference.py) reshapes x to (P, Ho, k, Wo, k) and takes the mean
 * over the two block axes, a reduction over a strided 5-D view that runs several times slower
 * than these loops: each output row sums k input rows, read left to right, into a row of
 * accumulators, and the planes are split between the threads. The backward writes each
 * block's share, dy / k^2, into its k x k pixels row by row (NumPy's reference: zeros, then a
 * broadcast copy into a 6-D view).
 */
#include <stdlib.h>

#include "miniclip.h"

#define REAL_BITS 32
#include "pool_impl.h"
#define REAL_BITS 64
#include "pool_impl.h"
