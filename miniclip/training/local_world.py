"""Data-parallel training on one machine without MPI: a World over shared memory and pipes.

Shape legend:  P world size (number of ranks),  r this rank,  q any rank,  n local batch.

``miniclip train --processes P`` runs P copies of the training step, each on n = N / P pairs of the
global batch (``distributed.py`` explains why that is the one-process computation). The ranks must
meet a few times per step -- gather features, reduce-scatter their gradients, average the parameter
gradients -- and MPI is not needed for that on one machine. Two ingredients suffice:

- **Messages through pipes**, in a star: rank 0 holds a pipe to every other rank. ``_exchange(obj)``
  is the one pattern: every rank q > 0 sends its ``obj`` to rank 0; rank 0 receives them in rank
  order and sends the list of all P back to each. When it returns, every rank has arrived (it is a
  *barrier*), and every rank holds every rank's object (it is an *all-gather of objects*).
- **Arrays through shared memory**: one file in RAM (``/dev/shm``) that every rank maps, cut into P
  *slots*. A collective on arrays is "write, barrier, read"::

      rank q writes its array into slot q
      barrier                                      # every slot is written
      every rank reads all P slots, in rank order  # concatenate (gather) or sum (reduce)

  Every rank adds the same numbers in the same order, ((s_0 + s_1) + s_2) + ..., so every rank
  gets *bitwise* the same sum: the models never drift apart (``parameters_in_sync`` holds).

A slot may be written again only when every rank has finished reading it. Instead of a second
barrier after each read, the buffer holds two sets of slots used in turn: collective k + 2 reuses
the slots of collective k, and to get there a rank must pass the barrier of collective k + 1, which
no rank reaches before it has read collective k. When a larger message comes (the ranks agree on
sizes within a collective), every rank grows the file to the same size after one extra barrier.

Failure. A process that ends closes its end of every pipe, so the rank waiting for it reads
end-of-file at once instead of hanging. A rank q > 0 whose code raises sends rank 0 the error's one
line before it exits; rank 0 raises ``RankFailedError`` ("rank 1 failed: ValueError: ...", or
"rank 1 ended unexpectedly (killed by SIGKILL)"). When rank 0 fails or is stopped, it kills the
others (they write nothing, so nothing is lost); if rank 0 itself dies, the kernel kills them (as
``data/prefetch.py``'s worker), and elsewhere they read end-of-file at their next message. Ctrl-C
is rank 0's alone: the ranks it starts run in their own session, so the terminal's signals reach
only rank 0, which stops the run as one process would (``fit.py``'s ``CtrlC``).
"""

import contextlib
import mmap
import os
import signal
import subprocess
import sys
import tempfile
import traceback
from multiprocessing.connection import Connection, Pipe

import numpy as np

from ..data.prefetch import start_python
from .distributed import World

_ALIGN = 64  # bytes: every slot starts on a cache line
SHARED_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()  # memory, where there is one


class RankFailedError(RuntimeError):
    """Another rank of a ``LocalWorld`` raised, or its process ended, before the run was over."""


class RankZeroEnded(SystemExit):
    """On a rank q > 0: rank 0 has ended (finished, stopped or failed, and reported it), so this rank ends."""


class _Failed:
    """The message a rank q > 0 sends rank 0 instead of its next one when its code raised."""

    def __init__(self, line):
        self.line = line


class _Finished:
    """The last message of a rank q > 0 whose ``target`` returned."""


