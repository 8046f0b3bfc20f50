"""rosbag2 recordings (mcap or sqlite3) of a 360-degree camera moving through a synthetic scene.

Written and read with the pure-Python ``rosbags`` library and its ROS 2 Kilted type store (no rclpy). Topics
(every image has ``frame_id`` ``camera_link``; all messages of frame k carry the header stamp
``start + k / rate`` and are logged at that time):

- ``/camera/image`` sensor_msgs/Image ``rgb8`` ERP panorama;
- ``/camera/image/compressed`` sensor_msgs/CompressedImage, JPEG (format ``rgb8; jpeg compressed bgr8``);
- ``/ground_truth/depth`` Image ``32FC1`` radial metres, NaN invalid;
- ``/ground_truth/normals`` Image ``32FC3`` camera frame (optional);
- ``/ground_truth/semantic`` Image ``mono8`` ADE20K-150 ids; ``/ground_truth/instances`` Image ``mono16``;
- ``/ground_truth/pose`` geometry_msgs/PoseStamped of ``camera_link`` in ``map``;
- ``/tf`` tf2_msgs/TFMessage ``odom`` -> ``camera_link``; ``/tf_static`` ``map`` -> ``odom`` (identity, once,
  transient-local QoS).

The bag's metadata ``custom_data`` names the scene (seed, kind) and which instance ids are objects ("things").
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import yaml
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import Reader, Writer

from ..bagio import STORAGES, TYPESTORE, header, image_message

from .render import Frame, RenderOptions, render_erp
from .scene import CameraPose, Scene

CAMERA_FRAME, ODOM_FRAME, MAP_FRAME = "camera_link", "odom", "map"
DEFAULT_START_NS = 1_700_000_000 * 10**9  # 2023-11-14T22:13:20Z
JPEG_FORMAT = "rgb8; jpeg compressed bgr8"
TOPICS = {
    "image": ("/camera/image", "sensor_msgs/msg/Image"),
    "compressed": ("/camera/image/compressed", "sensor_msgs/msg/CompressedImage"),
    "depth": ("/ground_truth/depth", "sensor_msgs/msg/Image"),
    "normals": ("/ground_truth/normals", "sensor_msgs/msg/Image"),
    "semantic": ("/ground_truth/semantic", "sensor_msgs/msg/Image"),
    "instances": ("/ground_truth/instances", "sensor_msgs/msg/Image"),
    "pose": ("/ground_truth/pose", "geometry_msgs/msg/PoseStamped"),
    "tf": ("/tf", "tf2_msgs/msg/TFMessage"),
    "tf_static": ("/tf_static", "tf2_msgs/msg/TFMessage"),
}
_LATCHED = Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL, QosTime(0, 0),
               QosTime(0, 0), QosLiveliness.AUTOMATIC, QosTime(0, 0), False)

_msg = TYPESTORE.types


def _transform(parent: str, child: str, stamp_ns: int, pose: CameraPose):
    x, y, z, w = pose.quaternion_xyzw
    return _msg["geometry_msgs/msg/TransformStamped"](
        header=header(stamp_ns, parent), child_frame_id=child,
        transform=_msg["geometry_msgs/msg/Transform"](
            translation=_msg["geometry_msgs/msg/Vector3"](x=float(pose.position[0]), y=float(pose.position[1]),
                                                          z=float(pose.position[2])),
            rotation=_msg["geometry_msgs/msg/Quaternion"](x=float(x), y=float(y), z=float(z), w=float(w))))


def _pose_stamped(stamp_ns: int, pose: CameraPose):
    x, y, z, w = pose.quaternion_xyzw
    return _msg["geometry_msgs/msg/PoseStamped"](
        header=header(stamp_ns, MAP_FRAME),
        pose=_msg["geometry_msgs/msg/Pose"](
            position=_msg["geometry_msgs/msg/Point"](x=float(pose.position[0]), y=float(pose.position[1]),
                                                     z=float(pose.position[2])),
            orientation=_msg["geometry_msgs/msg/Quaternion"](x=float(x), y=float(y), z=float(z), w=float(w))))


def frame_messages(frame: Frame, pose: CameraPose, stamp_ns: int, jpeg_quality: int = 90,
                   include_normals: bool = True) -> list[tuple[str, object]]:
    """(topic key, message) pairs of one rendered ERP frame at ``pose`` (keys of ``TOPICS``)."""
    ok, jpeg = cv2.imencode(".jpg", frame.rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    messages = [
        ("image", image_message(frame.rgb, "rgb8", header(stamp_ns, CAMERA_FRAME))),
        ("compressed", _msg["sensor_msgs/msg/CompressedImage"](header=header(stamp_ns, CAMERA_FRAME),
                                                               format=JPEG_FORMAT, data=jpeg.reshape(-1))),
        ("depth", image_message(frame.depth, "32FC1", header(stamp_ns, CAMERA_FRAME))),
    ]
    if include_normals:
        messages.append(("normals", image_message(frame.normals, "32FC3", header(stamp_ns, CAMERA_FRAME))))
    messages += [
        ("semantic", image_message(frame.semantic, "mono8", header(stamp_ns, CAMERA_FRAME))),
        ("instances", image_message(frame.instance, "mono16", header(stamp_ns, CAMERA_FRAME))),
        ("pose", _pose_stamped(stamp_ns, pose)),
        ("tf", _msg["tf2_msgs/msg/TFMessage"](transforms=[_transform(ODOM_FRAME, CAMERA_FRAME, stamp_ns, pose)])),
    ]
    return messages


def write_bag(path: Path | str, scene: Scene, poses: list[CameraPose], height: int, *, storage: str = "mcap",
              rate_hz: float = 10.0, start_ns: int = DEFAULT_START_NS, options: RenderOptions | None = None,
              jpeg_quality: int = 90, include_normals: bool = True,
              on_frame: Callable[[], None] | None = None) -> list[int]:
    """Render ERP frames of ``height`` x ``2*height`` along ``poses`` and record them to a new rosbag2 at
    ``path`` (a directory; it must not exist). Returns the header stamps (ns) of the frames."""
    options = options or RenderOptions()
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {sorted(STORAGES)}; got {storage!r}")
    stamps = [start_ns + round(k * 1e9 / rate_hz) for k in range(len(poses))]
    with Writer(Path(path), version=9, storage_plugin=STORAGES[storage]) as writer:
        keys = [k for k in TOPICS if include_normals or k != "normals"]
        connections = {key: writer.add_connection(*TOPICS[key], typestore=TYPESTORE,
                                                  offered_qos_profiles=[_LATCHED] if key == "tf_static" else ())
                       for key in keys}

        def write(key: str, stamp_ns: int, msg) -> None:
            writer.write(connections[key], stamp_ns, TYPESTORE.serialize_cdr(msg, TOPICS[key][1]))

        writer.set_custom_data("pano_perception.scene_seed", str(scene.seed))
        writer.set_custom_data("pano_perception.scene_kind", scene.kind)
        writer.set_custom_data("pano_perception.thing_instances",
                               ",".join(str(o.instance_id) for o in scene.objects if o.is_thing))
        identity = CameraPose(np.zeros(3), np.eye(3))
        write("tf_static", start_ns, _msg["tf2_msgs/msg/TFMessage"](
            transforms=[_transform(MAP_FRAME, ODOM_FRAME, start_ns, identity)]))
        for k, (pose, stamp) in enumerate(zip(poses, stamps)):
            frame = render_erp(scene, pose, height, dataclasses.replace(options, seed=options.seed + k))
            for key, msg in frame_messages(frame, pose, stamp, jpeg_quality, include_normals):
                write(key, stamp, msg)
            if on_frame is not None:
                on_frame()
    return stamps


def bag_custom_data(path: Path | str) -> dict[str, str]:
    """The ``custom_data`` of a rosbag2's metadata.yaml (``write_bag`` stores ``pano_perception.scene_seed``,
    ``.scene_kind`` and ``.thing_instances``: comma-separated instance ids of objects, not stuff)."""
    metadata = yaml.safe_load((Path(path) / "metadata.yaml").read_text())
    return dict(metadata["rosbag2_bagfile_information"].get("custom_data") or {})


def read_bag(path: Path | str) -> list[tuple[str, int, object]]:
    """Every message of a rosbag2 (mcap or sqlite3) in log-time order: (topic, log time ns, message)."""
    with Reader(Path(path)) as reader:
        return [(conn.topic, timestamp, TYPESTORE.deserialize_cdr(data, conn.msgtype))
                for conn, timestamp, data in reader.messages()]
