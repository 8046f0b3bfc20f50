"""rosbag2 (mcap, sqlite3) messages <-> numpy through the pure-Python ``rosbags`` library (no ROS install).

Messages here are rosbags' typestore classes (ROS 2 Kilted definitions, wire-compatible with Humble and Jazzy
for every type used), not rclpy's; the layouts match pano_perception.ros.conversions.
"""
from __future__ import annotations

import struct
import sys
from collections import defaultdict
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


_MCAP_MAGIC = b"\x89MCAP0\r\n"
_OP_SCHEMA, _OP_CHANNEL, _OP_MESSAGE, _OP_CHUNK = 0x03, 0x04, 0x05, 0x06


class _CutMcap:
    """Sequential reader of an MCAP file without its summary (a recording cut off): schemas, channels and
    messages are taken from the records in file order, up to the first incomplete one."""

    def __init__(self, path: Path):
        from rosbags.rosbag2.storage_mcap import decompress

        self._decompress = decompress
        self.path = path
        self.channels: dict[int, tuple[str, str]] = {}  # id -> (topic, msgtype)
        self.counts: dict[str, int] = defaultdict(int)
        self.stop_reason: str | None = None
        with open(path, "rb") as f:
            if f.read(8) != _MCAP_MAGIC:
                raise BagError(f"{path} is not an MCAP file")
        for channel_id, _, _ in self.records():  # first pass: channels and message counts
            self.counts[self.channels[channel_id][0]] += 1

    def records(self) -> Iterator[tuple[int, int, bytes]]:
        """(channel id, log time ns, CDR bytes) of every complete message record."""
        schemas: dict[int, str] = {}
        data = self.path.read_bytes()
        for opcode, body in self._walk(data, 8, top_level=True):
            if opcode == _OP_CHUNK:
                (size,) = struct.unpack_from("<Q", body, 16)
                compression, pos = self._string(body, 28)
                (length,) = struct.unpack_from("<Q", body, pos)
                payload = body[pos + 8:pos + 8 + length]
                if len(payload) < length and compression:
                    return  # a cut compressed chunk cannot be decoded
                # A cut uncompressed chunk still holds every record before the cut.
                records = payload if len(payload) < length else self._decompress(payload, compression, size, 0)
                inner = self._walk(records, 0, top_level=False)
            else:
                inner = [(opcode, body)]
            for op, rec in inner:
                if op == _OP_SCHEMA:
                    (schema_id,) = struct.unpack_from("<H", rec, 0)
                    schemas[schema_id], _ = self._string(rec, 2)
                elif op == _OP_CHANNEL:
                    channel_id, schema_id = struct.unpack_from("<HH", rec, 0)
                    topic, _ = self._string(rec, 4)
                    self.channels[channel_id] = (topic, schemas.get(schema_id, ""))
                elif op == _OP_MESSAGE:
                    channel_id, _, log_time = struct.unpack_from("<HIQ", rec, 0)
                    yield channel_id, log_time, bytes(rec[22:])

    def _walk(self, data: bytes, pos: int, top_level: bool):
        while pos + 9 <= len(data):
            opcode, length = struct.unpack_from("<BQ", data, pos)
            if pos + 9 + length > len(data):
                if top_level:
                    self.stop_reason = f"record at byte {pos} needs {length} bytes, the file ends first"
                    if opcode == _OP_CHUNK:
                        yield opcode, memoryview(data)[pos + 9:]
                return
            yield opcode, memoryview(data)[pos + 9:pos + 9 + length]
            pos += 9 + length
        if top_level and pos < len(data):
            self.stop_reason = f"file ends inside a record header at byte {pos}"

    @staticmethod
    def _string(body, pos: int) -> tuple[str, int]:
        (length,) = struct.unpack_from("<I", body, pos)
        return bytes(body[pos + 4:pos + 4 + length]).decode(), pos + 4 + length


class BagReader:
    """Reads a rosbag2 folder or file (mcap or sqlite3); errors name the bag and the cause.

    ``messages`` stops at the first unreadable record of a truncated or corrupt bag and records why in
    ``error``, so callers keep everything read before it. An MCAP file cut off mid-recording (no summary) is
    read record by record up to where it ends.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.error: str | None = None
        self._reader = self._cut = None
        if not self.path.exists():
            raise BagError(f"bag not found: {self.path}")
        try:
            self._reader = AnyReader([self.path], default_typestore=TYPESTORE)
            self._reader.open()
        except Exception as exc:
            mcap = self._lone_mcap()
            if mcap is None:
                raise BagError(f"cannot open bag {self.path}: {exc}") from exc
            self._reader = None
            self._cut = _CutMcap(mcap)
            self.error = (f"bag {self.path} is truncated or corrupt ({exc}); read record by record: "
                          f"{self._cut.stop_reason or 'no complete summary'}")

    def _lone_mcap(self) -> Path | None:
        if self.path.is_file():
            return self.path if self.path.suffix == ".mcap" else None
        files = sorted(self.path.glob("*.mcap"))
        return files[0] if len(files) == 1 else None

    @property
    def topics(self) -> dict[str, str]:
        """topic -> message type."""
        if self._cut is not None:
            return dict(self._cut.channels.values())
        return {c.topic: c.msgtype for c in self._reader.connections}

    def message_count(self, topic: str) -> int:
        if self._cut is not None:
            return self._cut.counts.get(topic, 0)
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
        if self._cut is not None:
            for channel_id, log_time, raw in self._cut.records():
                topic, msgtype = self._cut.channels[channel_id]
                if topic in topics:
                    yield BagMessage(topic, log_time, TYPESTORE.deserialize_cdr(raw, msgtype))
            return
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
        if self._reader is not None:
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
