"""What each process reading the stores holds for itself, and the clip start it draws.

A DataLoader forks its workers: each process opens its own store readers and reading threads
(:class:`ProcessLocal`, made again when the process id changes), and every process computes the
same window starts from ``(seed, epoch, index)`` (:func:`window_start`) without sharing a
generator.
"""

from __future__ import annotations

import os
import weakref
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from sensorium_data.loaders.reader import Windows, decode_in_this_thread

_MASK = (1 << 64) - 1
# Threads per process reading chunk files while the process decodes (the reads release the
# GIL); with a cold page cache the disk then works during the decoding.
READ_THREADS = 4


def _mix(x: int) -> int:
    """splitmix64: a well-spread 64-bit hash of ``x``."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def window_start(seed: int, epoch: int, index: int, n_starts: int) -> int:
    """The first frame of item ``index``'s window: uniform in ``[0, n_starts)``, a function of
    ``(seed, epoch, index)`` only, so any process computes the same."""
    return _mix(_mix(_mix(seed & _MASK) ^ (epoch & _MASK)) ^ index) % n_starts


# Every ProcessLocal with a running thread pool: a fork stops them first (below).
_WITH_THREADS: weakref.WeakSet[ProcessLocal] = weakref.WeakSet()


def _stop_reading_threads() -> None:
    """Stop this process's reading threads (they start again on the next read).

    Runs before every fork, as a DataLoader starting its workers does: a process forked while
    it runs threads gets only the forking thread, and Python 3.12+ warns about it.
    """
    for local in list(_WITH_THREADS):
        local.stop_threads()


os.register_at_fork(before=_stop_reading_threads)


class ProcessLocal:
    """What each process opens for itself: store readers, reading threads, a random
    generator."""

    def __init__(self, n: int):
        self.pid = os.getpid()
        self.readers: list[tuple[Windows, Windows] | None] = [None] * n
        self.precision_t: list[np.ndarray | None] = [None] * n
        self.rng: np.random.Generator | None = None
        self._pool: ThreadPoolExecutor | None = None
        if torch.utils.data.get_worker_info() is not None:
            decode_in_this_thread()

    @property
    def pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="sensorium-read")
            _WITH_THREADS.add(self)
        return self._pool

    def stop_threads(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        _WITH_THREADS.discard(self)
