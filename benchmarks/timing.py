"""The one timing helper of the benchmarks: median wall time over repeats, after a warm-up call."""
from __future__ import annotations

import statistics
import time


def median_time(fn, repeats: int, warmup: bool = True) -> tuple[float, object]:
    """(median seconds of ``repeats`` calls of ``fn``, the last result)."""
    result = fn() if warmup else None
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result
