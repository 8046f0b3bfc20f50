"""Image / CompressedImage / PointCloud2 conversions against real sensor_msgs messages."""
import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image, PointCloud2
from std_msgs.msg import Header

from pano_perception.ros.conversions import (ENCODINGS, ImageConversionError, compressed_to_rgb, decode_compressed,
                                             image_to_numpy, image_to_rgb, image_view, numpy_to_image, pointcloud2,
                                             pointcloud2_points_view, pointcloud2_to_numpy, rgb_to_compressed)

RNG = np.random.default_rng(0)


def sample(encoding, height=6, width=10):
    dtype, channels = ENCODINGS[encoding]
    shape = (height, width) if channels == 1 else (height, width, channels)
    if np.dtype(dtype).kind == "f":
        return RNG.standard_normal(shape).astype(dtype)
    return RNG.integers(0, np.iinfo(dtype).max, shape, dtype=dtype)


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_round_trip_every_encoding(encoding):
    array = sample(encoding)
    header = Header(frame_id="camera_link")
    msg = numpy_to_image(array, encoding, header)
    assert msg.header.frame_id == "camera_link" and msg.encoding == encoding
    np.testing.assert_array_equal(image_to_numpy(msg), array)


def test_row_padding_and_big_endian():
    array = sample("16UC1", 4, 5)
    padded = np.zeros((4, 16), np.uint8)
    padded[:, :10] = array.astype(">u2").view(np.uint8).reshape(4, 10)
    msg = Image(height=4, width=5, encoding="16UC1", is_bigendian=1, step=16, data=padded.tobytes())
    np.testing.assert_array_equal(image_to_numpy(msg), array)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"])
def test_colour_encodings_give_rgb(encoding):
    rgb = sample("rgb8")
    if encoding == "mono8":
        rgb = np.repeat(rgb[..., :1], 3, axis=2)
    converted = {"rgb8": rgb, "bgr8": rgb[..., ::-1], "mono8": rgb[..., 0],
                 "rgba8": np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 7, np.uint8)], -1),
                 "bgra8": np.concatenate([rgb[..., ::-1], np.full(rgb.shape[:2] + (1,), 7, np.uint8)], -1)}
    msg = numpy_to_image(np.ascontiguousarray(converted[encoding]), encoding)
    np.testing.assert_array_equal(image_to_rgb(msg), rgb)


def test_compressed_round_trip_and_corrupt_data():
    rgb = np.zeros((32, 64, 3), np.uint8)
    rgb[:, :32] = (200, 30, 10)
    png = rgb_to_compressed(rgb, "png")
    np.testing.assert_array_equal(compressed_to_rgb(png), rgb)
    jpeg = rgb_to_compressed(rgb, "jpeg", quality=95)
    assert np.abs(compressed_to_rgb(jpeg).astype(int) - rgb).mean() < 3
    with pytest.raises(ImageConversionError, match="no data"):
        compressed_to_rgb(CompressedImage(format="jpeg"))
    with pytest.raises(ImageConversionError, match="corrupt"):
        compressed_to_rgb(CompressedImage(format="jpeg", data=bytes(jpeg.data)[:40]))


def test_bad_images_name_the_cause():
    with pytest.raises(ImageConversionError, match="unsupported image encoding 'yuv422'"):
        image_to_numpy(Image(height=2, width=2, encoding="yuv422", step=4, data=bytes(8)))
    with pytest.raises(ImageConversionError, match="empty image"):
        image_to_numpy(Image(encoding="rgb8"))
    with pytest.raises(ImageConversionError, match="needs 24"):
        image_to_numpy(Image(height=2, width=4, encoding="rgb8", step=12, data=bytes(10)))
    with pytest.raises(ImageConversionError, match="expected a colour image"):
        image_to_rgb(numpy_to_image(np.zeros((2, 2), np.float32), "32FC1"))
    with pytest.raises(ImageConversionError, match="float32 array with 1"):
        numpy_to_image(np.zeros((2, 2), np.float64), "32FC1")


def test_numpy_to_image_reuses_the_buffer():
    msg = numpy_to_image(np.zeros((4, 4), np.uint8), "mono8")
    buffer_id = id(msg.data)
    numpy_to_image(np.full((4, 4), 9, np.uint8), "mono8", msg=msg)
    assert id(msg.data) == buffer_id and set(msg.data) == {9}


def test_image_view_writes_land_in_the_message():
    msg = Image()
    view = image_view(msg, 2, 4, "32FC3", Header(frame_id="camera_link"))
    assert view.shape == (2, 4, 3) and view.dtype == np.float32
    view[:] = np.arange(24, dtype=np.float32).reshape(2, 4, 3)
    assert (msg.height, msg.width, msg.step, msg.encoding, msg.header.frame_id) == (2, 4, 48, "32FC3", "camera_link")
    np.testing.assert_array_equal(image_to_numpy(msg), view)
    buffer_id = id(msg.data)
    assert image_view(msg, 2, 4, "32FC3").shape == (2, 4, 3) and id(msg.data) == buffer_id  # same size: kept
    assert image_view(msg, 3, 6, "mono8").shape == (3, 6) and len(msg.data) == 18


