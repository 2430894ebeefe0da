/* conv.c: 2-D convolution as im2col + GEMM, one block of output positions at a time.
 *
 * Shape legend: N images, C input channels, H, W input size, O output channels, kh, kw the
 * kernel, s stride, p zero padding, Ho = (H + 2p - kh) / s + 1 (Wo likewise), L = Ho*Wo output
 * positions, CK = C*kh*kw the length of one window, j = n*L + l the column of position l of
 * image n in the sequence of all N*L, lb the columns of one block.
 * x (N, C, H, W), w (O, CK), y and res (N, O, L): all contiguous.
 *
 *     for each block of lb columns j0 .. j0 + lb:
 *         cols = the im2col columns j0 .. j0 + lb              (CK, lb), a small buffer
 *         out  = w (O, CK) @ cols                              GEMM v3 (gemm_packed.c)
 *         y[n][:, l] = max(out * scale[o] + shift[o] + res, 0) the epilogue, optional parts
 *
 * This is ops/conv.py's formula (im2col, then one product per image), cut into blocks so that
 * the columns and the output block stay in the core's L2 cache: the columns are written, packed
 * by the GEMM and read while still hot, and the epilogue (eval-mode BatchNorm as a per-channel
 * scale and shift, the residual, ReLU) runs over a block the GEMM has just written, instead of
 * three more passes over the whole feature map in memory. A block may span two images (a 7x7
 * map has only 49 positions: alone it would leave most of the GEMM's 16-wide tiles empty); a
 * block inside one image is written straight into y[n], one that spans images into `out` first.
 * A 1x1 convolution with stride 1 needs no columns at all: x[n] is already the (C, L) matrix,
 * and the GEMM reads a block inside one image in place. (3x3 convolutions with stride 1 and at
 * least 128 input channels go to winograd.c instead, with fewer multiply-adds; backend/compiled.py
 * chooses.)
 *
 * Threads: the blocks are independent, so each thread takes whole blocks and runs a one-thread
 * GEMM on them (no barriers inside a product). With fewer blocks than threads (one small
 * image), the blocks run one after another, each GEMM on every thread.
 *
 * The backward (ops/conv.py states its math: dW = sum_n dy[n] cols[n]^T, dcols[n] = W^T dy[n],
 * dx = col2im(dcols)) runs on blocks of m whole images, their m*L columns side by side (the
 * "merged" layout, column i*L + l is position l of image n0 + i), dyb (O, m*L) likewise:
 *
 *     for each block of m images n0 .. n0 + m:
 *         cols = im2col of the block's images                  (CK, m*L), a small buffer
 *         dyb  = dy[n0 + i] side by side                       (O, m*L), a small buffer
 *         dW_t += dyb @ cols^T                                 (O, CK): the thread's accumulator
 *                                                              (as dW^T += cols @ dyb^T when CK > O >= 16)
 *         cols = W^T @ dyb                                     (CK, m*L): dcols, over the columns
 *         dx[n0 .. n0 + m] = col2im(cols)                      each pixel from its own image's block
 *     dW = dW_0 + dW_1 + ...                                   in thread order
 *
 * The block's columns and dy stay in cache from im2col to both GEMMs and dcols from its GEMM to
 * col2im, and the sum over images, the inner dimension of dW's product (m*L long, against O and
 * CK of a few dozen), is split between the threads by blocks rather than inside one thin GEMM.
 * Blocks hold whole images so that no two threads add into the same pixel of dx. On small maps
 * (the last stages' 4x4 and 2x2) a row (c, i, j) of the columns holds only a few values per image,
 * so the block's im2col and col2im go through the image's zero-padded plane and one table of window
 * offsets (im2col_small, col2im_small) rather than a call per image row. And when every window
 * covers the whole image (a 2x2 map under a 3x3 kernel with padding 1), the convolution is a dense
 * layer over the flattened image, and its backward two large GEMMs on that layer's matrix with 4/9
 * of the multiply-adds (conv_backward_dense).
 *
 * Also here, for tests and the reference path: im2col and col2im over whole images, the same
 * copies as the NumPy reference (backend/reference.py), parallel over the channels, in the
 * layout image by image (N, CK, L) or with the images side by side (CK, N*L).
 *
 * The code, for float and double (real.h): conv_impl.h, the forward's driver first, then the
 * column block, the epilogue, the backward's driver and block, and the whole-image im2col / col2im.
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

/* the backward runs on one thread below this many multiply-adds per GEMM (N*L*CK*O): a team's
 * start-up would cost more than it saves */
