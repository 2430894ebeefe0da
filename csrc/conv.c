/* conv.c: 2-D convolution as im2col + GEMM, one block of output positions at a time.
 *
 * Shape legend: N images, C input channels, H, W input size, O output channels, kh, kw the
 * kernel, s stride, p zero padding, Ho = (H + 2p - kh) / s + 1 (Wo likewise), L = Ho*Wo output
 * positions, CK = C*kh*kw the length of one window, lb the positions of one block.
 * x (N, C, H, W), w (O, CK), y and res (N, O, L): all contiguous.
 *
 *     for each image n, for each block of lb output positions l0 .. l0 + lb:
 *         cols = im2col(x[n])[:, l0:l0+lb]                     (CK, lb), a small buffer
 *         y[n][:, l0:l0+lb] = w (O, CK) @ cols                 GEMM v3 (gemm_packed.c)
 *         y = max(y * scale[o] + shift[o] + res, 0)            the epilogue, optional parts
 *
 * This is ops/conv.py's formula (im2col, then one product per image), cut into blocks so that
 * the columns and the output block stay in the core's L2 cache: the columns are written, packed
 * by the GEMM and read while still hot, and the epilogue (eval-mode BatchNorm as a per-channel
 * scale and shift, the residual, ReLU) runs over a block the GEMM has just written, instead of
 * three more passes over the whole feature map in memory. A 1x1 convolution with stride 1 needs
 * no columns at all: x[n] is already the (C, L) matrix, and the GEMM reads its block in place.
 *
 * Threads: the (image, block) units are independent, so each thread takes whole units and
 * runs a one-thread GEMM on them (no barriers inside a product). With fewer units than
 * threads (one small image), the units run one after another, each GEMM on every thread.
 *
 * Also here, for the backward and for tests: im2col and col2im over whole images, the same
 * copies as the NumPy reference (backend/reference.py), parallel over the channels.
 *
 * The code, for float and double (real.h): conv_impl.h, the driver first, then the column
 * block, the epilogue, and the whole-image im2col / col2im.
 */
#include <stdlib.h>
#include <string.h>

#include "miniclip.h"

#ifdef _OPENMP
#include <omp.h>
#define CONV_THREAD_ID() omp_get_thread_num()
#else
#define CONV_THREAD_ID() 0
#endif

/* a block's columns and output take at most this many bytes (under half of a 2 MiB L2, with
 * room for the GEMM's packed panels), */
#ifndef CONV_BLOCK_BYTES
#define CONV_BLOCK_BYTES (768 * 1024)
#endif
/* but a block has at least this many columns, so the GEMM's packing of the weight, once per
 * block, stays small next to the product (O*CK copies against O*CK*lb multiply-adds) */
#ifndef CONV_MIN_BLOCK
#define CONV_MIN_BLOCK 256
#endif

#define REAL_BITS 32
#include "conv_impl.h"
#define REAL_BITS 64
#include "conv_impl.h"
