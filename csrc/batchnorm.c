/* batchnorm.c: BatchNorm2d's training statistics, its per-channel affine map and its backward.
 *
 * Shape legend: N images, C channels, HW = H*W pixels per image; M = N*HW values per channel.
 * x, y, dy, dx (N, C, HW) contiguous; mean, var, scale, shift, mu, rstd, weight, dweight,
 * dbias (C,). Row (n, c) is the HW values of channel c in image n.
 *
 *     batchnorm_stats:    mean[c] = sum x / M,  var[c] = sum (x - mean[c])^2 / M  (biased; two passes)
 *     batchnorm_apply:    y = x * scale[c] + shift[c]
 *     batchnorm_backward: xhat = (x - mu[c]) * rstd[c],  dbias = sum dy,  dweight = sum dy * xhat,
 *                         dx = weight rstd (dy - dbias / M - xhat dweight / M)    (training)
 *                         dx = weight rstd dy                                      (eval)
 *
 * The formulas are ops/batchnorm.py's, and backend/reference.py states them in NumPy. NumPy
 * spends a pass over the feature map per operation and a temporary per intermediate (x - mu,
 * its square, dy * xhat, ...); here the statistics read x twice (the mean, then the squared
 * deviations from it: two passes are exact where E[x^2] - E[x]^2 would cancel), the affine
 * map once, and the backward reads x and dy twice (the two sums, then dx). Sums are taken in
 * double, in eight independent partial sums per row so that the compiler can keep them in one
 * vector register without reordering a single addition chain. Channels are split between the
 * threads; each runs its channels image by image, so that memory is read in order.
 */
#include <stdlib.h>

#include "miniclip.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define REAL_BITS 32
#include "batchnorm_impl.h"
#define REAL_BITS 64
#include "batchnorm_impl.h"
