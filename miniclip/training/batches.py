"""Batch ``k`` of a run as a pure function of (seed, k), prepared ahead of the training step.

Shape legend: B batch, R image resolution, T context length.
"""

import os
import pickle
import queue
import signal
import sys
import threading

import numpy as np

from .distributed import World, shard


class StepBatches:
    """Batch ``k`` of the run as a pure function of (seed, k), prepared ahead of the training step.

    The shapes world: a one-epoch stream of ``steps * batch_size`` fresh samples in order (sample
    ``i`` is drawn from ``default_rng([seed, split, i])``), so no image is ever seen twice. A CSV:
    epoch ``k // len(loader)`` in the loader's shuffled order, batch ``k % len(loader)``, the last
    partial batch dropped (a contrastive batch of 3 is a different problem from one of 128).
    ``iterate`` prepares them in a thread (``workers=0``) or in one separate process (``workers=1``).
    """

    def __init__(self, loader, steps, shuffled_epochs, world=None):
        self.loader, self.steps, self.shuffled_epochs = loader, steps, shuffled_epochs
        self.world = World() if world is None else world  # distributed: rank r makes only its shard

    def indices(self, k):
        b = self.loader.batch_size
        if not self.shuffled_epochs:
            return k, np.arange(k * b, (k + 1) * b)
        per_epoch = len(self.loader.dataset) // b
        epoch, position = divmod(k, per_epoch)
        return epoch, self.loader.order(epoch)[position * b:(position + 1) * b]

    def make(self, k):
        epoch, idx = self.indices(k)
        idx = shard(idx, self.world)  # distributed: rows [r n, (r + 1) n) of the global batch (one process: all)
        return self.loader.make_batch(idx, epoch)

    def iterate(self, start, workers=0, prefetch=3):
        """Yield (k, batch) for k = start .. steps-1, up to ``prefetch`` batches prepared ahead."""
        if workers == 0:
            yield from self._iterate_thread(start, prefetch)
        else:
            yield from self._iterate_process(start, prefetch)

    def _iterate_process(self, start, prefetch):
        """The batches made by one worker process that reads step numbers from one pipe and writes
        batches to another. A fresh interpreter (not a fork), so it is safe whatever threads (OpenMP,
        BLAS) this process runs; plain pipes (not multiprocessing's queues), so no resource-tracker
        process is started. It never outlives this process: on Linux the kernel kills it when its
        parent dies (``PR_SET_PDEATHSIG``), anywhere it exits when its request pipe closes."""
        import subprocess
        from multiprocessing.connection import Connection

        request_r, request_w = os.pipe()
        result_r, result_w = os.pipe()
        package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        path = os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p)
        code = f"from miniclip.training.batches import _batch_worker; _batch_worker({request_r}, {result_w}, {os.getpid()})"
        worker = subprocess.Popen([sys.executable, "-c", code], pass_fds=(request_r, result_w),
                                  env={**os.environ, "PYTHONPATH": path})
        os.close(request_r)
        os.close(result_w)
        requests, results = Connection(request_w, readable=False), Connection(result_r, writable=False)
        try:
            requests.send(self)
            next_k = start
            for k in range(start, self.steps):
                while next_k < self.steps and next_k - k < prefetch:  # keep `prefetch` batches ordered ahead
                    requests.send(next_k)
                    next_k += 1
                try:
                    made, batch = results.recv()
                except EOFError:
                    raise RuntimeError(f"the batch worker process (pid {worker.pid}) ended unexpectedly "
                                       f"(exit code {worker.wait()})") from None
                if not made:
                    raise batch  # the worker's exception, e.g. an unreadable image
                yield k, batch
        finally:
            requests.close()  # the worker sees the end of its requests and exits
            results.close()
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()

    def _iterate_thread(self, start, prefetch):
        ready = queue.Queue(maxsize=prefetch)
        stop = threading.Event()

        def produce():
            for k in range(start, self.steps):
                try:
                    item = (k, self.make(k))
                except BaseException as exc:  # carried to the training thread and raised there
                    item = (k, exc)
                while not stop.is_set():
                    try:
                        ready.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set() or isinstance(item[1], BaseException):
                    return

        worker = threading.Thread(target=produce, name="miniclip-train-batches", daemon=True)
        worker.start()
        try:
            for _ in range(start, self.steps):
                k, batch = ready.get()
                if isinstance(batch, BaseException):
                    raise batch
                yield k, batch
        finally:
            stop.set()
            worker.join(timeout=5)


def _batch_worker(request_fd, result_fd, parent_pid):
    """The worker process of ``StepBatches._iterate_process``: a StepBatches, then step numbers, in;
    ``(True, batch)`` or ``(False, exception)`` out, until the requests end."""
    from multiprocessing.connection import Connection

    _die_with_parent(parent_pid)
    # Ctrl-C and SIGTERM are the training process's to handle; it closes the pipes when it is done
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    requests, results = Connection(request_fd, writable=False), Connection(result_fd, readable=False)
    try:
        batches = requests.recv()
        while True:
            k = requests.recv()
            try:
                reply = (True, batches.make(k))
            except Exception as exc:  # noqa: BLE001 - raised again in the training process
                reply = (False, exc)
            try:
                results.send(reply)
            except (TypeError, AttributeError, pickle.PicklingError):  # an exception that does not pickle
                results.send((False, RuntimeError(f"batch {k}: {type(reply[1]).__name__}: {reply[1]}")))
    except (EOFError, OSError):  # the training process is done (or gone)
        return


def _die_with_parent(parent_pid):
    """Ask Linux to SIGKILL this process when its parent dies (prctl PR_SET_PDEATHSIG); exit now if
    the parent is already gone. Elsewhere the closed request pipe ends the worker instead."""
    if sys.platform.startswith("linux"):
        import ctypes
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(0)
