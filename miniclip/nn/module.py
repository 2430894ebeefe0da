"""``Module``: the container every layer is built from, and ``ModuleList``.

A Module holds Parameters and other Modules as plain attributes:

    class Linear(Module):
        def __init__(self, in_features, out_features):
            super().__init__()
            self.weight = Parameter(...)   # registered as "weight"

``__setattr__`` notices Parameters and Modules and records them, in the order
they are assigned. Names are dotted paths (``transformer.resblocks.0.attn.in_proj_weight``),
listed as PyTorch lists them: a module's own parameters first, then each child's,
in definition order. Defining attributes in the same order as openai/CLIP's
``clip/model.py`` therefore gives a ``state_dict()`` with the same keys in the same order.

Buffers (``register_buffer``) are state that is saved and loaded but not learned: BatchNorm's
running statistics. As in PyTorch, ``state_dict()`` lists each module's parameters, then its
buffers, then its children's.
"""

from collections import namedtuple

import numpy as np

from ..autograd.tensor import Tensor
from .parameter import Parameter

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Module:
    """Base class of every layer: registration, traversal, state dicts, train/eval."""

    def __init__(self):
        # object.__setattr__: these three must exist before our __setattr__ can run
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "training", True)

    # ------------------------------------------------------------ registration
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        # replacing a registered Parameter (or Module) keeps its place in the order, as in PyTorch
        if isinstance(value, Parameter):
            self._modules.pop(name, None)
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._parameters.pop(name, None)
            self._modules[name] = value
        else:  # anything else (including None) unregisters the name
            self._parameters.pop(name, None)
            self._modules.pop(name, None)
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__delattr__(self, name)

    def register_buffer(self, name, array):
        """Keep ``array`` (an ndarray, updated in place by the layer) as the state entry ``name``."""
        if not isinstance(array, np.ndarray):
            raise TypeError(f"register_buffer({name!r}): expected an ndarray, got {type(array).__name__}")
        object.__setattr__(self, name, array)
        self._buffers[name] = array

    def named_buffers(self):
        """(dotted name, ndarray) of every buffer, in ``state_dict()`` order."""
        for mod_name, module in self.named_modules():
            for name, b in module._buffers.items():
                yield (f"{mod_name}.{name}" if mod_name else name), b

    # --------------------------------------------------------------- traversal
    def named_modules(self, prefix=""):
        """(dotted name, module) for this module and every descendant, depth first."""
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def children(self):
        return iter(self._modules.values())

    def named_parameters(self, prefix=""):
        """(dotted name, Parameter): own parameters first, then each child's, in definition order.

        A Parameter shared by two modules is listed once (under its first name).
        """
        seen = set()
        for mod_name, module in self.named_modules(prefix):
            for name, p in module._parameters.items():
                if id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self):
        """Every Parameter, in the order of ``named_parameters()``."""
        return [p for _, p in self.named_parameters()]

    def num_parameters(self):
        """The number of learnable scalars."""
        return int(sum(p.size for p in self.parameters()))

    # ---------------------------------------------------------------- training
    def train(self, mode=True):
        """Set ``training`` on this module and every descendant; returns self.

        Only BatchNorm reads it (the ResNet image encoders): batch statistics in training,
        running statistics in eval. The transformers have no dropout, so the flag changes
        nothing there.
        """
        for _, m in self.named_modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        """``train(False)``; returns self."""
        return self.train(False)

    def zero_grad(self):
        """Set ``.grad = None`` on every parameter (gradients accumulate across backward calls)."""
        for p in self.parameters():
            p.grad = None

    # ------------------------------------------------------------- state dicts
    def _state(self):
        """{dotted name: Parameter or buffer}: each module's parameters, then its buffers, then its children."""
        state, seen = {}, set()
        for mod_name, module in self.named_modules():
            prefix = f"{mod_name}." if mod_name else ""
            for name, p in module._parameters.items():
                if id(p) not in seen:  # a shared Parameter is listed once, under its first name
                    seen.add(id(p))
                    state[prefix + name] = p
            for name, b in module._buffers.items():
                state[prefix + name] = b
        return state

    def state_dict(self):
        """{dotted name: a copy of the parameter's or buffer's array}, in PyTorch's order."""
        return {name: (v.data if isinstance(v, Tensor) else v).copy() for name, v in self._state().items()}

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays into the parameters and buffers (cast to each one's dtype).

        Values may be ndarrays, Tensors or anything ``np.asarray`` takes. A shape
        mismatch is always an error naming the key and both shapes. With
        ``strict=True`` missing and unexpected keys are errors too (all of them are
        listed); with ``strict=False`` they are returned as
        ``IncompatibleKeys(missing_keys, unexpected_keys)``.
        """
        params = self._state()
        missing = [k for k in params if k not in state_dict]
        unexpected = [k for k in state_dict if k not in params]
        problems = []
        arrays = {}
        for name, p in params.items():
            if name not in state_dict:
                continue
            value = state_dict[name]
            arr = value.data if isinstance(value, Tensor) else np.asarray(value)
            if arr.shape != p.shape:
                problems.append(f"size mismatch for {name}: the checkpoint has shape {arr.shape}, "
                                f"the model has shape {p.shape}")
            elif not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
                problems.append(f"{name}: expected a numeric array, got dtype {arr.dtype}")
            else:
                arrays[name] = arr
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        if problems:
            raise ValueError(f"load_state_dict into {type(self).__name__} failed:\n  " + "\n  ".join(problems))
        # only now, with every check passed, write: a failed load leaves the model unchanged
        for name, arr in arrays.items():
            p = params[name]
            if isinstance(p, Tensor):
                p.data[...] = arr.astype(p.dtype, copy=False)
                p.grad = None
            else:  # a buffer, written in place: the layer holds this very array
                p[...] = arr.astype(p.dtype, copy=False)
        return IncompatibleKeys(missing, unexpected)

    # ---------------------------------------------------------------- calling
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self._modules.items():
            child_lines = repr(child).split("\n")
            lines.append(f"  ({name}): " + "\n  ".join(child_lines))
        return "\n".join(lines) + ")" if len(lines) == 1 else "\n".join(lines) + "\n)"


class ModuleList(Module):
    """A list of modules registered under "0", "1", ... (``resblocks.0.attn...``)."""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList.append: expected a Module, got {type(module).__name__}")
        setattr(self, str(len(self._modules)), module)
        return self

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())