#ifndef CONV_BACKWARD_MIN_PARALLEL
#define CONV_BACKWARD_MIN_PARALLEL (1 << 17)
#endif

/* The backward's small maps (conv_backward_unit): at most this many output positions, where a
 * copy per row of columns moves only a few values and its calls cost more than its copying;
 * their padded plane ((H + 2p) x (W + 2p) values) and window offsets (kh*kw*L) live on the stack,
 * so they are bounded too. */
#ifndef CONV_SMALL_L
#define CONV_SMALL_L 16
#endif
#define CONV_SMALL_PAD 1024
#define CONV_SMALL_TAB 1024

/* The backward accumulates dW^T (CK, O) rather than dW (O, CK) when the columns outnumber the
 * output channels (conv_backward_unit says why), but not below 16 output channels */
#define DW_TRANSPOSED(CK, O) ((CK) > (O) && (O) >= 16)

/* conv_backward_dense's product for dx runs in slices of at most this much of its inner size, no
 * more than GEMM v3's KC (gemm_packed.c), so each slice is one pass of the micro-kernel however the
 * GEMM runs it */
#define CONV_DENSE_SLICE 256

/* tab[(i*kw + j)*L + l] = (ho*s + i)*Wp + wo*s + j for output position l = ho*Wo + wo: where row
 * (i, j) of the columns reads (im2col_small) and adds (col2im_small) at l, in a zero-padded plane
 * of row stride Wp = W + 2p (so every window lies inside it, with no test for the border). */
static void window_offsets(idx_t kh, idx_t kw, idx_t s, idx_t Wp, idx_t Ho, idx_t Wo, idx_t *tab)
{
    idx_t L = Ho * Wo;
    for (idx_t i = 0; i < kh; i++)
        for (idx_t j = 0; j < kw; j++)
            for (idx_t l = 0; l < L; l++)
                tab[(i * kw + j) * L + l] = (l / Wo * s + i) * Wp + l % Wo * s + j;
}

/* For the plane shifted by di rows and dj columns (stride 1, output size = input size H x W):
 * the output rows inside the image, [hlo, hhi), the columns inside it, [wlo, whi), and the flat
 * positions [a, b) of those rows whose shifted position lies inside the plane (b = a when none). */
static void same_range(idx_t H, idx_t W, idx_t di, idx_t dj, idx_t *a, idx_t *b, idx_t *hlo, idx_t *hhi,
                       idx_t *wlo, idx_t *whi)
{
    idx_t shift = di * W + dj;
    *hlo = di < 0 ? -di : 0;
    *hhi = di > 0 ? H - di : H;
    if (*hlo > H) *hlo = H;                                /* (none when |di| >= H) */
    if (*hhi < *hlo) *hhi = *hlo;
    *a = *hlo * W > -shift ? *hlo * W : -shift;
    *b = *hhi * W < H * W - shift ? *hhi * W : H * W - shift;
    if (*b < *a) *a = *b = *hlo * W;
    *wlo = dj < 0 ? (-dj < W ? -dj : W) : 0;
    *whi = dj > 0 ? (W - dj > 0 ? W - dj : 0) : W;
}

#define REAL_BITS 32
#include "conv_impl.h"
#define REAL_BITS 64
#include "conv_impl.h"
