"""``profile()``: where a step's time goes, op by op, forward and backward.

    from miniclip.autograd.profiler import profile
    with profile() as prof:
        loss = clip_loss(*model(images, tokens)); loss.backward()
    print(prof.table())

While a profile is active, ``Function.apply`` times every forward and
``Tensor.backward`` every backward, keyed by the op's class name. Time spent
outside ops (building the graph, Python glue) is what remains of the wall time.
When no profile is active the engine pays one ``is None`` check per op.
"""

import contextlib
import time
from collections import defaultdict

active = None  # the OpProfile being recorded, or None


class OpProfile:
    """Seconds and calls per (op, phase), phase in {"forward", "backward"}."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self.calls = defaultdict(int)
        self.wall = 0.0

    def add(self, op, phase, seconds):
        self.seconds[(op, phase)] += seconds
        self.calls[(op, phase)] += 1

    def total(self):
        return sum(self.seconds.values())

    def by_op(self):
        """{op: forward + backward seconds}, largest first."""
        out = defaultdict(float)
        for (op, _), s in self.seconds.items():
            out[op] += s
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def table(self, top=20):
        """A text table: op, forward ms, backward ms, calls, share of the wall time."""
        wall = self.wall or self.total()
        lines = [f"{'op':<22} {'forward ms':>11} {'backward ms':>12} {'calls':>7} {'share':>7}"]
        for op, s in list(self.by_op().items())[:top]:
            f, b = self.seconds.get((op, "forward"), 0.0), self.seconds.get((op, "backward"), 0.0)
            n = self.calls.get((op, "forward"), 0)
            lines.append(f"{op:<22} {f * 1e3:>11.2f} {b * 1e3:>12.2f} {n:>7} {s / wall:>7.1%}")
        other = wall - self.total()
        lines.append(f"{'(outside ops)':<22} {'':>11} {'':>12} {'':>7} {other / wall:>7.1%}")
        return "\n".join(lines)


@contextlib.contextmanager
def profile():
    """Record op timings inside the block; yields the ``OpProfile`` (``.wall`` set at exit)."""
    global active
    previous, active = active, OpProfile()
    prof, start = active, time.perf_counter()
    try:
        yield prof
    finally:
        prof.wall = time.perf_counter() - start
        active = previous
