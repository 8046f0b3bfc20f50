"""Scan-video clips: trajectory windows, prompt sampling, item layout, determinism, the external folder format."""
import json

import cv2
import numpy as np
import pytest

from pano_perception.models.sap import ScanTrajectory
from training.sap.config import DataConfig
from training.sap.data import PanoramaCollection, PanoramaSource, ScanClipDataset, sample_box, sample_points


def _config(root, **overrides) -> DataConfig:
    values = {"panoramas": (f"synthetic:{root}",), "frame_size": 32, "objects_per_clip": 3, "loss_frames": 4,
              "min_object_area": 2e-3}
    values.update(overrides)
    return DataConfig(**values)


def test_every_window_of_the_doubled_trajectory_shows_every_view_once(tiny_panoramas):
    dataset = ScanClipDataset(_config(tiny_panoramas))
    trajectory = dataset.trajectory
    assert len(trajectory) == 24
    for start in range(len(trajectory)):
        window = dataset.window(start)
        assert sorted(window) == list(range(len(trajectory)))
        np.testing.assert_array_equal(window, trajectory.window(start))
    short = ScanClipDataset(_config(tiny_panoramas, clip_length=5))
    np.testing.assert_array_equal(short.window(22), [22, 23, 0, 1, 2])


def test_points_start_at_the_deepest_pixel_and_corrections_fall_inside_or_just_outside():
    mask = np.zeros((40, 40), bool)
    mask[10:31, 5:26] = True  # 21 x 21, deepest pixel (20, 15)
    rng = np.random.default_rng(0)
    firsts = set()
    for _ in range(50):
        points, labels = sample_points(mask, 3, rng)
        assert labels[0] == 1 and points.shape == (3, 2)
        x, y = points[0]
        firsts.add((x, y))
        assert mask[int(y), int(x)]
        for (x, y), label in zip(points[1:], labels[1:]):
            assert mask[int(y), int(x)] == bool(label)
            if not label:  # negatives in a band around the object
                assert 2 <= x <= 29 and 7 <= y <= 34
    assert (15.5, 20.5) in firsts and len(firsts) > 1  # the deepest pixel half of the time, else deep ones


def test_box_is_the_jittered_bounding_box():
    mask = np.zeros((40, 40), bool)
    mask[10:20, 5:25] = True
    box = sample_box(mask, np.random.default_rng(1), jitter=0.05)
    np.testing.assert_allclose(box, [5, 10, 25, 20], atol=0.05 * 20 + 1e-9)
    np.testing.assert_array_equal(sample_box(mask, np.random.default_rng(1), jitter=0.0), [5, 10, 25, 20])


def test_clip_layout_prompts_and_determinism(tiny_panoramas):
    dataset = ScanClipDataset(_config(tiny_panoramas, box_probability=0.3))
    item = dataset[(0, 5)]
    frames, masks = item["frames"], item["masks"]
    assert frames.shape == (24, 3, 32, 32) and str(frames.dtype) == "torch.uint8"
    assert masks.ndim == 4 and masks.shape[1:] == (24, 32, 32) and 1 <= len(masks) <= 3
    assert len(item["prompts"]) == len(masks)
    for object_masks, prompts in zip(masks.numpy(), item["prompts"]):
        best = int(np.argmax(object_masks.sum(axis=(1, 2))))
        assert best in prompts  # sampled on the frame where the object is most visible
        for frame, (points, labels, box) in prompts.items():
            assert item["loss_frames"][frame]
            if box is not None:
                assert frame == best
            else:
                positives = points[labels == 1]
                assert len(positives)  # a frame is prompted only where a positive click is visible
                if frame == best:
                    x, y = positives[0]
                    assert object_masks[frame, int(y), int(x)]
    again = dataset[(0, 5)]
    assert all(np.array_equal(item[k].numpy(), again[k].numpy()) for k in ("frames", "views", "masks", "loss_frames"))
    other = dataset[(0, 6)]
    assert not np.array_equal(item["frames"].numpy(), other["frames"].numpy())


def test_visible_prompts_agree_with_the_ray_of_the_click(tiny_panoramas):
    dataset = ScanClipDataset(_config(tiny_panoramas, box_probability=0.0, points_probabilities=(1.0,)))
    views = ScanTrajectory(90.0, 0.5, None, 32).views
    for sample in range(6):
        item = dataset[(sample % 2, sample)]
        order = item["views"].tolist()
        for prompts in item["prompts"]:
            rays = []
            for frame, (points, _, _) in prompts.items():
                view = views[order[frame]]
                x, y = points[0]
                local = np.array([(x - 16) / view.focal, (y - 16) / view.focal, 1.0])
                ray = view.rotation @ local
                rays.append(ray / np.linalg.norm(ray))
            for ray in rays[1:]:  # the same click seen from several frames (clamped at frame edges)
                assert np.degrees(np.arccos(np.clip(ray @ rays[0], -1, 1))) < 3.0


def test_external_folder_format(tmp_path):
    (tmp_path / "rgb").mkdir()
    (tmp_path / "instance").mkdir()
    rgb = np.zeros((16, 32, 3), np.uint8)
    rgb[:, :, 0] = 200
    ids = np.zeros((16, 32), np.uint16)
    ids[4:8, 10:20] = 7
    ids[10:, :] = 3
    cv2.imwrite(str(tmp_path / "rgb" / "a.jpg"), rgb[..., ::-1])
    cv2.imwrite(str(tmp_path / "instance" / "a.png"), ids)
    (tmp_path / "stuff.json").write_text(json.dumps({"a": [3]}))
    source = PanoramaSource(f"folder:{tmp_path}")
    panorama = source[0]
    assert len(source) == 1 and panorama.rgb.shape == (16, 32, 3) and panorama.rgb[0, 0, 0] > 150
    np.testing.assert_array_equal(panorama.instance, ids)
    assert panorama.stuff == {3}
    assert len(PanoramaCollection([f"folder:{tmp_path}", f"folder:{tmp_path}"])) == 2
    with pytest.raises(ValueError, match="synthetic:PATH or folder:PATH"):
        PanoramaSource(str(tmp_path))


def test_perspective_clips_mix_in(tiny_panoramas, tmp_path):
    sequence = tmp_path / "video_a"
    (sequence / "rgb").mkdir(parents=True)
    (sequence / "instance").mkdir()
    for k in range(3):
        ids = np.zeros((24, 40), np.uint16)
        ids[5:15, 10 + k:25 + k] = 4  # an object moving right
        cv2.imwrite(str(sequence / "rgb" / f"{k:05d}.png"), np.full((24, 40, 3), 60 * k, np.uint8))
        cv2.imwrite(str(sequence / "instance" / f"{k:05d}.png"), ids)
    dataset = ScanClipDataset(_config(tiny_panoramas, perspective=(str(tmp_path),), perspective_ratio=1.0,
                                      clip_length=2))
    item = dataset[(0, 0)]
    assert item["frames"].shape == (2, 3, 32, 32) and (item["views"] == -1).all()
    assert item["masks"].shape == (1, 2, 32, 32) and item["masks"].any()
    assert not item["teacher_forcing"]
