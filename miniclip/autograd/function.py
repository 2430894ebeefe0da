"""``Function``: one differentiable op, its forward and its hand-written backward.

Every op in ``miniclip.ops`` is a subclass with two static methods that work on
plain NumPy arrays:

    class Mul(Function):
        @staticmethod
        def forward(ctx, a, b):          # a, b: ndarrays
            ctx.save_for_backward(a, b)
            return a * b
        @staticmethod
        def backward(ctx, dout):         # dout: dL/d(output), same shape as the output
            a, b = ctx.saved_tensors
            return dout * b, dout * a    # one gradient per input (None where not needed)

``Mul.apply(x, y)`` unwraps Tensors, runs ``forward``, and, when gradients are
being recorded, links the output to its inputs through the ``Context`` so that
``Tensor.backward`` can call ``backward`` later. Arguments that are not Tensors
(axes, shapes, flags) are passed through unchanged and get no gradient.
"""

import contextlib
import threading

_state = threading.local()


def is_grad_enabled():
    """True unless inside ``no_grad()``."""
    return getattr(_state, "grad_enabled", True)


@contextlib.contextmanager
def set_grad_enabled(mode):
    """Inside this block ops record a graph when ``mode`` is True, and none when it is False."""
    previous = is_grad_enabled()
    _state.grad_enabled = bool(mode)
    try:
        yield
    finally:
        _state.grad_enabled = previous


def no_grad():
    """Inside this block ops record no graph: outputs have ``requires_grad=False``.

    Use it for evaluation and for parameter updates (the optimizer's arithmetic is
    not part of the model).
    """
    return set_grad_enabled(False)


def is_float(dtype):
    """True for a floating dtype: ``np.issubdtype(dtype, np.floating)`` without its microseconds,
    which matter here because the engine asks for every op's inputs and output."""
    return dtype.kind == "f"


class Context:
    """What a forward pass leaves for its backward pass.

    ``save_for_backward(*arrays)`` keeps arrays (read back as ``saved_tensors``);
    other values can be stored as plain attributes (``ctx.axis = axis``).
    ``needs_input_grad[i]`` says whether input i needs a gradient, so a backward
    can skip work nobody asked for.
    """

    __slots__ = ("_saved", "needs_input_grad", "released", "__dict__")

    def __init__(self, needs_input_grad):
        self._saved = ()
        self.needs_input_grad = needs_input_grad
        self.released = False

    def save_for_backward(self, *arrays):
        self._saved = arrays

    _FREED = ("Trying to backward through the graph a second time: its saved arrays were freed "
              "after the first backward(). Call backward(retain_graph=True) the first time if you "
              "need to call it again.")

    @property
    def saved_tensors(self):
        if self.released:
            raise RuntimeError(self._FREED)
        return self._saved

    def __getattr__(self, name):  # only called for attributes that are not there
        if object.__getattribute__(self, "released"):
            raise RuntimeError(self._FREED)
        raise AttributeError(name)

    def release(self):
        """Free the saved arrays (after backward, unless the graph is retained)."""
        self._saved = ()
        self.__dict__.clear()
        self.released = True


class Function:
    """Base class of every differentiable op; see the module docstring."""

    @staticmethod
    def forward(ctx, *args):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, dout):
        raise NotImplementedError

    @classmethod
    def apply(cls, *args):
        from .tensor import Tensor  # late import: tensor.py imports this module

        tensors = [a for a in args if isinstance(a, Tensor)]
        _check_same_float_dtype(cls.__name__, tensors)
        raw = [a.data if isinstance(a, Tensor) else a for a in args]
        needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        record = is_grad_enabled() and any(needs)

        ctx = Context(needs)
        out = Tensor(cls.forward(ctx, *raw), requires_grad=record)
        if record:
            out._ctx = ctx
            out._op = cls
            out._parents = tuple(a if isinstance(a, Tensor) else None for a in args)
        return out


def _check_same_float_dtype(op_name, tensors):
    """Mixing float32 and float64 in one op is an error, never a silent upcast."""
    float_dtypes = {t.data.dtype for t in tensors if is_float(t.data.dtype)}
    if len(float_dtypes) > 1:
        names = ", ".join(sorted(str(d) for d in float_dtypes))
        raise TypeError(
            f"{op_name}: inputs have different dtypes ({names}); miniclip never upcasts silently. "
            f"Convert one side first, e.g. x.astype(np.float64).")
