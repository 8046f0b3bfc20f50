"""MTPanoPredictor and the official pre/post-processing in our conventions (tiny-fixture network, CPU)."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from pano_perception.geometry import erp_rays
from pano_perception.models.mtpano.postprocess import (
    SKY_ID,
    fix_panorama_seam,
    normalise_images,
    official_normals_to_ours,
    postprocess,
    resize_labels,
    resize_valid,
)
from pano_perception.models.mtpano.predictor import MTPanoPrediction, MTPanoPredictor

STATE_DICT = Path(__file__).resolve().parents[1] / "data" / "mtpano" / "tiny_state_dict.safetensors"


@pytest.fixture(scope="module")
def predictor():
    return MTPanoPredictor("tiny-fixture", checkpoint=STATE_DICT)


def _image(height: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, 2 * height, 3), dtype=np.uint8)


@pytest.mark.parametrize("height", [64, 128, 200])
def test_prediction_has_input_resolution_dtypes_and_unit_normals(predictor, height):
    prediction = predictor.predict(_image(height))
    assert isinstance(prediction, MTPanoPrediction)
    assert prediction.semantic.shape == (height, 2 * height) and prediction.semantic.dtype == np.uint8
    assert prediction.depth.shape == (height, 2 * height) and prediction.depth.dtype == np.float32
    assert prediction.normals.shape == (height, 2 * height, 3) and prediction.normals.dtype == np.float32
    assert prediction.semantic.max() < 13
    finite = np.isfinite(prediction.normals).all(axis=-1)
    assert finite.any()
    np.testing.assert_allclose(np.linalg.norm(prediction.normals[finite], axis=-1), 1, atol=1e-5)
    assert (prediction.depth[np.isfinite(prediction.depth)] > 0).all()


def test_sky_and_invalid_pixels_are_nan():
    predictor = MTPanoPredictor("tiny-fixture", checkpoint=STATE_DICT)
    with torch.no_grad():  # the fixture's random weights rarely say "sky": favour it to get about half sky
        predictor.network.heads["semseg"].head[4].bias[SKY_ID] += 7.6
    prediction = predictor.predict(_image(128, seed=1))
    sky = prediction.semantic == SKY_ID
    assert 0.2 < sky.mean() < 0.8
    assert np.isnan(prediction.depth[sky]).all()
    assert np.isnan(prediction.normals[sky]).all()


def test_batch_prediction_equals_single_predictions(predictor):
    images = [_image(64, seed) for seed in (2, 3)]
    batch = predictor.predict_batch(np.stack(images))
    for image, batched in zip(images, batch):
        single = predictor.predict(image)
        np.testing.assert_array_equal(single.semantic, batched.semantic)
        np.testing.assert_allclose(single.depth, batched.depth, atol=1e-5, equal_nan=True)


def test_raw_outputs_are_the_network_outputs_at_model_resolution(predictor):
    raw = predictor.raw_outputs(_image(128), with_aux=True)
    assert raw["semseg"].shape == (1, 13, 128, 256) and raw["semseg"].dtype == torch.float32
    assert raw["depth"].shape == (1, 1, 128, 256) and raw["normals"].shape == (1, 3, 128, 256)
    assert raw["ext_preds"]["point"].shape == (1, 3, 128, 256)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((64, 100, 3), np.uint8), "width = 2 x height"),
    (np.zeros((64, 128, 3), np.float32), "uint8"),
    (np.zeros((64, 128), np.uint8), r"\[H, W, 3\]"),
    (np.zeros((64, 128, 4), np.uint8), r"\[H, W, 3\]"),
    ([[0]], "numpy array"),
])
def test_invalid_images_raise_clear_value_errors(predictor, bad, message):
    with pytest.raises(ValueError, match=message):
        predictor.predict(bad)


def test_device_precision_and_backend_are_validated():
    with pytest.raises(ValueError, match="fp16 runs on CUDA only"):
        MTPanoPredictor("tiny-fixture", checkpoint=STATE_DICT, precision="fp16")
    with pytest.raises(ValueError, match="precision"):
        MTPanoPredictor("tiny-fixture", checkpoint=STATE_DICT, precision="int8")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            MTPanoPredictor("tiny-fixture", checkpoint=STATE_DICT, device="cuda")
    with pytest.raises(ValueError, match="onnx_path"):
        MTPanoPredictor("tiny-fixture", backend="onnxruntime")


def test_bf16_on_cpu_runs_close_to_fp32():
    fp32 = MTPanoPredictor("tiny-fixture", checkpoint=STATE_DICT).raw_outputs(_image(128))
    bf16 = MTPanoPredictor("tiny-fixture", checkpoint=STATE_DICT, precision="bf16").raw_outputs(_image(128))
    assert bf16["depth"].dtype == torch.float32
    scale = fp32["depth"].abs().max()
    assert (bf16["depth"] - fp32["depth"]).abs().max() < 0.1 * scale


def test_no_checkpoint_warns_about_random_weights():
    with pytest.warns(UserWarning, match="random weights"):
        MTPanoPredictor("micro-cpu")


def test_preprocessing_matches_pil_bilinear_within_one_grey_level():
    image = _image(150, seed=4)
    ours = normalise_images(torch.from_numpy(image)[None], (128, 256))
    pil = np.asarray(Image.fromarray(image).resize((256, 128), Image.BILINEAR), dtype=np.float32)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    reference = torch.from_numpy(((pil / 255 - mean) / std).transpose(2, 0, 1)[None]).float()
    assert (ours - reference).abs().max() <= 1 / 255 / 0.224 + 1e-5


def test_preprocessing_at_model_size_is_exactly_the_fixture_normalisation():
    image = _image(128, seed=5)
    expected = (torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
                - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(
        1, 3, 1, 1)
    torch.testing.assert_close(normalise_images(torch.from_numpy(image)[None], (128, 256)), expected)


def _official_seam_fix(values: np.ndarray, valid: np.ndarray, unit: bool) -> np.ndarray:
    """Reference re-statement of the release's fix_panorama_seam (margin 2) on one [H, W, C] image."""
    out = values.copy()
    width = values.shape[1]
    for row in range(values.shape[0]):
        left, right = values[row, width - 3], values[row, 2]
        for column, weight in zip([width - 2, width - 1, 0, 1], [0.2, 0.4, 0.6, 0.8]):
            if valid[row, width - 3] and valid[row, 2]:
                blended = (1 - weight) * left + weight * right
                out[row, column] = blended / np.linalg.norm(blended) if unit else blended
            else:
                out[row, column] = 0
    return out


