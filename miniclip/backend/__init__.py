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

One threading runtime on the hot path: OpenMP kernels alternating with numpy's
OpenBLAS thread pool make both pools spin on the same cores, each waiting for the
other's threads to let go (benchmarks/README.md). So while the compiled backend is active every product of the ops goes
through our GEMM, and numpy's BLAS is limited to one thread (threadpoolctl) for
whatever NumPy code still calls it; ``set_backend("numpy")`` restores its threads.
``set_num_threads(n)`` sets the kernels' thread count (``MINICLIP_NUM_THREADS``,
falling back to ``OMP_NUM_THREADS``, at import).
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


_blas_limit = None  # threadpoolctl's limiter while the compiled backend is active


def _limit_blas(on):
    """Limit numpy's BLAS pool to one thread (on) or give it back its threads (off)."""
    global _blas_limit
    if on and _blas_limit is None:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - threadpoolctl is a dependency
            return
        _blas_limit = threadpool_limits(limits=1, user_api="blas")
    elif not on and _blas_limit is not None:
        _blas_limit.restore_original_limits()
        _blas_limit = None


def set_num_threads(n):
    """Run the compiled kernels on ``n`` threads (the numpy backend uses numpy's own)."""
    if compiled is not None:
        compiled.set_num_threads(n)


def get_num_threads():
    """Threads the compiled kernels use (1 without the extension)."""
    return compiled.get_num_threads() if compiled is not None else 1


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
    _limit_blas(name == "compiled")
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
