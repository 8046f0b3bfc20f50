"""Display and transport products of the dense node (pano_perception.dense), exact on hand-made inputs."""
import cv2
import numpy as np
import pytest

from pano_perception.dense import (
    OUTPUT_TOPICS,
    DenseOptions,
    PointCloudArrays,
    cloud_grid,
    dense_products,
    depth_to_cloud,
    normals_to_color,
    output_size,
    predict_dense,
    semantic_overlay,
)
from pano_perception.geometry import erp_rays
from pano_perception.labels import ADE20K_PALETTE
from pano_perception.models.mtpano import MTPanoPrediction


def _prediction(height=8):
    rng = np.random.default_rng(0)
    normals = rng.normal(size=(height, 2 * height, 3)).astype(np.float32)
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    normals[0] = np.nan
    depth = rng.uniform(0.5, 60, (height, 2 * height)).astype(np.float32)
    depth[1, :3] = np.nan
    semantic = rng.integers(0, 150, (height, 2 * height)).astype(np.uint8)
    rgb = rng.integers(0, 256, (height, 2 * height, 3)).astype(np.uint8)
    return rgb, MTPanoPrediction(semantic=semantic, depth=depth, normals=normals)


def test_normals_colour_is_half_plus_half_n_and_invalid_is_black():
    _, prediction = _prediction()
    colour = normals_to_color(prediction.normals)
    expected = np.rint((prediction.normals[1:] + 1) * 127.5)
    assert colour.dtype == np.uint8 and colour.shape == prediction.normals.shape
    assert np.abs(colour[1:].astype(float) - expected).max() <= 1  # OpenCV rounds half to even
    assert (colour[0] == 0).all()


def test_semantic_overlay_blends_the_palette_with_the_image():
    rgb, prediction = _prediction()
    overlay = semantic_overlay(rgb, prediction.semantic, 0.6)
    expected = 0.6 * ADE20K_PALETTE[prediction.semantic].astype(float) + 0.4 * rgb
    assert np.abs(overlay - expected).max() <= 1
    np.testing.assert_array_equal(semantic_overlay(rgb, prediction.semantic, 0.0), rgb)
    with pytest.raises(ValueError, match="alpha"):
        semantic_overlay(rgb, prediction.semantic, 1.5)


def test_semantic_overlay_of_coarse_ids_equals_the_overlay_of_their_resizing():
    """The node colours the network's ids and resizes the colours: the same bytes as resizing the ids first."""
    from pano_perception.models.mtpano.postprocess import resize_labels

    rng = np.random.default_rng(3)
    coarse = rng.integers(0, 150, (8, 16)).astype(np.uint8)
    for size in ((24, 48), (20, 40), (4, 8)):
        rgb = rng.integers(0, 256, size + (3,)).astype(np.uint8)
        out = np.empty_like(rgb)
        overlay = semantic_overlay(rgb, coarse, 0.6, out=out)
        assert overlay is out
        np.testing.assert_array_equal(overlay, semantic_overlay(rgb, resize_labels(coarse, size), 0.6))


@pytest.mark.parametrize("decimation", [1, 2, 3])
def test_cloud_is_depth_times_rays_on_the_kept_pixels(decimation):
    rgb, prediction = _prediction(12)
    cloud = depth_to_cloud(prediction.depth, rgb, decimation=decimation, min_range=1.0, max_range=45.0)
    rays = erp_rays(12, 24, numpy=True)[::decimation, ::decimation]
    depth = prediction.depth[::decimation, ::decimation]
    kept = (depth >= 1.0) & (depth <= 45.0)
    assert cloud.points.shape == depth.shape + (4,)
    np.testing.assert_allclose(cloud.points[..., :3][kept], (rays * depth[..., None])[kept], rtol=1e-6)
    assert np.isnan(cloud.points[..., :3][~kept]).all()
    np.testing.assert_array_equal(cloud.rgb, rgb[::decimation, ::decimation])
    with pytest.raises(ValueError, match="decimation"):
        depth_to_cloud(prediction.depth, rgb, decimation=0)
    fortran_depth = np.asfortranarray(prediction.depth)  # any memory order: the same cloud
    np.testing.assert_array_equal(depth_to_cloud(fortran_depth, rgb, decimation=decimation, min_range=1.0).points,
                                  depth_to_cloud(prediction.depth, rgb, decimation=decimation, min_range=1.0).points)


