"""rosbag2 (mcap, sqlite3) messages <-> numpy through the pure-Python ``rosbags`` library (no ROS install).

Messages here are rosbags' typestore classes (ROS 2 Kilted definitions, wire-compatible with Humble and Jazzy
for every type used), not rclpy's; the layouts match pano_perception.ros.conversions.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
POINTCLOUD_TYPE = "sensor_msgs/msg/PointCloud2"
ENCODINGS = {"rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "rgba8": (np.uint8, 4), "bgra8": (np.uint8, 4),
             "mono8": (np.uint8, 1), "8UC1": (np.uint8, 1), "8UC3": (np.uint8, 3), "mono16": (np.uint16, 1),
             "16UC1": (np.uint16, 1), "32FC1": (np.float32, 1), "32FC3": (np.float32, 3)}
_msg = TYPESTORE.types
_LITTLE = sys.byteorder == "little"


class BagError(RuntimeError):
    """A bag that cannot be read (missing, corrupt, truncated) or a topic it does not have; says which."""


def header(stamp_ns: int, frame_id: str):
    """std_msgs/Header at ``stamp_ns`` nanoseconds."""
    return _msg["std_msgs/msg/Header"](
        stamp=_msg["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id=frame_id)


def stamp_ns(msg) -> int:
    """Header stamp of a message in nanoseconds."""
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


def image_message(array: np.ndarray, encoding: str, msg_header):
    """sensor_msgs/Image of an (H, W[, C]) array in ``encoding`` (little-endian)."""
    dtype, channels = ENCODINGS[encoding]
    data = np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<"))
    if (data.shape[2] if data.ndim == 3 else 1) != channels:
        raise ValueError(f"{encoding} needs {channels} channel(s); got shape {array.shape}")
    height, width = data.shape[:2]
    return _msg[IMAGE_TYPE](header=msg_header, height=height, width=width, encoding=encoding, is_bigendian=0,
                            step=width * channels * data.dtype.itemsize, data=data.reshape(-1).view(np.uint8))


def compressed_message(rgb: np.ndarray, msg_header, fmt: str = "jpeg", quality: int = 90):
    """sensor_msgs/CompressedImage (jpeg or png) of an RGB uint8 image."""
    ext, params = (".jpg", [cv2.IMWRITE_JPEG_QUALITY, quality]) if fmt == "jpeg" else (".png", [])
    ok, encoded = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {rgb.shape} image as {fmt}")
    return _msg[COMPRESSED_TYPE](header=msg_header, format=f"rgb8; {fmt} compressed bgr8", data=encoded.reshape(-1))


def pointcloud_message(points: np.ndarray, rgb: np.ndarray, msg_header):
    """Organised (H, W, 3|4) or unorganised (N, 3|4) xyz float32 + packed rgb -> sensor_msgs/PointCloud2."""
    height, width = (1, points.shape[0]) if points.ndim == 2 else points.shape[:2]
    n = height * width
    words = np.empty((n, 4), np.float32)
    words[:, :3] = points.reshape(n, points.shape[-1])[:, :3]
    colours = np.asarray(rgb, np.uint32).reshape(n, 3)
    words.view(np.uint32)[:, 3] = (255 << 24) | (colours[:, 0] << 16) | (colours[:, 1] << 8) | colours[:, 2]
    field = _msg["sensor_msgs/msg/PointField"]
    fields = [field(name=name, offset=4 * i, datatype=7, count=1) for i, name in enumerate(("x", "y", "z", "rgb"))]
    return _msg[POINTCLOUD_TYPE](header=msg_header, height=height, width=width, fields=fields,
                                 is_bigendian=not _LITTLE, point_step=16, row_step=16 * width,
                                 data=words.reshape(-1).view(np.uint8), is_dense=height == 1)


def message_to_numpy(msg) -> np.ndarray:
    """(H, W[, C]) array of a sensor_msgs/Image, or RGB uint8 of a jpeg/png sensor_msgs/CompressedImage."""
    if msg.__msgtype__ == COMPRESSED_TYPE:
        data = np.asarray(msg.data, dtype=np.uint8)
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if bgr is None:
            raise ValueError(f"cannot decode a CompressedImage (format {msg.format!r}, {data.size} bytes)")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if msg.encoding not in ENCODINGS:
        raise ValueError(f"unsupported image encoding {msg.encoding!r}")
    dtype, channels = ENCODINGS[msg.encoding]
    dt = np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<")
    row_bytes = msg.width * channels * dt.itemsize
    rows = np.asarray(msg.data, dtype=np.uint8)
    if rows.size != msg.step * msg.height or msg.step < row_bytes:
        raise ValueError(f"image data of {rows.size} bytes does not match {msg.width}x{msg.height} "
                         f"{msg.encoding} with step {msg.step}")
    pixels = rows.reshape(msg.height, msg.step)[:, :row_bytes].copy().view(dt).astype(dtype)
    return pixels.reshape(msg.height, msg.width, channels) if channels > 1 else pixels


def image_to_rgb(msg) -> np.ndarray:
    """RGB uint8 (H, W, 3) of a colour Image (rgb8, bgr8, rgba8, bgra8, mono8) or a CompressedImage."""
    array = message_to_numpy(msg)
    if msg.__msgtype__ == COMPRESSED_TYPE or msg.encoding in ("rgb8", "8UC3"):
        return array
    conversions = {"bgr8": cv2.COLOR_BGR2RGB, "rgba8": cv2.COLOR_RGBA2RGB, "bgra8": cv2.COLOR_BGRA2RGB,
                   "mono8": cv2.COLOR_GRAY2RGB, "8UC1": cv2.COLOR_GRAY2RGB}
    if msg.encoding not in conversions:
        raise ValueError(f"expected a colour image; got encoding {msg.encoding!r}")
    return cv2.cvtColor(array, conversions[msg.encoding])


@dataclass
class BagMessage:
    topic: str
    log_time_ns: int
    msg: object


class BagReader:
    """Reads a rosbag2 folder or file (mcap or sqlite3); errors name the bag and the cause.

    ``messages`` stops at the first unreadable record of a truncated or corrupt bag and records why in
    ``error``, so callers keep everything read before it.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f"bag not found: {self.path}")
        try:
            self._reader = AnyReader([self.path], default_typestore=TYPESTORE)
            self._reader.open()
        except Exception as exc:
            raise BagError(f"cannot open bag {self.path}: {exc}") from exc
        self.error: str | None = None

    @property
    def topics(self) -> dict[str, str]:
        """topic -> message type."""
        return {c.topic: c.msgtype for c in self._reader.connections}

    def message_count(self, topic: str) -> int:
        return sum(c.msgcount for c in self._reader.connections if c.topic == topic)

    def require(self, topic: str, types: tuple[str, ...]) -> None:
        """Raise BagError listing the bag's topics unless ``topic`` exists with one of ``types``."""
        if topic not in self.topics:
            listing = "\n".join(f"  {t} [{m}]" for t, m in sorted(self.topics.items()))
            raise BagError(f"topic {topic!r} is not in {self.path}; its topics are:\n{listing}")
        if self.topics[topic] not in types:
            raise BagError(f"topic {topic!r} has type {self.topics[topic]}, expected one of {list(types)}")

    def messages(self, topics: list[str]) -> Iterator[BagMessage]:
        """Messages of ``topics`` in log-time order, deserialised; stops (setting ``error``) at corruption."""
        connections = [c for c in self._reader.connections if c.topic in topics]
        iterator = self._reader.messages(connections=connections)
        while True:
            try:
                connection, timestamp, raw = next(iterator)
                msg = self._reader.deserialize(raw, connection.msgtype)
            except StopIteration:
                return
            except Exception as exc:  # truncated chunk, bad CRC, malformed CDR...
                self.error = f"bag {self.path} is truncated or corrupt: {type(exc).__name__}: {exc}"
                return
            yield BagMessage(connection.topic, timestamp, msg)

    def close(self) -> None:
        self._reader.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class BagWriter:
    """A new rosbag2 (mcap or sqlite3) to which typed messages are appended topic by topic."""

    def __init__(self, path: str | Path, storage: str = "mcap"):
        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {sorted(STORAGES)}; got {storage!r}")
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"output bag {self.path} already exists")
        self._writer = Writer(self.path, version=9, storage_plugin=STORAGES[storage])
        self._writer.open()
        self._connections: dict[str, object] = {}

    def write(self, topic: str, msgtype: str, log_time_ns: int, msg) -> None:
        if topic not in self._connections:
            self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=TYPESTORE)
        self._writer.write(self._connections[topic], log_time_ns, TYPESTORE.serialize_cdr(msg, msgtype))

    def close(self) -> None:
        self._writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
