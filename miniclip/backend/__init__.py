"""The backend layer: every kernel the ops call, in two interchangeable versions.

``reference`` holds plain NumPy formulas, the executable specification of each
kernel. ``compiled`` holds the same functions from the C/Cython extension
``miniclip._C``. Ops never call NumPy's BLAS or the extension directly: they call
``K.<kernel>(...)``, and ``set_backend`` decides which implementation ``K`` holds.

    from miniclip.backend import K
    y = K.matmul(a, b)

A kernel the compiled backend does not provide falls back to its reference, so
``set_backend("compiled")`` is always complete.

Choose with ``miniclip.set_backend("numpy" | "compiled")`` or the environment
variable ``MINICLIP_BACKEND``; the default is ``compiled`` when the extension is built.
"""

import os
import types

from . import reference

try:  # the extension is optional at import time so that a broken build still explains itself
    from . import compiled
    COMPILED_ERROR = None
except ImportError as exc:  # pragma: no cover - exercised only on a failed build
    compiled = None
    COMPILED_ERROR = exc

BACKENDS = ("numpy", "compiled")

# ``K`` is the one namespace the ops read kernels from; set_backend refills it in place.
K = types.SimpleNamespace()
_active = None


def available():
    """Names of the backends that can be selected on this build."""
    return ("numpy", "compiled") if compiled is not None else ("numpy",)


def set_backend(name):
    """Select the kernels used by every op: ``"numpy"`` (reference) or ``"compiled"``."""
    global _active
    if name not in BACKENDS:
        raise ValueError(f"set_backend: expected one of {BACKENDS}, got {name!r}")
    if name == "compiled" and compiled is None:
        raise RuntimeError(
            f"set_backend('compiled'): the compiled extension miniclip._C is not built "
            f"({COMPILED_ERROR}); reinstall with `pip install -e .` or use set_backend('numpy')")
    K.__dict__.clear()
    for kernel in reference.KERNELS:
        impl = getattr(reference, kernel)
        if name == "compiled" and hasattr(compiled, kernel):
            impl = getattr(compiled, kernel)
        setattr(K, kernel, impl)
    _active = name


def get_backend():
    """The name of the active backend."""
    return _active


def _default_backend():
    requested = os.environ.get("MINICLIP_BACKEND", "").strip().lower()
    if requested:
        if requested not in BACKENDS:
            raise ValueError(f"MINICLIP_BACKEND: expected one of {BACKENDS}, got {requested!r}")
        return requested
    return "compiled" if compiled is not None else "numpy"


set_backend(_default_backend())