def test_dense_products_computes_only_the_wanted_topics():
    rgb, prediction = _prediction()
    products = dense_products(rgb, prediction, {"depth", "depth/points"}, DenseOptions())
    assert set(products) == {"depth", "depth/points"}
    assert isinstance(products["depth/points"], PointCloudArrays)
    assert set(dense_products(rgb, prediction, OUTPUT_TOPICS, DenseOptions())) == set(OUTPUT_TOPICS)
    with pytest.raises(ValueError, match="unknown output topics"):
        dense_products(rgb, prediction, {"depth/colour"}, DenseOptions())


def test_output_size_caps_the_width_and_keeps_2_to_1():
    assert output_size(1920, 3840, 0) == (1920, 3840)
    assert output_size(1920, 3840, 1920) == (960, 1920)
    assert output_size(1920, 3840, 1001) == (500, 1000)
    assert output_size(512, 1024, 2048) == (512, 1024)


def test_decode_reduction_keeps_the_pixels_products_and_network_take():
    from pano_perception.dense import decode_reduction

    assert decode_reduction(3840, 1920, 256) == 2
    assert decode_reduction(3840, 1024, 256) == 2  # 1/4 would give 960 < 1024 columns
    assert decode_reduction(3840, 960, 256) == 4
    assert decode_reduction(3840, 256, 256) == 8
    assert decode_reduction(3840, 256, 1024) == 2  # the official large model takes 1024 columns
    assert decode_reduction(3840, 0, 256) == 1  # products at the camera's size
    assert decode_reduction(1000, 120, 64) == 4  # 1000/8 = 125 columns: no whole 2:1 panorama


def test_predict_dense_at_a_capped_size_equals_the_predictor_at_that_size():
    from pathlib import Path

    from pano_perception.models.mtpano import MTPanoPredictor

    state = Path(__file__).resolve().parent / "data" / "mtpano" / "tiny_state_dict.safetensors"
    predictor = MTPanoPredictor("tiny-fixture", checkpoint=state)
    rgb = np.random.default_rng(3).integers(0, 256, (128, 256, 3), dtype=np.uint8)
    products = predict_dense(predictor, rgb, {"depth", "semantic/color"}, DenseOptions(max_width=128))
    expected = predictor.predict(rgb, (64, 128))
    np.testing.assert_array_equal(products["depth"], expected.depth)
    assert products["semantic/color"].shape == (64, 128, 3)
    with pytest.raises(ValueError, match="output size"):
        predictor.predict(rgb, (64, 100))