def test_points_built_in_the_message_buffer_are_not_copied_again():
    points = RNG.standard_normal((3, 5, 4)).astype(np.float32)
    colours = RNG.integers(0, 256, (3, 5, 3), dtype=np.uint8)
    msg = PointCloud2()
    view = pointcloud2_points_view(msg, 3, 5)
    view[:] = points
    buffer_id = id(msg.data)
    pointcloud2(view, Header(frame_id="camera_link"), rgb=colours, msg=msg)
    assert id(msg.data) == buffer_id and (msg.height, msg.width, msg.point_step) == (3, 5, 16)
    expected = pointcloud2(points, rgb=colours)
    assert bytes(msg.data) == bytes(expected.data) and msg.fields == expected.fields


def test_pointcloud2_layout_and_values():
    points = RNG.standard_normal((100, 3)).astype(np.float32)
    colours = RNG.integers(0, 256, (100, 3), dtype=np.uint8)
    normals = RNG.standard_normal((100, 3)).astype(np.float32)
    labels = RNG.integers(0, 150, 100).astype(np.uint16)
    msg = pointcloud2(points, Header(frame_id="camera_link"), rgb=colours, normals=normals, labels=labels)
    assert [f.name for f in msg.fields] == ["x", "y", "z", "rgb", "normal_x", "normal_y", "normal_z", "label"]
    assert msg.point_step == 32 and msg.row_step == 3200 and msg.width == 100 and msg.height == 1
    cloud = pointcloud2_to_numpy(msg)
    np.testing.assert_array_equal(np.stack([cloud["x"], cloud["y"], cloud["z"]], -1), points)
    packed = cloud["rgb"].view(np.uint32)
    np.testing.assert_array_equal(np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], -1), colours)
    assert np.all(packed >> 24 == 255)
    np.testing.assert_array_equal(cloud["label"], labels)
    np.testing.assert_array_equal(cloud["normal_z"], normals[:, 2])


def test_organised_pointcloud_reuses_the_message_buffer():
    points = RNG.standard_normal((4, 6, 3)).astype(np.float32)
    points[0, 0] = np.nan
    colours = RNG.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    msg = pointcloud2(points, rgb=colours)
    assert (msg.height, msg.width, msg.row_step, msg.is_dense) == (4, 6, 6 * 16, False)
    buffer_id = id(msg.data)
    again = pointcloud2(points * 2, rgb=colours, msg=msg)
    assert again is msg and id(msg.data) == buffer_id
    cloud = pointcloud2_to_numpy(msg)
    np.testing.assert_array_equal(cloud["z"].reshape(4, 6), points[..., 2] * 2)


def test_pointcloud2_takes_strided_colours_like_contiguous_ones():
    """A decimated colour image (every 2nd/3rd row and column of a larger one, as depth_to_cloud passes it) packs
    the same bytes as its contiguous copy."""
    image = RNG.integers(0, 256, (9, 14, 3), dtype=np.uint8)
    for step in (2, 3):
        colours = image[::step, ::step]
        points = RNG.standard_normal(colours.shape[:2] + (3,)).astype(np.float32)
        strided = pointcloud2(points, rgb=colours)
        contiguous = pointcloud2(points, rgb=np.ascontiguousarray(colours))
        assert bytes(strided.data) == bytes(contiguous.data)
        packed = pointcloud2_to_numpy(strided)["rgb"].view(np.uint32).reshape(colours.shape[:2])
        np.testing.assert_array_equal((packed >> 16) & 255, colours[..., 0])


def test_jpeg_decodes_reduced_png_whole():
    rows, cols = np.mgrid[0:64, 0:128]
    rgb = np.stack([100 + 80 * np.sin(cols / 7.0), 120 + 60 * np.cos(rows / 5.0), 0 * rows + 40], -1).astype(np.uint8)
    jpeg, png = rgb_to_compressed(rgb, "jpeg", quality=95), rgb_to_compressed(rgb, "png")
    half, factor = decode_compressed(jpeg, 2)
    assert factor == 2 and half.shape == (32, 64, 3)
    area = cv2.resize(rgb, (64, 32), interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(half.astype(int) - area).mean() < 3
    assert decode_compressed(jpeg, 8)[0].shape == (8, 16, 3)
    whole, factor = decode_compressed(png, 4)  # no reduced decoding for PNG: whole, and said so
    assert factor == 1
    np.testing.assert_array_equal(whole, rgb)
    with pytest.raises(ValueError, match="reduction"):
        decode_compressed(jpeg, 3)
