"""Test harness: nodes run as real processes; this process talks to them through rclpy and Fast DDS."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy

REPO = Path(__file__).resolve().parents[2]
TINY_WEIGHTS = REPO / "test" / "data" / "mtpano" / "tiny_state_dict.safetensors"
TINY_MODEL = {"model.config": "tiny-fixture", "model.checkpoint": str(TINY_WEIGHTS)}


def node_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "_ROS_WHEELS_BOOTSTRAP_COMPLETE"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _param_arg(name, value) -> str:
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif value == "":
        value = "''"  # an empty YAML string; a bare ':=' does not parse
    return f"{name}:={value}"


class NodeProcess:
    """A node started as ``python -m module --ros-args ...`` in its own process."""

    def __init__(self, module: str, namespace: str, params: dict, name: str | None = None):
        args = [sys.executable, "-m", module, "--ros-args", "-r", f"__ns:={namespace}"]
        if name:
            args += ["-r", f"__node:={name}"]
        for key, value in params.items():
            args += ["-p", _param_arg(key, value)]
        descriptor, path = tempfile.mkstemp(prefix="pano_node_", suffix=".log")  # removed by stop()
        os.close(descriptor)
        self.log_path = Path(path)
        self._log = open(self.log_path, "a")
        self._final_output: str | None = None
        self.process = subprocess.Popen(args, env=node_env(), stdout=self._log, stderr=subprocess.STDOUT,
                                        cwd=REPO)

    def output(self) -> str:
        """What the node has printed so far (kept after ``stop``)."""
        return self.log_path.read_text() if self._final_output is None else self._final_output

    def interrupt(self, timeout: float = 10.0) -> float:
        """Send SIGINT and return how long the process took to exit."""
        start = time.monotonic()
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout)
        return time.monotonic() - start

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._final_output is None:
            self._log.close()
            self._final_output = self.output()
            self.log_path.unlink()


class Harness:
    """An in-process rclpy node spun in a background thread, with helpers to publish and to collect messages."""

    def __init__(self, name: str = "test_harness"):
        self.node = rclpy.create_node(name)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()
        self.received: dict[str, list] = {}
        self._lock = threading.Lock()

    def subscribe(self, kind, topic: str, reliable: bool = True) -> None:
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE if reliable
                         else ReliabilityPolicy.BEST_EFFORT)
        self.received.setdefault(topic, [])

        def store(msg, topic=topic):
            with self._lock:
                self.received[topic].append(msg)

        self.node.create_subscription(kind, topic, store, qos)

    def publisher(self, kind, topic: str, reliable: bool = True):
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE if reliable
                         else ReliabilityPolicy.BEST_EFFORT)
        return self.node.create_publisher(kind, topic, qos)

    def messages(self, topic: str) -> list:
        with self._lock:
            return list(self.received.get(topic, []))

    def wait_for(self, predicate, timeout: float, poll: float = 0.05, during=None) -> bool:
        """Poll ``predicate`` until true or ``timeout``; ``during`` is called each poll (e.g. to publish)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if during is not None:
                during()
            if predicate():
                return True
            time.sleep(poll)
        return predicate()

    def call(self, kind, service: str, request, timeout: float = 20.0):
        client = self.node.create_client(kind, service)
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise TimeoutError(f"service {service} did not appear")
            future = client.call_async(request)
            deadline = time.monotonic() + timeout
            while not future.done() and time.monotonic() < deadline:
                time.sleep(0.02)
            if not future.done():
                raise TimeoutError(f"service {service} did not answer")
            return future.result()
        finally:
            self.node.destroy_client(client)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
