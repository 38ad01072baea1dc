"""A one-shot event-loop timer with microsecond precision (Linux timerfd), for open-loop send times.

asyncio and uvloop timers fire on a millisecond grid, so arrivals released by them run up to a
millisecond late; on a server answering in 1-2 ms that lateness would be a large share of every
open-loop latency. A timerfd armed at the absolute CLOCK_MONOTONIC time (the clock behind
`time.perf_counter` on Linux) wakes the loop's poller when due instead. Elsewhere it falls back to
`loop.call_at`, and the send-lag self-check shows what that costs.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import sys
import time
from collections.abc import Callable

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = 0o4000
_TFD_CLOEXEC = 0o2000000
_TFD_TIMER_ABSTIME = 1
_PR_SET_TIMERSLACK = 29


class _Timespec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


class _Itimerspec(ctypes.Structure):
    _fields_ = (("it_interval", _Timespec), ("it_value", _Timespec))


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux") or time.get_clock_info("perf_counter").implementation != (
            "clock_gettime(CLOCK_MONOTONIC)"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)  # the running interpreter already links libc
    except OSError:
        return None


class PreciseTimer:
    """Calls `callback()` once at the perf_counter time last given to `set()`; re-arm from the callback.

    Example:
        >>> timer = PreciseTimer(loop, on_due)
        >>> timer.set(time.perf_counter() + 0.0025)   # on_due runs 2.5 ms from now, give or take ~50 µs
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self._loop = loop
        self._callback = callback
        self._handle: asyncio.TimerHandle | None = None
        self._libc = _libc()
        self._fd = -1
        if self._libc is not None:
            self._libc.prctl(_PR_SET_TIMERSLACK, 1, 0, 0, 0)  # this thread's timers: 1 ns slack, not 50 µs
            fd = self._libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
            if fd >= 0:
                self._fd = fd
                loop.add_reader(fd, self._on_readable)
        self.precise = self._fd >= 0

    def set(self, when: float) -> None:
        if self._fd >= 0 and self._libc is not None:
            when = max(when, 1e-6)
            spec = _Itimerspec(_Timespec(0, 0), _Timespec(int(when), int((when % 1.0) * 1e9)))
            if self._libc.timerfd_settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec), None) == 0:
                return
        self.cancel()
        self._handle = self._loop.call_at(self._loop.time() + max(0.0, when - time.perf_counter()), self._callback)

    def cancel(self) -> None:
        if self._fd >= 0 and self._libc is not None:
            self._libc.timerfd_settime(self._fd, 0, ctypes.byref(_Itimerspec()), None)
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def close(self) -> None:
        self.cancel()
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1

    def _on_readable(self) -> None:
        try:
            os.read(self._fd, 8)
        except BlockingIOError:
            return
        self._callback()
