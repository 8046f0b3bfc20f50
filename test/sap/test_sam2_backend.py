"""The sam2 backend on CPU: tiny config, random weights, 128 px frames, 8 views. Plumbing, not accuracy."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pano_perception.models.sap import (
    BackendSpec,
    ObjectPrompts,
    PanoSegmenter,
    PointPrompt,
    ScanTrajectory,
    available_backends,
    create_backend,
)
from pano_perception.models.sap.sam2_backend import (
    Sam2Backend,
    Sam2CheckpointError,
    build_sam2_predictor,
    load_sam2_checkpoint,
    save_sam2_checkpoint,
)

SIZE = 128
FEW_VIEWS = ScanTrajectory(overlap=0.0, frame_size=SIZE)  # 8 views (holes at the equator do not matter here)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_sam2_predictor("tiny", None, "cpu", SIZE)


@pytest.fixture(scope="module")
def tiny_checkpoint(tiny, tmp_path_factory):
    path = tmp_path_factory.mktemp("sam2") / "sam2.1_hiera_tiny.pt"
    save_sam2_checkpoint(tiny, path)
    return path


def panorama(height: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:2 * height]
    return np.stack([x * 2 % 256, y * 4 % 256, (x // 8 + y // 8) % 2 * 255], -1).astype(np.uint8)


def test_registry_names_the_backends():
    assert {"sam2", "oracle"} <= set(available_backends())
    with pytest.raises(ValueError, match="unknown SAP backend 'nope'"):
        create_backend(BackendSpec("nope"))
    with pytest.raises(ValueError, match="precision"):
        create_backend(BackendSpec("sam2", precision="fp8"))
    with pytest.raises(ValueError, match="needs a checkpoint: download sam2.1_hiera_tiny.pt"):
        create_backend(BackendSpec("sam2", config="tiny"))
    with pytest.raises(ValueError, match="unknown sam2 config 'huge'"):
        create_backend(BackendSpec("sam2", config="huge", checkpoint="x.pt"))
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        Sam2Backend(object(), "cpu", "fp16")


def test_end_to_end_on_cpu_with_in_memory_frames(tiny):
    segmenter = PanoSegmenter(Sam2Backend(tiny), FEW_VIEWS)
    segmenter.set_image(panorama())
    objects = [ObjectPrompts(1, [PointPrompt.from_erp_pixel(40.0, 30.0, 64, 128),
                                 PointPrompt.from_erp_pixel(44.0, 30.0, 64, 128, positive=False)]),
               ObjectPrompts(2, [PointPrompt(np.array([0.0, 0.0, 1.0]))])]  # the north pole
    result = segmenter.segment(objects)
    assert result.instances.shape == (64, 128) and result.instances.dtype == np.uint16
    assert set(np.unique(result.instances).tolist()) <= {0, 1, 2}
    assert result.frames == 8 and result.timings["backend"] > 0
    again = segmenter.segment(objects)  # same frames and order: the backend is reset, not re-initialised
    np.testing.assert_array_equal(again.instances, result.instances)
    # Objects prompted on later frames attend to bfloat16-only memories before their first prompt (sam2 #308).
    everything = segmenter.segment_everything(points=4, batch=4)
    assert everything.frames == 8 and everything.instances.shape == (64, 128)


def test_prompts_reach_sam_in_its_pixel_convention(tiny):
    backend = Sam2Backend(tiny)
    frames = torch.zeros((2, 3, SIZE // 2, SIZE // 2), dtype=torch.uint8)  # resized up to SIZE inside
    backend.init(frames, FEW_VIEWS.views[:2])
    # Continuous pixel (x, y) of a half-size frame -> SAM's index-centred coordinates at the model size.
    np.testing.assert_allclose(backend._to_model_pixels(np.array([[0.5, 0.5], [32.0, 16.0]])).numpy(),
                               [[0.5, 0.5], [63.5, 31.5]])
    backend.add_prompt(1, 5, box=np.array([4.0, 4.0, 20.0, 30.0]))
    frame_ids = [(frame, ids, probs.shape) for frame, ids, probs in backend.propagate()]
    assert frame_ids == [(0, [5], (1, SIZE // 2, SIZE // 2)), (1, [5], (1, SIZE // 2, SIZE // 2))]
    with pytest.raises(ValueError, match="uint8"):
        backend.init(frames.float(), FEW_VIEWS.views[:2])


def test_other_video_sources_still_reach_sam2(tmp_path):
    """The in-memory adapter wraps sam2's loader; a JPEG folder still goes to the original."""
    import cv2
    import sam2.sam2_video_predictor as video_predictor

    Sam2Backend(object())  # installs the adapter
    cv2.imwrite(str(tmp_path / "0.jpg"), np.zeros((20, 30, 3), np.uint8))
    images, height, width = video_predictor.load_video_frames(str(tmp_path), 64, True)
    assert (height, width) == (20, 30) and tuple(images.shape) == (1, 3, 64, 64)


def test_checkpoint_round_trip_and_clear_errors(tiny, tiny_checkpoint, tmp_path):
    fresh = build_sam2_predictor("tiny", str(tiny_checkpoint), "cpu", SIZE)
    for key, value in tiny.state_dict().items():
        assert torch.equal(value, fresh.state_dict()[key]), key
    backend = create_backend(BackendSpec("sam2", "tiny", str(tiny_checkpoint), image_size=SIZE))
    assert backend.describe() == "sam2.1 tiny"
    with pytest.raises(Sam2CheckpointError, match="does not fit the sam2.1 'small' model.*looks like a sam2.1 "
                                                  "'tiny' checkpoint"):
        build_sam2_predictor("small", str(tiny_checkpoint), "cpu", SIZE)
    with pytest.raises(FileNotFoundError, match="sam2.1_hiera_large.pt"):
        load_sam2_checkpoint(tiny, tmp_path / "missing.pt", "large")
    torch.save({"model": {"image_encoder.trunk.pos_embed": torch.zeros(1)}}, tmp_path / "partial.pt")
    with pytest.raises(Sam2CheckpointError, match="missing .* unexpected|missing"):
        load_sam2_checkpoint(tiny, tmp_path / "partial.pt", "tiny")
    torch.save({"model": "not a state dict"}, tmp_path / "odd.pt")
    with pytest.raises(Sam2CheckpointError, match="no state dict"):
        load_sam2_checkpoint(tiny, tmp_path / "odd.pt", "tiny")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(Sam2CheckpointError):
        load_sam2_checkpoint(tiny, tmp_path / "text.pt", "tiny")
