"""Prefetching: ``make(key)`` for each key, in order, prepared ahead of the loop that consumes it.

    prefetch(make, keys, depth)             # a background thread of this process
    prefetch_in_process(make, keys, depth)  # one separate worker process

Both yield exactly what ``(make(key) for key in keys)`` yields, with up to ``depth`` items made
ahead; an exception raised by ``make`` is raised in the consumer. Leaving the loop early
(``break``, an exception, ``.close()``) stops the worker and waits for it: nothing is left running.

A thread suits work that releases the GIL (Pillow decoding, NumPy); a process keeps work that is
mostly Python (drawing the shapes world) off the consumer's interpreter lock. The loader uses the
thread; a training run uses either (``TrainConfig.data_workers``), and the batches are the same.
"""

import os
import pickle
import queue
import signal
import sys
import threading


class _Failure:
    """An exception raised in the producer thread, carried to the consumer to be raised there."""

    def __init__(self, error):
        self.error = error


_DONE = object()


def prefetch(make, keys, depth, name="miniclip-prefetch"):
    """``make(key)`` for each of ``keys``, made by a background thread up to ``depth`` ahead
    (``depth=0``: inline, no thread). The thread is named ``name``."""
    if depth == 0:
        for key in keys:
            yield make(key)
        return
    ready = queue.Queue(maxsize=depth)
    stopping = threading.Event()

    def put(item):  # block while the queue is full, unless the consumer has left
        while not stopping.is_set():
            try:
                ready.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def produce():
        try:
            for key in keys:
                if stopping.is_set():
                    return
                put(make(key))
            put(_DONE)
        except BaseException as error:  # raised again in the consumer, with its traceback
            put(_Failure(error))

    worker = threading.Thread(target=produce, name=name, daemon=True)
    worker.start()
    try:
        while True:
            try:
                item = ready.get(timeout=0.05)
            except queue.Empty:
                if not worker.is_alive() and ready.empty():
                    raise RuntimeError(f"the {name} thread ended without finishing") from None
                continue
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stopping.set()
        worker.join()


def prefetch_in_process(make, keys, depth):
    """``make(key)`` for each of ``keys``, made by one worker process up to ``depth`` ahead.

    ``make`` (a picklable callable, e.g. a bound method) and the keys go to the worker through one
    pipe, the results come back through another. A fresh interpreter (not a fork), so it is safe
    whatever threads (OpenMP, BLAS) this process runs; plain pipes (not multiprocessing's queues), so
    no resource-tracker process is started. It never outlives this process: on Linux the kernel kills
    it when its parent dies (``PR_SET_PDEATHSIG``), anywhere it exits when its request pipe closes."""
    import subprocess
    from multiprocessing.connection import Connection

    keys = list(keys)
    request_r, request_w = os.pipe()
    result_r, result_w = os.pipe()
    code = f"from miniclip.data.prefetch import _worker; _worker({request_r}, {result_w}, {os.getpid()})"
    worker = start_python(code, pass_fds=(request_r, result_w))
    os.close(request_r)
    os.close(result_w)
    requests, results = Connection(request_w, readable=False), Connection(result_r, writable=False)
    try:
        requests.send(make)
        sent = 0
        for i in range(len(keys)):
            while sent < len(keys) and sent - i < depth:  # keep `depth` keys requested ahead, in order
                requests.send(keys[sent])
                sent += 1
            try:
                made, item = results.recv()
            except EOFError:
                raise RuntimeError(f"the batch worker process (pid {worker.pid}) ended unexpectedly "
                                   f"(exit code {worker.wait()})") from None
            if not made:
                raise item  # the worker's exception, e.g. an unreadable image
            yield item
    finally:
        requests.close()  # the worker sees the end of its requests and exits
        results.close()
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def start_python(code, pass_fds, new_session=False):
    """A fresh ``python -c code`` (a ``subprocess.Popen``) that imports this very ``miniclip`` (its
    parent directory first on PYTHONPATH), with the descriptors ``pass_fds`` left open in it;
    ``new_session``: in its own session, so that the terminal's Ctrl-C does not reach it."""
    import subprocess
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p)
    return subprocess.Popen([sys.executable, "-c", code], pass_fds=pass_fds, start_new_session=new_session,
                            env={**os.environ, "PYTHONPATH": path})


def _worker(request_fd, result_fd, parent_pid):
    """The worker process of ``prefetch_in_process``: ``make``, then keys, in; ``(True, make(key))``
    or ``(False, exception)`` out, until the requests end."""
    from multiprocessing.connection import Connection

    _die_with_parent(parent_pid)
    # Ctrl-C and SIGTERM are the consumer's to handle; it closes the pipes when it is done
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    requests, results = Connection(request_fd, writable=False), Connection(result_fd, readable=False)
    try:
        make = requests.recv()
        while True:
            key = requests.recv()
            try:
                reply = (True, make(key))
            except Exception as exc:  # noqa: BLE001 - raised again in the consumer
                reply = (False, exc)
            try:
                results.send(reply)
            except (TypeError, AttributeError, pickle.PicklingError):  # an exception that does not pickle
                results.send((False, RuntimeError(f"make({key!r}): {type(reply[1]).__name__}: {reply[1]}")))
    except (EOFError, OSError):  # the consumer is done (or gone)
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
