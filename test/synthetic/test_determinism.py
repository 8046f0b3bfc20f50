"""Same seed, same bytes: scenes, renders, trajectories and written files."""
import hashlib
import itertools
import json

import numpy as np

from pano_perception.synthetic import (RenderOptions, camera_trajectory, generate_scene, render_erp,
                                       sample_camera_poses, scene_kind)
from pano_perception.synthetic.dataset import write_dataset


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _render_digest(seed: int) -> str:
    scene = generate_scene(seed)
    pose = sample_camera_poses(scene, 1)[0]
    f = render_erp(scene, pose, 32, RenderOptions(noise_std=2.0, jpeg_quality=80, seed=5))
    return _digest(f.rgb, f.depth, f.normals, f.semantic, f.instance, pose.position, pose.rotation)


def test_same_seed_same_scene_and_render():
    for seed in (4, 11):
        assert json.dumps(generate_scene(seed).to_json()) == json.dumps(generate_scene(seed).to_json())
        assert _render_digest(seed) == _render_digest(seed)
    assert _render_digest(4) != _render_digest(5)
    assert json.dumps(generate_scene(4).to_json()) != json.dumps(generate_scene(5).to_json())


def test_kinds_and_variety():
    kinds = [scene_kind(seed) for seed in range(40)]
    assert 4 <= kinds.count("outdoor") <= 20
    assert generate_scene(4, "outdoor").kind == "outdoor" and generate_scene(10, "indoor").kind == "indoor"
    shapes = {len(generate_scene(seed, "indoor").primitives[0].boxes) for seed in range(12)}
    assert shapes == {1, 2}  # rectangular and L/T-shaped rooms


def test_trajectory_is_deterministic_and_smooth():
    scene = generate_scene(3)
    a, b = camera_trajectory(scene, 12), camera_trajectory(scene, 12)
    assert _digest(*[p.position for p in a], *[p.rotation for p in a]) == \
        _digest(*[p.position for p in b], *[p.rotation for p in b])
    steps = np.linalg.norm(np.diff([p.position for p in a], axis=0), axis=1)
    assert np.all(steps < 0.15) and np.all(steps > 0.01)  # walking speed at 10 Hz, no jumps
    turns = [np.degrees(np.arccos(np.clip((np.trace(p.rotation.T @ q.rotation) - 1) / 2, -1, 1)))
             for p, q in itertools.pairwise(a)]
    assert max(turns) < 15.0
    assert np.all(scene.clearance(np.array([p.position for p in a])) >= 0.45)


def test_written_files_are_byte_identical(tmp_path):
    for run in ("a", "b"):
        write_dataset(tmp_path / run, 2, 16, seed=9, views_per_scene=2)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) == 1 + 2 + 4 * 6  # index, scene.json x 2, 6 files per frame
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
