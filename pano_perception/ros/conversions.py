"""sensor_msgs Image / CompressedImage / PointCloud2 <-> numpy, without cv_bridge and without per-element copies.

Receiving is zero-copy (``np.frombuffer`` on ``msg.data``); sending copies once (``fill_data``), into the
message's existing buffer when it already has the right size, so nodes that keep one message per topic avoid
re-allocating 22 MB per 4K frame.
"""
from __future__ import annotations

import sys

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image, PointCloud2, PointField

# encoding -> (dtype, channels)
ENCODINGS = {
    "rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "rgba8": (np.uint8, 4), "bgra8": (np.uint8, 4),
    "mono8": (np.uint8, 1), "8UC1": (np.uint8, 1), "8UC3": (np.uint8, 3),
    "mono16": (np.uint16, 1), "16UC1": (np.uint16, 1),
    "32FC1": (np.float32, 1), "32FC3": (np.float32, 3),
}
COLOUR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC3", "8UC1")
_LITTLE_ENDIAN = sys.byteorder == "little"


class ImageConversionError(ValueError):
    """An image message that cannot be turned into an array; the message says why."""


def fill_data(msg, array: np.ndarray) -> None:
    """Copy ``array``'s bytes into ``msg.data`` with one memcpy (reusing the buffer when the size matches)."""
    flat = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    if len(msg.data) == flat.size:
        np.frombuffer(msg.data, dtype=np.uint8)[:] = flat
    else:
        msg.data = flat.tobytes()


def image_to_numpy(msg: Image) -> np.ndarray:
    """Image -> (H, W) or (H, W, C) array viewing the message buffer (row padding removed, native byte order)."""
    if msg.encoding not in ENCODINGS:
        raise ImageConversionError(f"unsupported image encoding {msg.encoding!r}; supported: {sorted(ENCODINGS)}")
    dtype, channels = ENCODINGS[msg.encoding]
    dtype = np.dtype(dtype)
    if msg.height == 0 or msg.width == 0:
        raise ImageConversionError(f"empty image ({msg.width}x{msg.height})")
    row_bytes = msg.width * channels * dtype.itemsize
    if msg.step < row_bytes:
        raise ImageConversionError(f"step {msg.step} is smaller than a {msg.encoding} row of {msg.width} px "
                                   f"({row_bytes} bytes)")
    if len(msg.data) != msg.step * msg.height:
        raise ImageConversionError(f"data has {len(msg.data)} bytes; a {msg.width}x{msg.height} {msg.encoding} "
                                   f"image with step {msg.step} needs {msg.step * msg.height}")
    raw = np.frombuffer(msg.data, dtype=np.uint8).reshape(msg.height, msg.step)[:, :row_bytes]
    if dtype.itemsize > 1:
        dtype = dtype.newbyteorder(">" if msg.is_bigendian else "<")
    array = raw.view(dtype) if raw.flags.c_contiguous else np.ascontiguousarray(raw).view(dtype)
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return array.reshape(msg.height, msg.width, channels) if channels > 1 else array.reshape(msg.height, msg.width)


def image_to_rgb(msg: Image) -> np.ndarray:
    """A colour or mono8 Image -> RGB uint8 (H, W, 3)."""
    if msg.encoding not in COLOUR_ENCODINGS:
        raise ImageConversionError(f"expected a colour image ({', '.join(COLOUR_ENCODINGS)}); got "
                                   f"{msg.encoding!r}")
    array = image_to_numpy(msg)
    if msg.encoding in ("rgb8", "8UC3"):
        return array
    if msg.encoding == "bgr8":
        return array[..., ::-1]
    if msg.encoding == "rgba8":
        return array[..., :3]
    if msg.encoding == "bgra8":
        return array[..., 2::-1]
    return np.repeat(array[..., None], 3, axis=2)


