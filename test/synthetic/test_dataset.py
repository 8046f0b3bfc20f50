"""Dataset writer -> reader round trip, encodings, and the torch Dataset."""
import json

import numpy as np
import pytest
import torch

from pano_perception.synthetic import CameraPose, generate_scene, render_erp
from pano_perception.synthetic.dataset import (SyntheticPanoramaDataset, decode_depth_mm, decode_normals,
                                               encode_depth_mm, encode_normals, read_frame, write_dataset)


def test_encodings_round_trip():
    depth = np.array([[np.nan, 0.0004, 1.23456], [65.5349, 65.536, 3.0]], dtype=np.float32)
    mm = encode_depth_mm(depth)
    assert mm.dtype == np.uint16 and list(mm.ravel()) == [0, 0, 1235, 65535, 0, 3000]
    back = decode_depth_mm(mm)
    assert np.isnan(back[0, 0]) and abs(back[0, 2] - 1.23456) <= 0.0005
    rng = np.random.default_rng(0)
    n = rng.normal(size=(4, 5, 3))
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    n[0, 0] = np.nan
    decoded = decode_normals(encode_normals(n))
    assert np.all(np.isnan(decoded[0, 0]))
    np.testing.assert_allclose(decoded[1:], n[1:], atol=1e-4)


@pytest.mark.parametrize("jpeg", [None, 95])
def test_dataset_round_trip(tmp_path, jpeg):
    index = write_dataset(tmp_path, 2, 24, seed=8, views_per_scene=2, jpeg_quality=jpeg)
    meta = json.loads(index.read_text())
    assert meta["frames"] == [["scene_000008", "000"], ["scene_000008", "001"], ["scene_000009", "000"],
                              ["scene_000009", "001"]]
    dataset = SyntheticPanoramaDataset(tmp_path)
    png_depth = SyntheticPanoramaDataset(tmp_path, depth_from="png")
    assert len(dataset) == 4
    for i, (scene_name, name) in enumerate(meta["frames"]):
        scene_meta = json.loads((tmp_path / scene_name / "scene.json").read_text())
        view = scene_meta["views"][int(name)]
        pose = CameraPose.from_json(view["pose"])
        scene = generate_scene(scene_meta["seed"])
        frame = render_erp(scene, pose, 24)
        item = dataset[i]
        assert item["scene"] == scene_name and item["name"] == name
        rgb = (item["rgb"] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        if jpeg is None:
            assert np.array_equal(rgb, frame.rgb)
        else:
            assert np.abs(rgb.astype(int) - frame.rgb).mean() < 8  # JPEG of a tiny, detailed image
        np.testing.assert_array_equal(item["depth"][0].numpy(), frame.depth)  # .npy: exact, NaN where sky
        mm = png_depth[i]["depth"][0].numpy()
        finite = np.isfinite(frame.depth) & (frame.depth < 65.5)
        assert np.array_equal(np.isfinite(mm), finite)
        assert np.nanmax(np.abs(mm[finite] - frame.depth[finite])) <= 0.0005 + 1e-6
        normals = item["normals"].permute(1, 2, 0).numpy()
        assert np.array_equal(np.isnan(normals), np.isnan(frame.normals))
        np.testing.assert_allclose(normals[np.isfinite(normals)], frame.normals[np.isfinite(normals)], atol=1e-4)
        assert np.array_equal(item["semantic"].numpy(), frame.semantic)
        assert np.array_equal(item["instance"].numpy(), frame.instance)
        assert item["semantic"].dtype == torch.int64 and item["pose"].shape == (4, 4)
        np.testing.assert_allclose(item["pose"].numpy(), pose.matrix(), atol=1e-12)
        instances = {o["instance_id"]: o for o in scene_meta["objects"]}
        for inst in np.unique(frame.instance[frame.instance > 0]):
            assert instances[int(inst)]["semantic_id"] in np.unique(frame.semantic[frame.instance == inst])
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=2)))
    assert batch["rgb"].shape == (2, 3, 24, 48) and batch["depth"].shape == (2, 1, 24, 48)


def test_reader_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        SyntheticPanoramaDataset(tmp_path)
    write_dataset(tmp_path, 1, 8, seed=1)
    with pytest.raises(ValueError):
        read_frame(tmp_path / "scene_000001", "000", depth_from="exr")
