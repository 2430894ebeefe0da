"""The SIMD levels of the compiled micro-kernels, for the kernel tests (test_kernels_gemm.py,
test_kernels_attention.py): which levels this CPU can run, and a block forced to one of them.

Levels: "generic" (portable C, always), "avx2" (at most AVX2+FMA) and "avx512", each where the
CPU has it (``compiled.set_simd``); forcing a lower level keeps its path tested on a CPU that
would otherwise run a higher one.
"""

from miniclip.backend import compiled


def simd_levels():
    """The SIMD levels this CPU can run: generic always, then avx2 and avx512 where present.
    (Leaves the selection as it found it, e.g. MINICLIP_FORCE_GENERIC=1 from the environment.)"""
    before = compiled.get_simd()
    levels = ["generic"]
    for mode in ("avx2", "avx512"):
        try:
            compiled.set_simd(mode)
            levels.append(mode)
        except ValueError:
            pass
    compiled.set_simd({"avx512": "auto", "avx2+fma": "avx2" if "avx2" in levels else "auto"}.get(before, "generic"))
    assert compiled.get_simd() == before
    return levels


class forced:
    """Run a block with the given SIMD level and thread count, then restore the defaults."""

    def __init__(self, simd="auto", threads=None):
        self.simd, self.threads = simd, threads

    def __enter__(self):
        self.before = compiled.get_num_threads()
        compiled.set_simd(self.simd)
        if self.threads is not None:
            compiled.set_num_threads(self.threads)

    def __exit__(self, *exc):
        compiled.set_simd("auto")
        compiled.set_num_threads(self.before)
