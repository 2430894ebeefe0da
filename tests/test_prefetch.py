"""data/prefetch.py: the one prefetcher of the loader and of a training run, in a thread or in a process.

Both must yield exactly ``make(key)`` for each key, in order, raise ``make``'s exception in the
consumer, and leave nothing running when the consumer stops early.
"""

import math
import threading

import pytest

from miniclip.data.prefetch import prefetch, prefetch_in_process


def _threads(name):
    return [t for t in threading.enumerate() if t.name == name]


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_thread_yields_what_make_makes_in_order(depth):
    assert list(prefetch(lambda k: k * k, range(10), depth, name="test-prefetch")) == [k * k for k in range(10)]
    assert _threads("test-prefetch") == []


def test_thread_raises_the_error_in_the_consumer_and_stops():
    def make(k):
        if k == 4:
            raise OSError(f"unreadable item {k}")
        return k

    made = []
    with pytest.raises(OSError, match="unreadable item 4"):
        for item in prefetch(make, range(10), 2, name="test-prefetch"):
            made.append(item)
    assert made == [0, 1, 2, 3] and _threads("test-prefetch") == []


def test_thread_stops_when_the_consumer_leaves_early():
    items = prefetch(lambda k: k, range(1000), 2, name="test-prefetch")
    assert next(items) == 0
    assert len(_threads("test-prefetch")) == 1
    items.close()
    assert _threads("test-prefetch") == []


def test_process_gives_the_same_items_and_errors_as_the_thread():
    keys = [3, 0, 5, 1, 7]
    assert list(prefetch_in_process(math.factorial, keys, 2)) == [math.factorial(k) for k in keys]
    with pytest.raises(ValueError, match="negative"):
        list(prefetch_in_process(math.factorial, [2, -1, 3], 2))


def test_process_ends_when_the_consumer_leaves_early():
    items = prefetch_in_process(math.factorial, range(100), 3)
    assert next(items) == 1
    frame = items.gi_frame
    worker = frame.f_locals["worker"]
    items.close()
    assert worker.poll() is not None  # waited for: no process left behind
