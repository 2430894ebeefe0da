"""``Tensor``: an ``np.ndarray`` that remembers how it was made, and ``backward()``.

A Tensor made by an op keeps its op's ``Context`` and its parent Tensors; that
chain *is* the computation graph. ``loss.backward()`` walks it once in reverse
topological order (every consumer of a tensor before the tensor itself), calls
each op's hand-written ``backward``, sums the gradients that meet at a tensor
used more than once, and accumulates the result of each leaf into ``leaf.grad``.

Semantics (the same as PyTorch's, which is what users expect):
- ``.grad`` accumulates: two ``backward()`` calls through two graphs add up.
  Call ``zero_grad()`` (or set ``.grad = None``) between optimizer steps.
- After ``backward()`` a graph's saved arrays are freed; a second ``backward()``
  through the same graph raises, unless the first used ``retain_graph=True``
  (then the second call accumulates a second copy of the gradient).
- Only leaves (tensors created by the user, e.g. parameters) get ``.grad``.
"""

import numpy as np

from .function import is_float, is_grad_enabled  # noqa: F401  (is_grad_enabled: re-exported for convenience)

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class Tensor:
    """An n-dimensional array with an optional gradient.

    ``Tensor(data, requires_grad=False, dtype=None)``: ``data`` is anything
    ``np.asarray`` takes. Floating tensors must be float32 or float64; integer
    tensors (token ids, class labels) never require gradients.
    """

    # Make NumPy defer to Tensor's operators: ``ndarray * Tensor`` calls Tensor.__rmul__.
    __array_ufunc__ = None

    def __init__(self, data, requires_grad=False, dtype=None):
        if isinstance(data, Tensor):
            data = data.data
        arr = np.asarray(data, dtype=dtype)
        if is_float(arr.dtype) and arr.dtype not in FLOAT_DTYPES:
            raise TypeError(f"Tensor: expected float32 or float64 data, got {arr.dtype}")
        if requires_grad and not is_float(arr.dtype):
            raise TypeError(f"Tensor: only floating tensors can require gradients, got {arr.dtype}")
        self.data = arr
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._ctx = None       # the op's Context, when this tensor was made by an op
        self._op = None        # the op's Function class
        self._parents = ()     # the op's inputs (None for arguments that are not Tensors)

    # ------------------------------------------------------------------ basics
    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        return self.data.size

    @property
    def is_leaf(self):
        return self._ctx is None

    def numpy(self):
        """The underlying array (shared, not copied)."""
        return self.data

    def item(self):
        return self.data.item()

    def detach(self):
        """A new Tensor sharing the data, cut from the graph."""
        return Tensor(self.data)

    def zero_grad(self):
        """Forget the accumulated gradient (``.grad = None``)."""
        self.grad = None

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        op = f", op={self._op.__name__}" if self._op is not None else ""
        return f"Tensor({np.array2string(self.data, precision=4, threshold=20)}, dtype={self.dtype}{grad}{op})"

    # ---------------------------------------------------------------- backward
    def backward(self, grad=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) * grad into every leaf's ``.grad``.

        ``grad`` is the upstream gradient, of this tensor's shape; it defaults to 1
        for a tensor with one element (a loss).
        """
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad (no input of the "
                               "computation had requires_grad=True, or it was made under no_grad())")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward: grad can be omitted only for a tensor with one element; "
                                   f"this one has shape {self.shape}. Pass grad= of that shape.")
            grad = np.ones_like(self.data)
        else:
            grad = grad.data if isinstance(grad, Tensor) else np.asarray(grad)
            if grad.shape != self.shape:
                raise ValueError(f"backward: expected grad of shape {self.shape}, got {grad.shape}")
            grad = grad.astype(self.dtype, copy=False)

        grads = {id(self): grad}  # gradient flowing into each tensor, summed over its consumers
        for node in reversed(_topological_order(self)):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if node._ctx is None:  # a leaf: the only place gradients are stored
                node.grad = g.copy() if node.grad is None else node.grad + g
                continue
            input_grads = node._op.backward(node._ctx, g)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            if len(input_grads) != len(node._parents):
                raise RuntimeError(f"{node._op.__name__}.backward returned {len(input_grads)} gradients "
                                   f"for {len(node._parents)} inputs")
            for parent, pg in zip(node._parents, input_grads):
                if parent is None or pg is None or not parent.requires_grad:
                    continue
                if not isinstance(pg, np.ndarray):  # NumPy returns scalars from 0-d arithmetic
                    pg = np.asarray(pg)
                _check_grad(node._op.__name__, parent, pg)
                key = id(parent)
                grads[key] = pg if key not in grads else grads[key] + pg
            if not retain_graph:
                node._ctx.release()

    # ----------------------------------------------------- operators and methods
    # Each is a one-line call into miniclip.ops, imported late to avoid an import cycle.
    def __add__(self, other): return _ops().add(self, other)
    def __radd__(self, other): return _ops().add(other, self)
    def __sub__(self, other): return _ops().sub(self, other)
    def __rsub__(self, other): return _ops().sub(other, self)
    def __mul__(self, other): return _ops().mul(self, other)
    def __rmul__(self, other): return _ops().mul(other, self)
    def __truediv__(self, other): return _ops().div(self, other)
    def __rtruediv__(self, other): return _ops().div(other, self)
    def __neg__(self): return _ops().neg(self)
    def __pow__(self, exponent): return _ops().pow(self, exponent)
    def __matmul__(self, other): return _ops().matmul(self, other)
    def __rmatmul__(self, other): return _ops().matmul(other, self)
    def __getitem__(self, index): return _ops().getitem(self, index)

    def exp(self): return _ops().exp(self)
    def log(self): return _ops().log(self)
    def sqrt(self): return _ops().sqrt(self)
    def tanh(self): return _ops().tanh(self)
    def sigmoid(self): return _ops().sigmoid(self)
    def sum(self, axis=None, keepdims=False): return _ops().sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims=False): return _ops().mean(self, axis, keepdims)
    def max(self, axis=None, keepdims=False): return _ops().max(self, axis, keepdims)
    def reshape(self, *shape): return _ops().reshape(self, shape[0] if len(shape) == 1 else shape)
    def transpose(self, *axes): return _ops().transpose(self, axes[0] if len(axes) == 1 else (axes or None))
    def permute(self, *axes): return _ops().permute(self, axes[0] if len(axes) == 1 else axes)
    def softmax(self, axis=-1): return _ops().softmax(self, axis)
    def log_softmax(self, axis=-1): return _ops().log_softmax(self, axis)
    def logsumexp(self, axis=-1, keepdims=False): return _ops().logsumexp(self, axis, keepdims)

    @property
    def T(self):
        """The last two axes swapped (``x.T`` of a matrix is its transpose)."""
        return _ops().transpose(self, None)

    def astype(self, dtype):
        """A differentiable cast (float32 <-> float64)."""
        return _ops().astype(self, dtype)


def _ops():
    from .. import ops
    return ops


def _topological_order(root):
    """Tensors that ``root`` depends on (through grad-requiring paths), each after its inputs.

    Iterative depth-first search, so deep graphs never hit Python's recursion limit.
    """
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for parent in node._parents:
            if parent is not None and parent.requires_grad and id(parent) not in visited:
                stack.append((parent, False))
    return order


def _check_grad(op_name, parent, grad):
    """A backward must return a gradient of its input's exact shape and dtype."""
    if grad.shape != parent.shape:
        raise RuntimeError(f"{op_name}.backward returned a gradient of shape {np.shape(grad)} "
                           f"for an input of shape {parent.shape}")
    if grad.dtype != parent.dtype:
        raise RuntimeError(f"{op_name}.backward returned a {grad.dtype} gradient for a "
                           f"{parent.dtype} input")


def as_tensor(x, dtype=None):
    """``x`` as a Tensor (a Tensor is returned as is; arrays and scalars are wrapped)."""
    if isinstance(x, Tensor):
        return x
    return Tensor(x, dtype=dtype)