@pytest.mark.parametrize("size", [(32, 64), (24, 48), (20, 40)])
def test_shrink_rgb_averages_like_an_area_resize(size):
    """Half size (OpenCV's fast path), an integer 8/3 and a non-integer 3.2 ratio: within one grey level of
    OpenCV's exact area average on a smooth image; a constant image stays constant."""
    from pano_perception.dense import shrink_rgb

    rows, cols = np.mgrid[0:64, 0:128]
    smooth = np.stack([100 + 60 * np.sin(cols / 9.0), 120 + 50 * np.cos(rows / 7.0), 0 * rows + 30], -1)
    smooth = smooth.round().astype(np.uint8)
    shrunk = shrink_rgb(smooth, size)
    assert shrunk.shape == size + (3,) and shrunk.dtype == np.uint8 and shrunk.flags.c_contiguous
    area = cv2.resize(smooth, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    assert np.abs(shrunk.astype(int) - area).max() <= 2 and np.abs(shrunk.astype(int) - area).mean() < 0.5
    constant = np.full((64, 128, 3), (7, 200, 93), np.uint8)
    assert (shrink_rgb(constant, size) == constant[0, 0]).all()
    assert shrink_rgb(smooth, (64, 128)) is smooth


def test_shrink_rgb_averages_away_pixel_level_detail():
    """A one-pixel checkerboard (the highest frequency a camera has) shrunk by 3.75, as 3840 -> 1024: uniform
    grey, as an area average gives, not the aliased pattern that sampling without averaging would keep."""
    from pano_perception.dense import shrink_rgb

    rows, cols = np.mgrid[0:240, 0:480]
    checker = np.repeat((((rows + cols) % 2) * 255).astype(np.uint8)[..., None], 3, axis=-1)
    shrunk = shrink_rgb(checker, (64, 128)).astype(int)
    assert np.abs(shrunk - 127.5).max() <= 1.5


def test_capped_products_make_the_network_input_from_the_shrunk_image_when_it_is_wide_enough():
    from pathlib import Path

    from pano_perception.dense import product_images, shrink_rgb
    from pano_perception.models.mtpano import MTPanoPredictor

    state = Path(__file__).resolve().parent / "data" / "mtpano" / "tiny_state_dict.safetensors"
    predictor = MTPanoPredictor("tiny-fixture", checkpoint=state)  # a 256-wide network
    rgb = np.random.default_rng(5).integers(0, 256, (256, 512, 3), dtype=np.uint8)
    colours, source = product_images(rgb, (128, 256), 256)
    assert source is colours and colours.shape == (128, 256, 3)
    products = predict_dense(predictor, rgb, {"depth"}, DenseOptions(max_width=256))
    np.testing.assert_array_equal(products["depth"], predictor.predict(shrink_rgb(rgb, (128, 256))).depth)
    colours, source = product_images(rgb, (64, 128), 256)  # narrower than the network: input from the frame
    assert source is rgb and colours.shape == (64, 128, 3)


def test_products_written_into_destinations_equal_new_arrays():
    """What the node does with its message buffers: every image product lands in its destination, byte-equal to
    the products computed into new arrays."""
    from pathlib import Path

    from pano_perception.dense import IMAGE_ENCODINGS
    from pano_perception.models.mtpano import MTPanoPredictor
    from pano_perception.ros.conversions import ENCODINGS

    state = Path(__file__).resolve().parent / "data" / "mtpano" / "tiny_state_dict.safetensors"
    predictor = MTPanoPredictor("tiny-fixture", checkpoint=state)
    rgb = np.random.default_rng(4).integers(0, 256, (64, 128, 3), dtype=np.uint8)
    options = DenseOptions(max_width=0)
    expected = predict_dense(predictor, rgb, OUTPUT_TOPICS, options)
    out = {}
    for topic, encoding in IMAGE_ENCODINGS.items():
        dtype, channels = ENCODINGS[encoding]
        out[topic] = np.zeros((64, 128) + ((channels,) if channels > 1 else ()), dtype)
    out["depth/points"] = np.zeros(cloud_grid(64, 128, options.decimation) + (4,), np.float32)
    products = predict_dense(predictor, rgb, OUTPUT_TOPICS, options, out=out)
    for topic in IMAGE_ENCODINGS:
        assert products[topic] is out[topic], topic
        np.testing.assert_array_equal(out[topic], expected[topic])
    assert products["depth/points"].points is out["depth/points"]
    np.testing.assert_array_equal(out["depth/points"], expected["depth/points"].points)
    with pytest.raises(ValueError, match="destination"):
        normals_to_color(expected["normals"], out=np.zeros((64, 128, 3), np.float32))
    with pytest.raises(ValueError, match="destination"):
        depth_to_cloud(expected["depth"], rgb, decimation=2, out=np.zeros((32, 64, 3), np.float32))
