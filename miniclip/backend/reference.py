"""Reference kernels: plain NumPy, the executable specification of every kernel.

Each function is what a compiled kernel in ``csrc/`` must reproduce (tests hold
them equal). They are also the ``numpy`` backend, so everything runs without a
compiler. Kernels *return* (or write into ``out``) their results; they never
accumulate into gradients: only the autograd engine does that.

Shape legend: M, N, K GEMM sizes; R rows (all leading axes flattened), C the last axis.
"""

import numpy as np

KERNELS = (
    "gemm", "gemm_naive",
    "matmul", "linear",
    "softmax", "softmax_backward", "log_softmax", "log_softmax_backward", "logsumexp",
    "layer_norm_forward", "layer_norm_backward",
    "gelu_forward", "gelu_backward", "quick_gelu_forward", "quick_gelu_backward", "relu_backward",
    "cross_entropy_forward", "cross_entropy_backward",
    "attention_forward", "attention_backward",
    "embedding_backward",
    "im2col", "col2im", "conv2d", "conv2d_backward", "avg_pool2d", "avg_pool2d_backward",
    "batch_norm_stats", "batch_norm_apply", "batch_norm_backward",
    "adamw_step",
)


# --------------------------------------------------------------------------- GEMM
GEMM_VERSIONS = ("v1", "v2", "v3")


def gemm(A, B, C, alpha=1.0, beta=0.0, version="v3"):
    """C = alpha * A @ B + beta * C, written into C and returned (BLAS's GEMM).

    A (M, K), B (K, N), C (M, N), 2-D, one float dtype, any strides: op(A) = A^T is
    just ``A.T``. beta == 0 means C is write-only (never read, so NaN in C cannot
    leak). ``version`` picks the compiled implementation (v1 naive, v2 tiled, v3
    packed); the reference computes the same product whatever it says.
    """
    check_gemm_args("gemm", A, B, C, version)
    product = alpha * (A @ B)
    if beta == 0:  # beta == 0: C is write-only, as in BLAS
        C[...] = product
    else:
        C[...] = product + beta * C
    return C


def gemm_naive(A, B, C, alpha=1.0, beta=0.0):
    """GEMM v1 (the naive triple loop when compiled); same contract as ``gemm``."""
    return gemm(A, B, C, alpha, beta, version="v1")


def check_gemm_args(name, A, B, C, version="v3"):
    """Raise a clear error unless A (M, K), B (K, N), C (M, N) are 2-D, one float dtype, C writeable."""
    if version not in GEMM_VERSIONS:
        raise ValueError(f"{name}: expected version in {GEMM_VERSIONS}, got {version!r}")
    for arg, arr in (("A", A), ("B", B), ("C", C)):
        if not isinstance(arr, np.ndarray) or arr.ndim != 2:
            raise ValueError(f"{name}: expected {arg} to be a 2-D ndarray, got {type(arr).__name__} "
                             f"with shape {getattr(arr, 'shape', None)}")
    if not (A.dtype == B.dtype == C.dtype) or A.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name}: expected A, B, C of one dtype, float32 or float64; "
                        f"got {A.dtype}, {B.dtype}, {C.dtype}")
    if A.shape[1] != B.shape[0] or C.shape != (A.shape[0], B.shape[1]):
        raise ValueError(f"{name}: expected A (M, K), B (K, N), C (M, N); got A {A.shape}, "
                         f"B {B.shape}, C {C.shape}")
    if not C.flags.writeable:
        raise ValueError(f"{name}: C must be writeable")
    if np.may_share_memory(C, A) or np.may_share_memory(C, B):
        raise ValueError(f"{name}: C must not overlap A or B")


def matmul(a, b):
    """a @ b with NumPy's batch broadcasting over leading axes."""
    return np.matmul(a, b)


def linear(x, weight, bias=None, residual=None):
    """y = x W^T + b (+ residual): a layer's output, and optionally the residual stream it joins.

    x (R, C_in), weight (C_out, C_in), bias (C_out,) or None, residual (R, C_out) or None;
    y (R, C_out). Added in this order: (x W^T + b) + residual.
    """
    y = x @ weight.T                                  # (R, C_in) @ (C_in, C_out) -> (R, C_out)
    if bias is not None:
        y += bias
    if residual is not None:
        y += residual
    return y


