"""``build_info()``: what was compiled, and how the kernels will run."""

import os

import numpy as np

from .. import backend


def _numpy_blas():
    """The BLAS numpy links against, and its thread count, as threadpoolctl sees them."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return {"name": "unknown (threadpoolctl not installed)"}
    for pool in threadpool_info():
        if pool.get("user_api") == "blas":
            return {"name": pool.get("internal_api"), "version": pool.get("version"),
                    "threads": pool.get("num_threads"), "architecture": pool.get("architecture")}
    return {"name": "none found"}


def build_info():
    """A dict describing this installation (printed by ``miniclip info``).

    - ``compiled``: whether the extension ``miniclip._C`` is loaded
    - ``backend``: the active backend (``compiled`` or ``numpy``)
    - ``openmp`` / ``threads``: whether the kernels use OpenMP, and with how many threads
    - ``simd``: the GEMM micro-kernel in use (``avx2+fma`` or ``generic``)
    - ``compile_flags``: the C flags of the build (never -ffast-math)
    - ``numpy`` / ``numpy_blas``: numpy's version and the BLAS it uses
    """
    info = {
        "compiled": backend.compiled is not None,
        "backend": backend.get_backend(),
        "numpy": np.__version__,
        "numpy_blas": _numpy_blas(),
        "env": {k: os.environ[k] for k in ("MINICLIP_BACKEND", "MINICLIP_NUM_THREADS", "OMP_NUM_THREADS")
                if k in os.environ},
    }
    if backend.compiled is not None:
        from .. import _C
        info.update(openmp=_C.has_openmp(), threads=_C.max_threads(), simd=_C.simd_name(),
                    compile_flags=_C.compile_flags(), debug_build=_C.debug_build())
    else:
        info.update(openmp=False, threads=1, compile_flags=None,
                    error=f"miniclip._C failed to import: {backend.COMPILED_ERROR}")
    return info
