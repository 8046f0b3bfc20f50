"""Real-time plumbing shared by the nodes and by replay: newest-frame mailbox, rates and latency statistics.

No ROS here: the nodes and ``pano-perception replay`` (real-time mode) drop frames through the same code.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")


class LatestFrameMailbox(Generic[T]):
    """A one-slot mailbox: ``put`` replaces an item nobody took yet (that item is counted as dropped).

    The consumer ``take``s the newest item; frames that arrive while it is busy never queue up.
    """

    def __init__(self):
        self._item: T | None = None
        self._cond = threading.Condition()
        self._closed = False
        self.received = 0
        self.dropped = 0

    def put(self, item: T) -> None:
        with self._cond:
            self.received += 1
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._cond.notify()

    def take(self, timeout: float | None = None) -> T | None:
        """The newest item, waiting up to ``timeout`` seconds; None on timeout or after ``close``."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        """Wake the consumer for good; later ``take`` calls return what is left, then None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        with self._cond:
            self._closed = False
            self._item = None


class RateMeter:
    """Events per second over a sliding window of ``window_s`` seconds (monotonic clock)."""

    def __init__(self, window_s: float = 5.0):
        self.window_s = window_s
        self._stamps: deque[float] = deque()
        self._lock = threading.Lock()

    def tick(self, now: float | None = None) -> None:
        with self._lock:
            self._stamps.append(time.monotonic() if now is None else now)

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            while self._stamps and self._stamps[0] < now - self.window_s:
                self._stamps.popleft()
            if len(self._stamps) < 2:
                return 0.0
            span = max(now - self._stamps[0], 1e-9)
            return (len(self._stamps) - 1) / span if span < self.window_s else len(self._stamps) / self.window_s


class LatencyStats:
    """Percentiles over the last ``size`` latencies (seconds in, milliseconds out)."""

    def __init__(self, size: int = 200):
        self._values: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self._values.append(seconds)

    def percentile_ms(self, q: float) -> float:
        """The ``q``-th percentile in milliseconds, NaN before the first sample."""
        with self._lock:
            if not self._values:
                return float("nan")
            return float(np.percentile(np.fromiter(self._values, float), q) * 1000.0)