# ----------------------------------------------------------------- softmax family
def softmax(x, axis=-1):
    """softmax(x)_i = exp(x_i - m) / sum_j exp(x_j - m), m = max_j x_j (shift for stability)."""
    shifted = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / np.sum(e, axis=axis, keepdims=True)


def softmax_backward(y, dy, axis=-1):
    """dx = y * (dy - sum(dy * y)): the Jacobian-vector product without forming the Jacobian.

    With y = softmax(x), dy_i/dx_j = y_i (delta_ij - y_j), so
    dx_j = sum_i dy_i y_i (delta_ij - y_j) = y_j (dy_j - sum_i dy_i y_i).
    """
    return y * (dy - np.sum(dy * y, axis=axis, keepdims=True))


def logsumexp(x, axis=-1, keepdims=False):
    """log sum_j exp(x_j) = m + log sum_j exp(x_j - m), m = max_j x_j."""
    m = np.max(x, axis=axis, keepdims=True)
    # an all -inf row has m = -inf; shift by 0 there so that -inf - -inf never makes NaN
    m = np.where(np.isfinite(m), m, 0).astype(x.dtype, copy=False)
    out = m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axis)


def log_softmax(x, axis=-1):
    """log_softmax(x) = x - logsumexp(x)."""
    return x - logsumexp(x, axis=axis, keepdims=True)


def log_softmax_backward(y, dy, axis=-1):
    """dx = dy - softmax(x) * sum(dy), with y = log_softmax(x) so softmax(x) = exp(y)."""
    return dy - np.exp(y) * np.sum(dy, axis=axis, keepdims=True)


# ---------------------------------------------------------------------- layer norm
def layer_norm_forward(x, weight, bias, eps=1e-5):
    """y = (x - mean) * rstd * weight + bias over the last axis, rstd = 1 / sqrt(var + eps).

    Returns (y, mean, rstd); mean and rstd have shape x.shape[:-1] + (1,) and are
    what the backward needs.
    """
    mean = np.mean(x, axis=-1, keepdims=True)
    xc = x - mean
    var = np.mean(xc * xc, axis=-1, keepdims=True)  # biased variance, as PyTorch's LayerNorm
    rstd = 1.0 / np.sqrt(var + eps)
    rstd = rstd.astype(x.dtype, copy=False)
    y = xc * rstd
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y, mean, rstd


def layer_norm_backward(dy, x, weight, mean, rstd):
    """Closed-form LayerNorm backward over the last axis (C features).

    With xhat = (x - mean) * rstd and g = dy * weight:
        dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
        dweight = sum over rows of dy * xhat;  dbias = sum over rows of dy
    (the two mean terms are the gradient through mean and through rstd).
    """
    xhat = (x - mean) * rstd
    g = dy * weight if weight is not None else dy
    dx = rstd * (g - np.mean(g, axis=-1, keepdims=True)
                 - xhat * np.mean(g * xhat, axis=-1, keepdims=True))
    rows = tuple(range(dy.ndim - 1))
    dweight = np.sum(dy * xhat, axis=rows) if weight is not None else None
    dbias = np.sum(dy, axis=rows)
    return dx, dweight, dbias


# ----------------------------------------------------------------------- activations
def relu_backward(y, dy):
    """ReLU's backward from its output y = max(x, 0): dy where y > 0, else 0 (the subgradient 0
    at x = 0, as PyTorch)."""
    return np.where(y > 0, dy, 0)


_SQRT_2_OVER_PI = 0.7978845608028654  # sqrt(2 / pi)
_GELU_C = 0.044715