def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
    """A jpeg/png CompressedImage -> RGB uint8 (H, W, 3)."""
    if len(msg.data) == 0:
        raise ImageConversionError("compressed image has no data")
    decoded = cv2.imdecode(np.frombuffer(msg.data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if decoded is None:
        raise ImageConversionError(f"could not decode the compressed image (format {msg.format!r}, "
                                   f"{len(msg.data)} bytes): corrupt or not jpeg/png")
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


def numpy_to_image(array: np.ndarray, encoding: str, header=None, msg: Image | None = None) -> Image:
    """Array -> Image with ``encoding`` (dtype and channels must match); reuses ``msg`` when given."""
    if encoding not in ENCODINGS:
        raise ImageConversionError(f"unsupported image encoding {encoding!r}")
    dtype, channels = ENCODINGS[encoding]
    shape_ok = array.ndim == 2 and channels == 1 or array.ndim == 3 and array.shape[2] == channels
    if array.dtype != dtype or not shape_ok:
        raise ImageConversionError(f"{encoding} needs a {np.dtype(dtype).name} array with {channels} channel(s); "
                                   f"got {array.dtype.name} {array.shape}")
    msg = msg if msg is not None else Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0 if _LITTLE_ENDIAN else 1
    msg.step = msg.width * channels * np.dtype(dtype).itemsize
    fill_data(msg, array)
    return msg


def rgb_to_compressed(rgb: np.ndarray, fmt: str = "jpeg", header=None, quality: int = 90) -> CompressedImage:
    """RGB uint8 (H, W, 3) -> CompressedImage (``jpeg`` or ``png``)."""
    if fmt not in ("jpeg", "png"):
        raise ImageConversionError(f"compressed format must be jpeg or png; got {fmt!r}")
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if fmt == "jpeg" else []
    ok, encoded = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ImageConversionError(f"OpenCV could not encode a {rgb.shape} image as {fmt}")
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = fmt
    msg.data = encoded.tobytes()
    return msg


def pointcloud2(points: np.ndarray, header=None, *, rgb: np.ndarray | None = None,
                normals: np.ndarray | None = None, labels: np.ndarray | None = None,
                label_name: str = "label") -> PointCloud2:
    """(N, 3) points in metres -> an unorganised PointCloud2 built in one buffer.

    Fields: x, y, z (float32); ``rgb`` (N, 3) uint8 packed into a float32 ``rgb`` field (RViz's layout);
    ``normals`` (N, 3) as normal_x/y/z float32; ``labels`` (N,) as a uint16 field named ``label_name``.
    """
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must be (N, 3); got {points.shape}")
    n = points.shape[0]
    fields = [("x", np.float32), ("y", np.float32), ("z", np.float32)]
    if rgb is not None:
        fields.append(("rgb", np.uint32))
    if normals is not None:
        fields += [("normal_x", np.float32), ("normal_y", np.float32), ("normal_z", np.float32)]
    if labels is not None:
        fields.append((label_name, np.uint16))
    cloud = np.empty(n, dtype=np.dtype(fields))
    cloud["x"], cloud["y"], cloud["z"] = points[:, 0], points[:, 1], points[:, 2]
    if rgb is not None:
        rgb = np.asarray(rgb, dtype=np.uint32)
        cloud["rgb"] = (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
    if normals is not None:
        cloud["normal_x"], cloud["normal_y"], cloud["normal_z"] = normals[:, 0], normals[:, 1], normals[:, 2]
    if labels is not None:
        cloud[label_name] = labels
    ros_types = {np.dtype(np.float32): PointField.FLOAT32, np.dtype(np.uint32): PointField.FLOAT32,
                 np.dtype(np.uint16): PointField.UINT16}
    msg = PointCloud2()
    if header is not None:
        msg.header = header
    msg.height, msg.width = 1, n
    msg.fields = [PointField(name=name, offset=cloud.dtype.fields[name][1], datatype=ros_types[cloud.dtype[name]],
                             count=1) for name in cloud.dtype.names]
    msg.is_bigendian = not _LITTLE_ENDIAN
    msg.point_step = cloud.dtype.itemsize
    msg.row_step = msg.point_step * n
    msg.is_dense = bool(np.isfinite(points).all())
    fill_data(msg, cloud)
    return msg


def pointcloud2_to_numpy(msg: PointCloud2) -> np.ndarray:
    """PointCloud2 -> structured numpy array (one record per point), for tests and replay."""
    names, formats, offsets = [], [], []
    to_numpy = {PointField.FLOAT32: np.float32, PointField.UINT16: np.uint16, PointField.UINT8: np.uint8,
                PointField.INT32: np.int32, PointField.UINT32: np.uint32, PointField.FLOAT64: np.float64}
    for field in msg.fields:
        names.append(field.name)
        formats.append(to_numpy[field.datatype])
        offsets.append(field.offset)
    dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": msg.point_step})
    return np.frombuffer(msg.data, dtype=dtype, count=msg.width * msg.height)
