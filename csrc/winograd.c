/* winograd.c: 3x3 convolutions (stride 1, padding 1) with Winograd's minimal filtering F(2x2, 3x3).
 *
 * Shape legend: N images, C input channels, H, W the size (kept: stride 1, padding 1), O output
 * channels; the output is cut into 2x2 tiles, th = ceil(H/2) by tw = ceil(W/2) per image,
 * T = N*th*tw tiles in all; xi in 0..15 one of the 4x4 transformed positions; tb the tiles of a block.
 * x (N, C, H, W), w (O, C, 3, 3), y and res (N, O, H, W): contiguous.
 *
 * One 2x2 output tile needs the 4x4 input patch d under it (rows 2*ty - 1 .. 2*ty + 2, zero
 * outside the image). Lavin & Gray (2016), after Winograd: with
 *
 *     B^T = [1  0 -1  0]      G = [  1    0    0 ]      A^T = [1  1  1  0]
 *           [0  1  1  0]          [ 1/2  1/2  1/2]            [0  1 -1 -1]
 *           [0 -1  1  0]          [ 1/2 -1/2  1/2]
 *           [0  1  0 -1]          [  0    0    1 ]
 *
 *     U[o, c] = G g[o, c] G^T          (4x4: the filter, transformed once per call)
 *     V[c, t] = B^T d[c, t] B          (4x4: the patch of tile t, transformed)
 *     M[o, t] = sum_c U[o, c] * V[c, t]   elementwise in the 4x4 positions xi
 *     y tile  = A^T M[o, t] A          (2x2)
 *
 * The sum over c at each of the 16 positions xi is a matrix product, M[xi] (O, T) = U[xi] (O, C)
 * @ V[xi] (C, T), so the convolution becomes 16 GEMMs (GEMM v3) of 4 outputs' worth of work each
 * for every 2x2 tile: 16 multiply-adds per (o, c) and tile instead of 9 * 4 = 36, a factor 2.25
 * fewer (the transforms are additions, O(C + O) per tile). The rounding is that of a few more
 * additions; tests/test_kernels_resnet.py holds it to the direct convolution's tolerance.
 *
 * As in conv.c the tiles are cut into blocks whose transformed inputs and products, 16 (C + O) tb
 * values, stay in L2; each thread takes whole blocks; the epilogue (scale, shift, residual, ReLU)
 * is applied as each output tile is written.
 *
 * The code, for float and double (real.h): winograd_impl.h, the driver first, then the input
 * transform, the output transform with the epilogue, the filter transform.
 */
#include <stdlib.h>

#include "miniclip.h"

#ifdef _OPENMP
#include <omp.h>
#define WINO_THREAD_ID() omp_get_thread_num()
#else
#define WINO_THREAD_ID() 0
#endif

/* a block's transformed inputs and products take at most this many bytes, */
#define WINO_BLOCK_BYTES (1536 * 1024)
/* but a block has at least this many tiles (the 16 GEMMs pack U[xi] once per block) */
#define WINO_MIN_BLOCK 128

#define REAL_BITS 32
#include "winograd_impl.h"
#define REAL_BITS 64
#include "winograd_impl.h"