def gelu_forward(x):
    """GELU, tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    inner = _SQRT_2_OVER_PI * (x + _GELU_C * x * x * x)
    return 0.5 * x * (1.0 + np.tanh(inner))


def gelu_backward(x, dy):
    """d/dx GELU = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2), t = tanh(inner)."""
    inner = _SQRT_2_OVER_PI * (x + _GELU_C * x * x * x)
    t = np.tanh(inner)
    dinner = _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_C * x * x)
    return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dinner)


def sigmoid(z):
    """sigmoid(z) = 1 / (1 + exp(-z)), evaluated without overflow for large |z|.

    The one home of the stable sigmoid: the ``sigmoid`` op, QuickGELU and logsigmoid's backward
    call it. For z < 0 it is written exp(z) / (1 + exp(z)), so exp only ever sees -|z|.
    """
    e = np.exp(-np.abs(z))  # in (0, 1]: never overflows
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(z.dtype, copy=False)


def quick_gelu_forward(x):
    """QuickGELU (the original CLIP's activation): x * sigmoid(1.702 x)."""
    return x * sigmoid(1.702 * x)


def quick_gelu_backward(x, dy):
    """d/dx [x s(1.702 x)] = s + 1.702 x s (1 - s), s = sigmoid(1.702 x)."""
    s = sigmoid(1.702 * x)
    return dy * (s + 1.702 * x * s * (1.0 - s))


# --------------------------------------------------------------------- cross entropy
def cross_entropy_forward(logits, targets):
    """Mean over rows of -log_softmax(logits)[i, targets[i]]; logits (R, C), targets (R,) ints.

    Returns (loss as a 0-d array, log_probs (R, C)) — log_probs is what the backward needs.
    """
    log_probs = log_softmax(logits, axis=-1)
    rows = np.arange(logits.shape[0])
    loss = -np.mean(log_probs[rows, targets])
    return np.asarray(loss, dtype=logits.dtype), log_probs


def cross_entropy_backward(log_probs, targets, dloss):
    """dlogits = dloss * (softmax - one_hot(targets)) / R."""
    R = log_probs.shape[0]
    dlogits = np.exp(log_probs)
    dlogits[np.arange(R), targets] -= 1.0
    return dlogits * (dloss / R)


# ------------------------------------------------------------ multi-head attention
def _causal_scores(q, k, scale, causal):
    """S = scale * q k^T, with -inf strictly above the diagonal when causal."""
    s = np.matmul(q, np.swapaxes(k, -1, -2)) * np.asarray(scale, dtype=q.dtype)  # (B, H, T, T)
    if causal:
        T = q.shape[-2]
        s = np.where(np.triu(np.ones((T, T), dtype=bool), k=1), -np.inf, s).astype(q.dtype, copy=False)
    return s


def attention_forward(q, k, v, scale, causal, out=None, p=None):
    """out = softmax(scale * q k^T + mask) v, per batch and head; also returns lse.

    q, k, v: (B, H, T, D). Returns out (B, H, T, D) and lse (B, H, T), the
    log-sum-exp of each row of scores: all the backward needs to rebuild the
    probabilities, P = exp(S - lse), without keeping the (T, T) matrix.
    ``out``, when given, is a (B, H, T, D) array (or view) the result is written into;
    ``p``, when given, a (B, H, T, T) array that receives the probabilities P (kept for
    the backward, which then need not rebuild them).
    """
    s = _causal_scores(q, k, scale, causal)
    lse = logsumexp(s, axis=-1)                       # (B, H, T)
    probs = np.exp(s - lse[..., None])                # (B, H, T, T)
    if p is not None:
        p[...] = probs
    p = probs
    if out is None:
        return np.matmul(p, v), lse
    out[...] = np.matmul(p, v)
    return out, lse


def attention_backward(dout, q, k, v, out, lse, scale, causal, grads=None, p=None):
    """Gradients of attention, recomputing P = exp(S - lse) from the saved lse (or given ``p``,
    the probabilities the forward kept).

    With P the probabilities and O = P V:
        dV = P^T dO
        dP = dO V^T
        dS = P * (dP - rowsum(dO * O))   (softmax backward: sum_j P_ij dP_ij = dO_i . O_i)
        dQ = scale * dS K,   dK = scale * dS^T Q
    Returns dq, dk, dv, each (B, H, T, D); written into ``grads`` (three arrays or views) when given.
    """
    if p is None:
        s = _causal_scores(q, k, scale, causal)
        p = np.exp(s - lse[..., None])                                # (B, H, T, T)
    dv = np.matmul(np.swapaxes(p, -1, -2), dout)
    dp = np.matmul(dout, np.swapaxes(v, -1, -2))
    delta = np.sum(dout * out, axis=-1, keepdims=True)               # (B, H, T, 1)
    ds = p * (dp - delta)
    sc = np.asarray(scale, dtype=q.dtype)
    dq = np.matmul(ds, k) * sc
    dk = np.matmul(np.swapaxes(ds, -1, -2), q) * sc
    if grads is None:
        return dq, dk, dv
    for g, value in zip(grads, (dq, dk, dv)):
        g[...] = value
    return grads


# ----------------------------------------------------------------------------- embedding
def embedding_backward(ids, dout, num_embeddings):
    """dweight (V, C) of an embedding lookup out = weight[ids]: each row of dout added to row ids[n].

    ids (N,) integers in [0, V), dout (N, C), V = num_embeddings. An id that appears twice
    receives both rows (a scatter-add; plain ``dweight[ids] += dout`` would keep only one).
    """
    dweight = np.zeros((num_embeddings, dout.shape[1]), dtype=dout.dtype)
    np.add.at(dweight, ids, dout)
    return dweight


# ----------------------------------------------------------------------- im2col / col2im
def im2col(x, kh, kw, stride, padding, merged=False):
    """The convolution windows of x as the columns of a matrix: x (N, C, H, W) -> cols (N, C*kh*kw, L).

    L = Ho*Wo output positions, Ho = (H + 2 padding - kh) // stride + 1 (likewise Wo); column l of
    image n holds the window under output pixel l, in the weight's (c, i, j) order:
        cols[n, (c, i, j), (ho, wo)] = x_padded[n, c, ho*stride + i, wo*stride + j]
    so a convolution is one matrix product per image: weight (C_out, C*kh*kw) @ cols[n].
    A 1x1 window with stride 1 and no padding is x itself: returned as a view when x allows.

    ``merged=True`` lays the same columns out as one matrix (C*kh*kw, N*L), the images side by
    side (column n*L + l is window l of image n), so that a product summed over all images (the
    convolution's weight gradient) is one GEMM instead of N thin ones.

    The loop runs over the kh*kw window offsets (i, j), each copying a whole strided (N, C, Ho, Wo)
    slab of x, the mirror image of ``col2im``; one 6-D transposing copy of a sliding-window view
    does the same work several times slower on large feature maps (see benchmarks/README.md).
    """
    N, C, H, W = x.shape
    if merged:
        cols = im2col(x, kh, kw, stride, padding)                      # (N, CK, L)
        return np.ascontiguousarray(cols.transpose(1, 0, 2)).reshape(cols.shape[1], -1)   # (CK, N*L)
    if kh == kw == 1 and stride == 1 and padding == 0:
        return x.reshape(N, C, H * W)                                  # every pixel is its own window
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    Ho = (H + 2 * padding - kh) // stride + 1
    Wo = (W + 2 * padding - kw) // stride + 1
    cols = np.empty((N, C, kh, kw, Ho, Wo), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):  # offset (i, j) of every window: rows i, i+s, ..., columns j, j+s, ...
            cols[:, :, i, j] = x[:, :, i:i + stride * Ho:stride, j:j + stride * Wo:stride]
    return cols.reshape(N, C * kh * kw, Ho * Wo)


def col2im(cols, x_shape, kh, kw, stride, padding, merged=False):
    """The adjoint of ``im2col``: each column entry added back to the pixel it was copied from.

    cols (N, C*kh*kw, L) -> dx (N, C, H, W) with x_shape = (N, C, H, W); with ``merged=True``
    cols is im2col's merged layout (C*kh*kw, N*L). Windows overlap when stride < kernel, so a
    pixel collects the sum over every window (i, j) that read it; the loop runs over the kh*kw
    window offsets, each a strided add of a whole (N, C, Ho, Wo) slab.
    """
    N, C, H, W = x_shape
    if merged:
        cols = cols.reshape(cols.shape[0], N, -1).transpose(1, 0, 2)   # (CK, N*L) -> (N, CK, L)
        return col2im(np.ascontiguousarray(cols), x_shape, kh, kw, stride, padding)
    if kh == kw == 1 and stride == 1 and padding == 0:
        return cols.reshape(x_shape)
    Ho = (H + 2 * padding - kh) // stride + 1
    Wo = (W + 2 * padding - kw) // stride + 1
    cols = cols.reshape(N, C, kh, kw, Ho, Wo)
    dx = np.zeros((N, C, H + 2 * padding, W + 2 * padding), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):  # offset (i, j) of every window: rows i, i+s, ..., columns j, j+s, ...
            dx[:, :, i:i + stride * Ho:stride, j:j + stride * Wo:stride] += cols[:, :, i, j]
    return dx[:, :, padding:padding + H, padding:padding + W]


def conv2d(x, weight, stride, padding, scale=None, shift=None, residual=None, relu=False, method="auto"):
    """y = conv(x, weight), then the epilogue: y = y * scale[o] + shift[o] + residual, then max(y, 0).

    x (N, C, H, W), weight (O, C, kh, kw) -> y (N, O, Ho, Wo): one product per image of the
    weight (O, C*kh*kw) and ``im2col(x)[n]`` (C*kh*kw, L). ``scale``, ``shift`` (O,) and
    ``residual`` (N, O, Ho, Wo) may be None (skipped); ``relu`` applies max(y, 0) last. The
    epilogue is eval-mode BatchNorm (scale = weight / sqrt(running_var + eps), shift = bias -
    running_mean * scale), the Bottleneck's shortcut and its ReLU, in that order. ``method`` picks
    the compiled algorithm ("im2col", "winograd", "auto"); the reference computes the same
    convolution whatever it says.
    """
    if method not in ("auto", "im2col", "winograd"):
        raise ValueError(f"conv2d: expected method 'auto', 'im2col' or 'winograd', got {method!r}")
    N, C, H, W = x.shape
    O, _, kh, kw = weight.shape
    Ho, Wo = (H + 2 * padding - kh) // stride + 1, (W + 2 * padding - kw) // stride + 1
    cols = im2col(x, kh, kw, stride, padding)                          # (N, CK, L)
    y = matmul(weight.reshape(O, -1), cols).reshape(N, O, Ho, Wo)      # (O, CK) @ (N, CK, L)
    if scale is not None:
        y *= scale.reshape(1, O, 1, 1)
    if shift is not None:
        y += shift.reshape(1, O, 1, 1)
    if residual is not None:
        y += residual
    if relu:
        np.maximum(y, 0, out=y)
    return y


def conv2d_backward(x, weight, dy, stride, padding, needs_dx=True, needs_dw=True):
    """The convolution's gradients -> (dx, dweight), each None unless needed (ops/conv.py).

    x (N, C, H, W), weight (O, C, kh, kw), dy (N, O, Ho, Wo). On the merged layout, the images'
    columns side by side, cols_all (CK, N*L) and dy_all (O, N*L):
        dW        = dy_all @ cols_all^T       (O, N*L) @ (N*L, CK): the sum over images and positions
        dcols_all = W^T @ dy_all              (CK, O) @ (O, N*L)
        dx        = col2im(dcols_all)
    """
    N, O, Ho, Wo = dy.shape
    _, C, kh, kw = weight.shape
    dy_all = dy.reshape(N, O, Ho * Wo).transpose(1, 0, 2).reshape(O, N * Ho * Wo)   # (O, N*L)
    dx = dw = None
    if needs_dw:
        dw = (dy_all @ im2col(x, kh, kw, stride, padding, merged=True).T).reshape(weight.shape)
    if needs_dx:
        dcols_all = weight.reshape(O, C * kh * kw).T @ dy_all                       # (CK, N*L)
        dx = col2im(dcols_all, x.shape, kh, kw, stride, padding, merged=True)
    return dx, dw


def avg_pool2d(x, k):
    """The mean of each k x k block of x (N, C, H, W) -> (N, C, H // k, W // k); rows and columns
    past the last whole block are dropped (PyTorch's ``AvgPool2d(k)``, ``ceil_mode=False``)."""
    N, C, H, W = x.shape
    Ho, Wo = H // k, W // k
    blocks = x[:, :, :Ho * k, :Wo * k].reshape(N, C, Ho, k, Wo, k)     # (N, C, Ho, k, Wo, k)
    return blocks.mean(axis=(3, 5))                                     # (N, C, Ho, Wo)


def avg_pool2d_backward(dy, x_shape, k):
    """The backward of ``avg_pool2d``: dx (x_shape) = dy / k^2 copied over each k x k block,
    0 on the rows and columns past the last whole block."""
    N, C, H, W = x_shape
    Ho, Wo = dy.shape[2:]
    dx = np.zeros(x_shape, dtype=dy.dtype)
    blocks = dx[:, :, :Ho * k, :Wo * k].reshape(N, C, Ho, k, Wo, k)  # a view into dx (contiguous rows)
    blocks[...] = (dy / (k * k))[:, :, :, None, :, None]              # each block gets its share
    return dx


# ------------------------------------------------------------------------ batch norm
# x, y, dy, dx (N, C, H, W); the rest (C,); sums and means over the M = N*H*W values of a channel.
_BN_AXES = (0, 2, 3)  # every axis but the channels


def batch_norm_stats(x):
    """BatchNorm2d's training statistics: mean[c] and the biased var[c] = mean((x - mean[c])^2)."""
    return x.mean(axis=_BN_AXES), x.var(axis=_BN_AXES)


def batch_norm_apply(x, scale, shift):
    """BatchNorm2d as a per-channel affine map: y = x * scale[c] + shift[c]."""
    y = x * scale.reshape(1, -1, 1, 1)
    y += shift.reshape(1, -1, 1, 1)
    return y


def batch_norm_backward(x, dy, mu, rstd, weight, training):
    """BatchNorm2d's backward -> (dx, dweight, dbias). With xhat = (x - mu) * rstd, g = dy * weight:
        dbias = sum(dy),   dweight = sum(dy * xhat)
        dx = rstd * (g - mean(g) - xhat * mean(g * xhat))     training: mu, rstd the batch's
        dx = rstd * g                                         eval: mu, rstd constants
    (mean(g) = weight * dbias / M is the path through mu, mean(g * xhat) = weight * dweight / M
    the path through the variance)."""
    xhat = (x - mu.reshape(1, -1, 1, 1)) * rstd.reshape(1, -1, 1, 1)   # (N, C, H, W), recomputed
    dbias = dy.sum(axis=_BN_AXES)
    dweight = (dy * xhat).sum(axis=_BN_AXES)
    scale = (weight * rstd).reshape(1, -1, 1, 1)
    if not training:
        return dy * scale, dweight, dbias
    M = dy.size // dy.shape[1]
    dx = scale * (dy - (dbias / M).reshape(1, -1, 1, 1) - xhat * (dweight / M).reshape(1, -1, 1, 1))
    return dx, dweight, dbias


# ----------------------------------------------------------------------------- AdamW
def adamw_step(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, step):
    """One AdamW update (Loshchilov & Hutter 2019; torch.optim.AdamW), in place on param, m, v.

    With t = step (1 for the first update):
        p = p * (1 - lr * weight_decay)                  decoupled weight decay, applied first
        m = beta1 m + (1 - beta1) g                      first moment
        v = beta2 v + (1 - beta2) g^2                    second moment
        p = p - lr * mhat / (sqrt(vhat) + eps),  mhat = m / (1 - beta1^t), vhat = v / (1 - beta2^t)
    the last line arranged as PyTorch does: p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps).
    Returns None; param, m and v are updated where they are.
    """
    if step < 1:
        raise ValueError(f"adamw_step: expected step >= 1 (the number of this update), got {step}")
    bc1 = 1.0 - beta1 ** step
    bc2 = 1.0 - beta2 ** step
    param *= 1.0 - lr * weight_decay
    m *= beta1
    m += (1.0 - beta1) * grad
    v *= beta2
    v += (1.0 - beta2) * grad * grad
    param -= (lr / bc1) * m / (np.sqrt(v) / np.sqrt(bc2) + eps)