@pytest.mark.parametrize("unit", [False, True])
def test_seam_fix_matches_the_release_definition(unit):
    rng = np.random.default_rng(6)
    values = rng.normal(size=(6, 16, 3 if unit else 1)).astype(np.float32)
    valid = np.ones((6, 16), bool)
    valid[2, 13] = False  # left anchor invalid: row 2 seam columns become 0
    valid[4, 2] = False  # right anchor invalid
    expected = _official_seam_fix(values, valid, unit)
    got = fix_panorama_seam(torch.from_numpy(values).permute(2, 0, 1)[None], torch.from_numpy(valid)[None],
                            unit_vectors=unit)
    np.testing.assert_allclose(got[0].permute(1, 2, 0).numpy(), expected, atol=1e-6)
    assert (expected[2, [14, 15, 0, 1]] == 0).all()


def test_official_normals_become_ours_towards_the_camera():
    """An official normal pointing away from the camera along the viewing ray becomes minus our ray."""
    height, width = 32, 64
    u, v = np.meshgrid(np.linspace(-1, 1, width), np.linspace(-1, 1, height))
    theta, phi = np.pi * u, np.pi / 2 * v
    s_space = np.stack([np.cos(phi) * np.sin(theta), np.sin(phi), -np.cos(phi) * np.cos(theta)])
    official_ray = s_space[[2, 1, 0]]  # N-space (X, Y, Z) = (s_z, s_y, s_x), release inference.py
    ours = official_normals_to_ours(torch.from_numpy(official_ray)[None].float())[0].permute(1, 2, 0).numpy()
    angle = np.arccos(np.clip((ours * -erp_rays(height, width, numpy=True)).sum(-1), -1, 1))
    assert angle.max() < 2 * np.pi / width  # the release's grid is offset from ours by up to half a pixel
    np.testing.assert_allclose(ours[height // 2, width // 2], [-1, 0, 0], atol=0.1)  # wall ahead faces back


def test_postprocess_masks_sky_and_resizes_without_bleeding():
    logits = torch.zeros(1, 13, 8, 16)
    logits[:, 0] = 1
    logits[:, SKY_ID, :3] = 2  # top three rows are sky
    depth = torch.full((1, 1, 8, 16), 4.0)
    normals = torch.zeros(1, 3, 8, 16)
    normals[:, 1] = -2.0  # official (0, -1, 0): away from the camera, upwards -> ours (0, 0, -1)
    [products] = postprocess({"semseg": logits, "depth": depth, "normals": normals}, (32, 64))
    sky = products.semantic == SKY_ID
    assert sky[:12].all() and not sky[12:].any()
    assert np.isnan(products.depth[sky]).all() and (products.depth[~sky] == 4.0).all()
    assert np.isnan(products.normals[sky]).all()
    np.testing.assert_allclose(products.normals[~sky], np.broadcast_to([0.0, 0.0, -1.0], (int((~sky).sum()), 3)),
                               atol=1e-6)


@pytest.mark.parametrize("size", [(64, 128), (37, 74), (8, 16), (5, 10)])
def test_resize_valid_never_blends_invalid_pixels_in(size):
    """A linear ramp with holes holding huge values: every valid output is within the ramp's range (no bleeding),
    invalid outputs are NaN exactly where the nearest input pixel is invalid, and an all-valid ramp is resized
    like OpenCV's bilinear / area resize of the ramp itself."""
    rng = np.random.default_rng(7)
    ramp = np.add.outer(np.arange(16.0), np.arange(32.0)).astype(np.float32)
    valid = rng.random((16, 32)) > 0.3
    holes = np.where(valid, ramp, 1e6).astype(np.float32)
    resized = resize_valid(holes, valid, size)
    expected_invalid = resize_labels((~valid).astype(np.uint8), size).astype(bool)
    assert resized.shape == size and resized.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(resized), expected_invalid)
    assert np.nanmin(resized) >= 0 and np.nanmax(resized) <= ramp.max()
    full = resize_valid(ramp, np.ones_like(valid), size)
    mode = cv2.INTER_LINEAR if size[0] >= 16 else cv2.INTER_AREA
    np.testing.assert_allclose(full, cv2.resize(ramp, size[::-1], interpolation=mode), rtol=1e-6)


@pytest.mark.parametrize("size", [(64, 128), (8, 16)])
def test_resize_valid_keeps_normals_unit_length(size):
    rng = np.random.default_rng(8)
    normals = rng.normal(size=(16, 32, 3)).astype(np.float32)
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    valid = rng.random((16, 32)) > 0.2
    valid[:4] = False  # a sky: rows of zero vectors with no valid neighbour
    resized = resize_valid(np.where(valid[..., None], normals, 0).astype(np.float32), valid, size,
                           unit_vectors=True)
    finite = np.isfinite(resized).all(axis=-1)
    np.testing.assert_array_equal(~finite, np.isnan(resized).all(axis=-1))  # a pixel is all NaN or all finite
    np.testing.assert_allclose(np.linalg.norm(resized[finite], axis=-1), 1, atol=1e-5)
    assert not finite[: size[0] // 4].any() and finite.mean() > 0.45

@pytest.mark.parametrize("size", [(16, 32), (64, 128), (8, 16)])  # same size, enlarging, shrinking
@pytest.mark.parametrize("channels", [0, 3])
def test_resize_into_a_destination_writes_the_same_values_there(size, channels):
    """``out`` (e.g. a message buffer) receives exactly what a new array would hold; a wrong one is refused
    (OpenCV would silently allocate another array)."""
    rng = np.random.default_rng(9)
    shape = (16, 32) + ((channels,) if channels else ())
    values = rng.normal(size=shape).astype(np.float32)
    valid = rng.random((16, 32)) > 0.2
    unit = channels == 3
    out = np.full(size + shape[2:], 7.0, np.float32)
    result = resize_valid(values, valid, size, unit_vectors=unit, out=out)
    assert result is out
    np.testing.assert_array_equal(out, resize_valid(values, valid, size, unit_vectors=unit))
    labels = rng.integers(0, 150, (16, 32)).astype(np.uint8)
    label_out = np.zeros(size, np.uint8)
    assert resize_labels(labels, size, out=label_out) is label_out
    np.testing.assert_array_equal(label_out, resize_labels(labels, size))
    with pytest.raises(ValueError, match="destination"):
        resize_valid(values, valid, size, unit_vectors=unit, out=np.zeros(size + (2,), np.float32))
    with pytest.raises(ValueError, match="destination"):
        resize_labels(labels, size, out=np.zeros(size, np.float32))


@pytest.mark.parametrize("size", [(16, 32), (64, 128), (8, 16)])
def test_resize_accepts_strided_values(size):
    """Strided views (one channel of an interleaved array, a transposed one) give what their contiguous copies
    give, NaN included."""
    rng = np.random.default_rng(10)
    valid = rng.random((16, 32)) > 0.2
    for strided in (rng.normal(size=(16, 32, 2)).astype(np.float32)[..., 0],
                    rng.normal(size=(32, 16)).astype(np.float32).T):
        assert not strided.flags.c_contiguous
        np.testing.assert_array_equal(resize_valid(strided, valid, size),
                                      resize_valid(np.ascontiguousarray(strided), valid, size))


def test_semantic_labels_are_the_same_argmax_in_either_memory_order():
    """The CPU's numpy path (channels-last logits, as the network emits them) and torch's path (any other
    layout) give the same ids, the first class winning ties."""
    import torch

    from pano_perception.models.mtpano.postprocess import semantic_labels

    logits = torch.randn(2, 150, 8, 16)
    logits[0, 3, 0, 0] = logits[0, 7, 0, 0] = 50.0  # a tie: class 3
    channels_last = logits.contiguous(memory_format=torch.channels_last)
    expected = logits.argmax(dim=1)
    for layout in (logits, channels_last):
        labels = semantic_labels(layout)
        assert labels.shape == (2, 8, 16) and torch.equal(labels, expected)
    assert semantic_labels(channels_last)[0, 0, 0] == 3
