"""miniclip.tools.memory.reuse_freed_memory: glibc malloc tuning for the training loop (see memory.py)."""

import ctypes.util
import platform

import numpy as np
import pytest

from miniclip.tools import memory


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(memory, "_applied", None)


def test_turned_off_by_the_environment(fresh, monkeypatch):
    monkeypatch.setenv("MINICLIP_MALLOC_TUNING", "0")
    assert memory.reuse_freed_memory() is False


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="mallopt is glibc's")
def test_applied_on_glibc_once(fresh, monkeypatch):
    monkeypatch.delenv("MINICLIP_MALLOC_TUNING", raising=False)
    assert ctypes.util.find_library("c")
    assert memory.reuse_freed_memory() is True
    assert memory.reuse_freed_memory() is True          # idempotent: the second call changes nothing
    a = np.ones((1024, 1024))                           # allocating and freeing still works
    del a
