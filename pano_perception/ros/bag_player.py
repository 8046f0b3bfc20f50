"""Publish a rosbag2 into the live ROS graph at its recorded rate, with /clock (for use_sim_time nodes).

The pip-only stand-in for ``ros2 bag play``: messages are published as the serialized CDR the bag holds (no
re-encoding). Topics whose message package is not installed for rclpy are skipped and listed.
"""
from __future__ import annotations

import importlib
import time
from pathlib import Path

import rclpy
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosbags.highlevel import AnyReader
from rosgraph_msgs.msg import Clock

from ..bagio import TYPESTORE, BagError


def message_class(msgtype: str):
    """rclpy message class of ``pkg/msg/Name``, or None when the package is not installed."""
    package, _, name = msgtype.split("/")
    try:
        return getattr(importlib.import_module(f"{package}.msg"), name)
    except (ImportError, AttributeError):
        return None


class BagPlayer(Node):
    """Publishes the bag's messages at (recorded time / rate) and /clock at each message's log time."""

    def __init__(self, bag: str | Path, *, rate: float = 1.0, topics: list[str] | None = None):
        super().__init__("pano_bag_player")
        if rate <= 0:
            raise ValueError(f"rate must be positive; got {rate}")
        self.bag, self.rate = Path(bag), rate
        if not self.bag.exists():
            raise BagError(f"bag not found: {self.bag}")
        self._reader = AnyReader([self.bag], default_typestore=TYPESTORE)
        self._reader.open()
        connections = [c for c in self._reader.connections if topics is None or c.topic in topics]
        self.skipped = sorted({f"{c.topic} [{c.msgtype}]" for c in connections if message_class(c.msgtype) is None})
        self._connections = [c for c in connections if message_class(c.msgtype) is not None]
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self._topic_publishers = {c.topic: self.create_publisher(message_class(c.msgtype), c.topic, qos)
                            for c in self._connections}
        self._clock = self.create_publisher(Clock, "/clock", 10)

    def play(self, should_stop=lambda: False) -> int:
        """Publish everything once; returns the number of messages published."""
        start_wall, first_log, count = time.monotonic(), None, 0
        for connection, log_time, raw in self._reader.messages(connections=self._connections):
            if should_stop():
                break
            first_log = log_time if first_log is None else first_log
            time.sleep(max(0.0, start_wall + (log_time - first_log) / 1e9 / self.rate - time.monotonic()))
            clock = Clock()
            clock.clock.sec, clock.clock.nanosec = log_time // 10**9, log_time % 10**9
            self._clock.publish(clock)
            self._topic_publishers[connection.topic].publish(bytes(raw))
            count += 1
        return count

    def wait_for_delivery(self, timeout_s: float = 5.0) -> bool:
        """Wait until reliable subscribers acknowledged everything published (at most ``timeout_s``): a process
        that exits right after its last ``publish`` can otherwise take the tail of the bag with it."""
        return all(publisher.wait_for_all_acked(Duration(seconds=timeout_s))
                   for publisher in [*self._topic_publishers.values(), self._clock])

    def destroy_node(self):
        self._reader.close()
        return super().destroy_node()


def play(bag: str | Path, rate: float = 1.0, topics: list[str] | None = None, loop: bool = False,
         wait_for_subscribers: float = 0.0) -> int:
    """Run a BagPlayer in its own rclpy context; returns how many messages were published."""
    rclpy.init()
    player = BagPlayer(bag, rate=rate, topics=topics)
    try:
        for line in player.skipped:
            player.get_logger().warning(f"skipping {line}: its message package is not installed")
        deadline = time.monotonic() + wait_for_subscribers
        while time.monotonic() < deadline and not any(p.get_subscription_count() for p in player._topic_publishers.values()):
            time.sleep(0.05)
        total = 0
        while True:
            total += player.play()
            if not loop:
                player.wait_for_delivery()
                return total
    except KeyboardInterrupt:
        return 0
    finally:
        player.destroy_node()
        rclpy.try_shutdown()
