"""Shared small scenes and renders for the synthetic-world tests (kept tiny: 2 CPU cores)."""
import pytest

from pano_perception.synthetic import generate_scene, sample_camera_poses

INDOOR_SEED = 3  # a two-box (L- or T-shaped) living room with a sofa, shelf, books, lamps
OUTDOOR_SEED = 10  # a street with buildings, trees, cars


@pytest.fixture(scope="session")
def indoor():
    scene = generate_scene(INDOOR_SEED)
    assert scene.kind == "indoor"
    return scene, sample_camera_poses(scene, 1)[0]


@pytest.fixture(scope="session")
def outdoor():
    scene = generate_scene(OUTDOOR_SEED)
    assert scene.kind == "outdoor"
    return scene, sample_camera_poses(scene, 1)[0]


@pytest.fixture(params=["indoor", "outdoor"])
def scene_and_pose(request):
    return request.getfixturevalue(request.param)
