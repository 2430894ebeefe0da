"""``profile()``: where a step's time goes, op by op, forward and backward.

    from miniclip.autograd.profiler import profile
    with profile() as prof:
        loss = clip_loss(*model(images, tokens)); loss.backward()
    print(prof.table())

While a profile is active, every op's ``forward`` and ``backward`` are wrapped in a
timer, keyed by the op's class name: entering ``profile()`` replaces the two static
methods of every ``Function`` subclass with a timed version, leaving restores them. So
the engine (``Function.apply``, ``Tensor.backward``) has no profiler code at all and
costs nothing extra when no profile is active. Time spent outside ops (building the
graph, Python glue) is what remains of the wall time. Ops defined while a profile is
active are timed from the next profile on.
"""

import contextlib
import time
from collections import defaultdict

from .function import Function

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


def _timed(fn, op, phase):
    """``fn`` (an op's forward or backward), adding its seconds to the active profile."""
    def timed(*args):
        start = time.perf_counter()
        out = fn(*args)
        active.add(op, phase, time.perf_counter() - start)
        return out
    return staticmethod(timed)


def _all_ops():
    """Every subclass of ``Function``, subclasses of subclasses included."""
    ops, todo = [], [Function]
    while todo:
        for sub in todo.pop().__subclasses__():
            ops.append(sub)
            todo.append(sub)
    return ops


def _install():
    """Wrap every op's forward and backward in ``_timed``; return what ``_uninstall`` puts back."""
    ops = _all_ops()
    originals = [(cls, phase, getattr(cls, phase), cls.__dict__.get(phase))  # read all before wrapping any
                 for cls in ops for phase in ("forward", "backward")]
    for cls, phase, fn, _ in originals:
        setattr(cls, phase, _timed(fn, cls.__name__, phase))
    return originals


def _uninstall(originals):
    for cls, phase, _, own in originals:
        if own is None:
            delattr(cls, phase)            # the method was inherited: inherit it again
        else:
            setattr(cls, phase, own)


@contextlib.contextmanager
def profile():
    """Record op timings inside the block; yields the ``OpProfile`` (``.wall`` set at exit).

    Profiles nest: an inner profile records what runs inside it, the outer one the rest."""
    global active
    previous, active = active, OpProfile()
    originals = _install() if previous is None else None
    prof, start = active, time.perf_counter()
    try:
        yield prof
    finally:
        prof.wall = time.perf_counter() - start
        active = previous
        if originals is not None:
            _uninstall(originals)
