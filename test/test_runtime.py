"""Newest-frame mailbox and statistics used by the nodes and by replay."""
import threading
import time

import pytest

from pano_perception.runtime import LatencyStats, LatestFrameMailbox, RateMeter


def test_mailbox_keeps_only_the_newest_and_counts_drops():
    box = LatestFrameMailbox()
    for i in range(5):
        box.put(i)
    assert box.take(0) == 4
    assert box.received == 5 and box.dropped == 4
    assert box.take(0.01) is None


def test_mailbox_wakes_a_waiting_consumer_and_closes():
    box = LatestFrameMailbox()
    got = []
    consumer = threading.Thread(target=lambda: got.append(box.take(5.0)))
    consumer.start()
    time.sleep(0.05)
    box.put("frame")
    consumer.join(1.0)
    assert got == ["frame"]
    closer = threading.Thread(target=lambda: got.append(box.take(5.0)))
    closer.start()
    start = time.monotonic()
    box.close()
    closer.join(1.0)
    assert got[-1] is None and time.monotonic() - start < 0.5


def test_rate_and_latency():
    meter = RateMeter(window_s=2.0)
    for i in range(11):
        meter.tick(100.0 + i * 0.1)
    assert meter.rate(101.0) == pytest.approx(10.0)
    assert meter.rate(110.0) == 0.0
    stats = LatencyStats()
    assert stats.percentile_ms(50) != stats.percentile_ms(50)  # NaN before samples
    for ms in range(1, 101):
        stats.add(ms / 1000.0)
    assert stats.percentile_ms(50) == pytest.approx(50.5)
    assert stats.percentile_ms(95) == pytest.approx(95.05)