class LocalWorld(World):
    """The ranks of one job on this machine: P processes that talk through pipes and shared memory.

    ``connections``: on rank 0, the pipes to ranks 1 .. P-1 (in rank order); on rank q > 0, the one
    pipe to rank 0. ``buffer_fd``: the file that every rank maps (the slots). ``processes`` (rank 0
    only): the ``Popen`` of each other rank, to report how it ended. ``comm`` is None: there is no MPI
    here; every collective of ``World`` is replaced by the shared-memory version below.
    """

    def __init__(self, rank, size, connections, buffer_fd, processes=()):
        super().__init__(comm=None)
        self.rank, self.size = rank, size
        self.connections, self.processes = list(connections), list(processes)
        self._fd, self._map, self._slot_bytes, self._half = buffer_fd, None, 0, 0

    def __repr__(self):
        return f"LocalWorld(rank={self.rank}, size={self.size}, processes on this machine)"

    @property
    def stop_signals(self):
        """Rank 0 stops the job on Ctrl-C or SIGTERM, as one process does; the others end with it."""
        return (signal.SIGINT, signal.SIGTERM) if self.is_main else ()

    # ----------------------------------------------------------------- messages: the star of pipes
    def _send(self, q, obj):
        connection = self.connections[q - 1 if self.is_main else 0]
        try:
            connection.send(obj)
        except OSError:  # the other end is closed: that process has ended
            self._ended(q)

    def _receive(self, q):
        connection = self.connections[q - 1 if self.is_main else 0]
        try:
            message = connection.recv()
        except (EOFError, OSError):
            self._ended(q)
        if isinstance(message, _Failed):
            raise RankFailedError(f"rank {q} failed: {message.line}")
        return message

    def _ended(self, q):
        """Rank q's pipe is closed. On rank 0: raise how rank q ended; on rank q > 0: end this rank too."""
        if not self.is_main:
            raise RankZeroEnded(0)
        process = self.processes[q - 1] if self.processes else None
        how = ""
        if process is not None:
            try:
                code = process.wait(timeout=10)
                how = f" (killed by {signal.Signals(-code).name})" if code < 0 else f" (exit code {code})"
            except subprocess.TimeoutExpired:
                how = " (its pipe closed, the process is still running)"
        raise RankFailedError(f"rank {q} ended unexpectedly{how}")

    def _exchange(self, obj):
        """Every rank's ``obj`` to rank 0, then the list of all of them (rank order) to every rank."""
        if not self.is_main:
            self._send(0, obj)
            return self._receive(0)
        objs = [obj] + [self._receive(q) for q in range(1, self.size)]
        for q in range(1, self.size):
            self._send(q, objs)
        return objs

    def barrier(self) -> None:
        self._exchange(None)

    def allgather_object(self, obj):
        return self._exchange(obj)

    def broadcast_object(self, obj=None, root: int = 0):
        return self._exchange(obj if self.rank == root else None)[root]

    def ranks_on_this_machine(self) -> int:
        return self.size

    # ----------------------------------------------------------------- arrays: slots in shared memory
    def _slots(self, shape, dtype):
        """P arrays of ``shape`` and ``dtype``, slot q for rank q, in the set of slots this collective uses."""
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        if nbytes > self._slot_bytes:
            self.barrier()  # every rank has read the last collective: the slots may move
            self._slot_bytes = max(2 * self._slot_bytes, -(-nbytes // _ALIGN) * _ALIGN)
            total = 2 * self.size * self._slot_bytes  # two sets of P slots, used in turn
            if os.fstat(self._fd).st_size < total:  # every rank grows it to the same size (never shrinks)
                _reserve(self._fd, total)
            self._map = mmap.mmap(self._fd, total)
        first = self._half * self.size * self._slot_bytes
        self._half ^= 1  # the next collective uses the other set
        memory = np.frombuffer(self._map, dtype=np.uint8, count=self.size * self._slot_bytes, offset=first)
        return [memory[q * self._slot_bytes:q * self._slot_bytes + nbytes].view(dtype).reshape(shape)
                for q in range(self.size)]

    def _share(self, x):
        """Write ``x`` into this rank's slot; after the barrier, every rank's slot (rank order)."""
        slots = self._slots(x.shape, x.dtype)
        slots[self.rank][...] = x
        self.barrier()
        return slots

    def allgather(self, x: np.ndarray) -> np.ndarray:
        """(n, ...) on every rank -> (P * n, ...): the ranks' arrays stacked in rank order."""
        x = np.ascontiguousarray(x)
        with self._timed():
            return np.concatenate(self._share(x))  # (P*n, ...)

    def reduce_scatter(self, x: np.ndarray) -> np.ndarray:
        """(P * n, ...) on every rank -> (n, ...): block r of the sum over ranks, on rank r."""
        x, n = self._blocks(x)
        mine = slice(self.rank * n, (self.rank + 1) * n)
        with self._timed():
            slots = self._share(x)
            out = slots[0][mine].copy()  # (n, ...)
            for slot in slots[1:]:       # rank order
                out += slot[mine]
        return out

    def allreduce(self, x: np.ndarray, average: bool = False) -> np.ndarray:
        """The elementwise sum (or mean) over ranks, on every rank, bitwise the same everywhere."""
        x = np.ascontiguousarray(x)
        with self._timed():
            slots = self._share(x)
            out = slots[0].copy()
            for slot in slots[1:]:  # rank order: the same additions in the same order on every rank
                out += slot
        if average:
            out /= self.size
        return out

    def broadcast(self, x: np.ndarray, root: int = 0) -> np.ndarray:
        """Overwrite ``x`` (contiguous, writable) on every rank with root's ``x``; returns ``x``."""
        if not x.flags.c_contiguous or not x.flags.writeable:
            raise ValueError("broadcast: the array must be C-contiguous and writable (it is received in place)")
        with self._timed():
            slots = self._slots(x.shape, x.dtype)
            if self.rank == root:
                slots[root][...] = x
            self.barrier()
            if self.rank != root:
                x[...] = slots[root]
        return x


# --------------------------------------------------------------------- starting the ranks
@contextlib.contextmanager
def start_ranks(size, target, *args):
    """Make this process rank 0 of a ``LocalWorld`` of ``size`` ranks; yield its world.

    Ranks 1 .. size-1 are new Python interpreters (started fresh, never forked: this process may
    already run OpenMP and BLAS threads, which a fork would copy in an undefined state), each running
    ``target(world, *args)`` with its own ``LocalWorld``; ``target`` and ``args`` are pickled to them
    (so ``target`` is a module-level function). Leaving the block normally waits for every rank to
    end and raises ``RankFailedError`` if one failed; leaving it by an exception ends them at once.
    Nothing is left behind: the shared file has no name, and each rank dies with this process.
    """
    connections, processes, finished = [], [], False
    with tempfile.TemporaryFile(dir=SHARED_DIR) as buffer:  # unnamed: it goes when the last rank closes it
        try:
            for rank in range(1, size):
                mine, theirs = Pipe()  # a socket pair: either end may send
                processes.append(start_python(
                    f"from miniclip.training.local_world import _rank_main; "
                    f"_rank_main({rank}, {size}, {theirs.fileno()}, {buffer.fileno()}, {os.getpid()})",
                    pass_fds=(theirs.fileno(), buffer.fileno()), new_session=True))  # Ctrl-C is rank 0's
                theirs.close()  # only rank q holds its end now, so its exit is our end-of-file
                connections.append(mine)
                mine.send(sys.path)  # first, so that rank q can import the module of `target`
                mine.send((target, args))
            world = LocalWorld(0, size, connections, buffer.fileno(), processes)
            yield world
            for q in range(1, size):  # every rank's last word: finished (or its error, or end-of-file)
                if not isinstance(world._receive(q), _Finished):
                    raise RankFailedError(f"rank {q} was still inside a collective when rank 0 finished")
            finished = True
        finally:
            for connection in connections:
                connection.close()
            for process in processes:
                if finished:  # it is exiting: let it
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        process.wait(timeout=30)
                if process.poll() is None:  # rank 0 failed or was stopped: the run is over for every rank
                    process.kill()
                process.wait()


def _reserve(fd, size):
    """Grow the file to ``size`` bytes with its pages reserved: a full /dev/shm (a container's is often
    64 MB) is an error here, rather than a SIGBUS at the first write into a page it has no room for."""
    try:
        if hasattr(os, "posix_fallocate"):
            os.posix_fallocate(fd, 0, size)
        else:
            os.ftruncate(fd, size)
    except OSError as error:
        raise OSError(error.errno, f"{error.strerror} (the ranks' shared memory, grown to {size >> 20} MiB)",
                      SHARED_DIR) from None


def _rank_main(rank, size, connection_fd, buffer_fd, parent_pid):
    """Rank q > 0: receive ``target`` and ``args``, run ``target(world, *args)``, report a failure to rank 0."""
    from ..data.prefetch import _die_with_parent

    _die_with_parent(parent_pid)  # the kernel ends this rank if rank 0 dies
    connection = Connection(connection_fd)
    try:
        sys.path[:] = connection.recv()
        target, args = connection.recv()
        target(LocalWorld(rank, size, [connection], buffer_fd), *args)
        connection.send(_Finished())
    except RankZeroEnded:
        sys.exit(0)
    except BaseException as error:  # noqa: BLE001 - any failure, reported to rank 0 in one line
        if os.environ.get("MINICLIP_TRACEBACK"):
            traceback.print_exc()
        with contextlib.suppress(OSError):
            connection.send(_Failed(f"{type(error).__name__}: {error}"))
        sys.exit(1)
