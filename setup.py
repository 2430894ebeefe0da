"""Build miniclip's compiled extension, ``miniclip._C``.

One extension holds every kernel: the hand-written C in ``csrc/*.c`` and the thin
Cython wrappers in ``csrc/_C.pyx`` that hand NumPy buffers to it.

Build rules (see STYLE: gradient checks need IEEE arithmetic):
- ``-O3``, never ``-ffast-math`` / ``-Ofast``: fast-math lets the compiler reorder
  sums and assume no NaN/Inf, which silently breaks softmax, GELU's backward and
  every finite-difference check.
- OpenMP when the compiler has it: we *probe* by compiling a tiny program with
  ``-fopenmp``; without it the kernels run on one thread and ``build_info()`` says so.
- ``MINICLIP_NATIVE=1`` adds ``-march=native`` (faster, but the build then only runs
  on CPUs like this one). The SIMD micro-kernels do not need it: they are compiled
  for AVX2+FMA with function attributes and chosen at run time.
- ``MINICLIP_DEBUG=1`` builds with ``-O0 -g``, Cython bounds checks on, and
  AddressSanitizer when ``MINICLIP_ASAN=1`` too.
"""

import os
import shutil
import sys
import tempfile
from glob import glob

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _flag_on(name):
    return os.environ.get(name, "").strip() not in ("", "0", "false", "no")


def _compiler_accepts(compiler, code, extra_args):
    """Compile and link ``code`` with ``extra_args``; True when it works."""
    tmp = tempfile.mkdtemp(prefix="miniclip-probe-")
    try:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(code)
        objs = compiler.compile([src], output_dir=tmp, extra_postargs=extra_args)
        compiler.link_executable(objs, os.path.join(tmp, "probe"), extra_postargs=extra_args)
        return True
    except Exception:
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


OPENMP_PROBE = r"""
#include <omp.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    return omp_get_max_threads() > 0 && n > 0 ? 0 : 1;
}
"""


class BuildExt(build_ext):
    """Probe the compiler, then set the flags on every extension."""

    def build_extensions(self):
        compiler_type = self.compiler.compiler_type
        debug = _flag_on("MINICLIP_DEBUG")
        if compiler_type == "msvc":
            cflags = ["/O2"] if not debug else ["/Od", "/Zi"]
            omp_compile, omp_link = ["/openmp"], []
        else:
            cflags = ["-O3", "-std=c11"] if not debug else ["-O0", "-g", "-std=c11"]
            cflags += ["-fno-fast-math", "-Wno-unused-function"]
            omp_compile, omp_link = ["-fopenmp"], ["-fopenmp"]
            if _flag_on("MINICLIP_NATIVE"):
                cflags.append("-march=native")
        ldflags = []
        if debug and _flag_on("MINICLIP_ASAN") and compiler_type != "msvc":
            cflags += ["-fsanitize=address", "-fno-omit-frame-pointer"]
            ldflags += ["-fsanitize=address"]

        has_openmp = False
        if not _flag_on("MINICLIP_NO_OPENMP"):
            has_openmp = _compiler_accepts(self.compiler, OPENMP_PROBE, omp_compile)
        if has_openmp:
            cflags += omp_compile
            ldflags += omp_link
        print(f"miniclip: OpenMP {'found' if has_openmp else 'NOT found: kernels run on one thread'}")
        print(f"miniclip: compile flags {' '.join(cflags)}")

        flag_string = " ".join(cflags).replace('"', "'")
        for ext in self.extensions:
            ext.extra_compile_args = list(ext.extra_compile_args) + cflags
            ext.extra_link_args = list(ext.extra_link_args) + ldflags
            ext.define_macros = list(ext.define_macros) + [
                ("MINICLIP_COMPILE_FLAGS", f'"{flag_string}"'),
                ("MINICLIP_DEBUG_BUILD", "1" if debug else "0"),
            ]
        super().build_extensions()


def extensions():
    from Cython.Build import cythonize

    debug = _flag_on("MINICLIP_DEBUG")
    c_sources = sorted(p for p in glob(os.path.join("csrc", "*.c")) if not p.endswith("_C.c"))
    ext = Extension(
        "miniclip._C",
        sources=[os.path.join("csrc", "_C.pyx")] + c_sources,
        include_dirs=["csrc"],
        depends=glob(os.path.join("csrc", "*.h")) + glob(os.path.join("csrc", "*.pxd")),
    )
    directives = {
        "language_level": 3,
        "boundscheck": debug,
        "wraparound": False,
        "initializedcheck": debug,
        "cdivision": True,
        "embedsignature": True,
    }
    return cythonize([ext], compiler_directives=directives, annotate=_flag_on("MINICLIP_ANNOTATE"))


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
