"""The committed sample (test/data/synthetic) is small, readable, and in step with the generator.

If a generator change makes these fail, regenerate the sample with the command in docs/SYNTHETIC.md.
"""
import json
from pathlib import Path

import numpy as np

from pano_perception.synthetic import CameraPose, camera_trajectory, generate_scene, render_erp, sample_camera_poses
from pano_perception.bagio import message_to_numpy
from pano_perception.synthetic.bag import read_bag
from pano_perception.synthetic.dataset import SyntheticPanoramaDataset

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "synthetic"
REGENERATE = "the sample is stale: regenerate it with the command in docs/SYNTHETIC.md"


def test_sample_is_small_and_complete():
    total = sum(p.stat().st_size for p in SAMPLE.rglob("*") if p.is_file())
    assert total <= 10 * 2**20
    dataset = SyntheticPanoramaDataset(SAMPLE / "dataset")
    assert len(dataset) == 4
    item = dataset[3]
    assert item["rgb"].shape == (3, 256, 512) and item["scene"] == "scene_000008"
    kinds = {json.loads((SAMPLE / "dataset" / s / "scene.json").read_text())["kind"]
             for s in ("scene_000007", "scene_000008")}
    assert kinds == {"indoor", "outdoor"}


def test_sample_matches_the_generator():
    for scene_name in ("scene_000007", "scene_000008"):
        meta = json.loads((SAMPLE / "dataset" / scene_name / "scene.json").read_text())
        scene = generate_scene(meta["seed"])
        views = meta.pop("views")
        assert meta == json.loads(json.dumps(scene.to_json())), REGENERATE
        for view, pose in zip(views, sample_camera_poses(scene, len(views))):
            stored = CameraPose.from_json(view["pose"])
            np.testing.assert_allclose(stored.position, pose.position, atol=1e-9, err_msg=REGENERATE)
            np.testing.assert_allclose(stored.rotation, pose.rotation, atol=1e-9, err_msg=REGENERATE)
    item = SyntheticPanoramaDataset(SAMPLE / "dataset")[0]
    scene = generate_scene(7)
    frame = render_erp(scene, sample_camera_poses(scene, 1)[0], 256)
    assert np.mean(item["instance"].numpy() == frame.instance) > 0.999, REGENERATE
    np.testing.assert_allclose(item["depth"][0].numpy(), frame.depth, rtol=1e-5, err_msg=REGENERATE)


def test_sample_bag():
    messages = read_bag(SAMPLE / "bag")
    images = [msg for topic, _, msg in messages if topic == "/camera/image"]
    poses = [msg.pose.position for topic, _, msg in messages if topic == "/ground_truth/pose"]
    assert len(images) == 5 and message_to_numpy(images[0]).shape == (128, 256, 3)
    expected = camera_trajectory(generate_scene(7), 5)
    np.testing.assert_allclose([[p.x, p.y, p.z] for p in poses], [p.position for p in expected], atol=1e-9,
                               err_msg=REGENERATE)
