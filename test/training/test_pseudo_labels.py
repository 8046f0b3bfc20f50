"""Pseudo-labels: oracle crops re-projected to the ERP agree exactly with the ERP ground truth rendered directly."""
import math

import numpy as np
import pytest
from scipy import ndimage

from pano_perception.geometry import PerspectiveView, erp_rays
from pano_perception.labels import IGNORE_ID, class_id
from training.mtpano.datasets import SyntheticPanoramas
from training.mtpano.pseudo_labels import (
    CropSampling,
    PseudoLabelCache,
    circular_span,
    generate_cache,
    panorama_rng,
    reproject_crop,
    smooth_depth_mask,
    smooth_normals_mask,
)
from training.mtpano.teachers import OracleTeacher

HEIGHT = 64
SKY_ID = class_id("sky")


def _on_one_plane(labels, index: int, view, erp_depth: np.ndarray) -> np.ndarray:
    """ERP pixels whose bilinear support in the view (the 2x2 view pixels around the projected ray) lies on one
    plane with the surface the ERP ray hits: equal normals, coplanar points. There the inverse-depth interpolation
    and the rotation are exact."""
    erp_height = erp_depth.shape[0]
    rays = erp_rays(erp_height, 2 * erp_height, numpy=True).astype(np.float64) @ view.rotation
    x, y, inside = view.project(rays)
    col = np.clip(np.floor(np.where(inside, x, 0) - 0.5).astype(int), 0, view.width - 2)
    row = np.clip(np.floor(np.where(inside, y, 0) - 0.5).astype(int), 0, view.height - 2)
    points = labels.z_depth[index][..., None] * view.pixel_rays()
    normals = labels.normals[index]
    n0, p0 = normals[row, col], points[row, col]
    with np.errstate(invalid="ignore"):
        ok = inside & np.isfinite(p0).all(-1) & (np.abs(np.sum((erp_depth[..., None] * rays - p0) * n0, -1))
                                                  < 1e-5 * p0[..., 2])
    for dy in (0, 1):
        for dx in (0, 1):
            n, p = normals[row + dy, col + dx], points[row + dy, col + dx]
            with np.errstate(invalid="ignore"):
                ok &= (np.sum(n * n0, -1) > 1 - 1e-6) & (np.abs(np.sum((p - p0) * n0, -1)) < 1e-5 * p0[..., 2])
    return ok


@pytest.mark.parametrize("seed", [3, 10], ids=["indoor", "outdoor"])
def test_reprojected_oracle_labels_equal_the_erp_ground_truth(seed):
    sample = SyntheticPanoramas([seed], HEIGHT)[0]
    views = CropSampling(num_crops=6, crop_size=128).sample_views(np.random.default_rng(seed))
    labels = OracleTeacher().predict(None, views, sample.context)
    uniform = ndimage.maximum_filter(sample.semantic, 3, mode="wrap") == ndimage.minimum_filter(
        sample.semantic, 3, mode="wrap")
    checked = dropped = surfaces = 0
    for index, view in enumerate(views):
        patch = reproject_crop(labels, index, view, HEIGHT)
        planar = _on_one_plane(labels, index, view, sample.depth)
        depth_ok = np.isfinite(patch.depth) & planar
        normals_ok = np.isfinite(patch.normals).all(-1) & planar
        labelled = (patch.semantic != IGNORE_ID) & uniform & planar
        # eq. 5 (z-depth -> radial) and eq. 6 (R n) are exact on planes; nearest labels exact inside regions
        np.testing.assert_allclose(patch.depth[depth_ok], sample.depth[depth_ok], rtol=2e-5)
        np.testing.assert_allclose(patch.normals[normals_ok], sample.normals[normals_ok], atol=2e-5)
        np.testing.assert_array_equal(patch.semantic[labelled], sample.semantic[labelled])
        # depth exists only on labelled surfaces; the edge guard drops few of them
        surface = (patch.semantic != IGNORE_ID) & (patch.semantic != SKY_ID)
        assert not (np.isfinite(patch.depth) & ~surface).any()
        dropped += (surface & ~np.isfinite(patch.depth)).sum()
        surfaces += surface.sum()
        checked += depth_ok.sum()
    assert dropped < 0.25 * surfaces  # a band about one view pixel wide along edges
    assert checked > 1000


def test_edge_masks_keep_slanted_planes_and_drop_edges():
    view = PerspectiveView.from_degrees(48, 32, 100.0)
    rays = view.pixel_rays()
    # a floor 1.5 m below seen at grazing angles: inverse z-depth is affine in the pixel coordinates
    normal = np.array([0.0, -1.0, 0.0])  # optical frame: y down, so the floor's normal points up (-y)
    z = 1.5 / np.maximum(rays[..., 1], 1e-3)
    z[rays[..., 1] <= 0.02] = np.nan  # above the horizon: sky
    floor = smooth_depth_mask(z)
    below = rays[..., 1] > 0.05
    assert floor[below].all()
    # a box in front of it: the rows/columns at its outline fail, its interior and the floor pass
    z_box = z.copy()
    z_box[20:30, 10:20] = 1.0
    mask = smooth_depth_mask(z_box)
    assert not mask[20, 15] and not mask[29, 15] and not mask[25, 10] and not mask[25, 19]
    assert mask[24:26, 12:18].all() and mask[below & (np.arange(48)[None, :] > 25)].all()
    normals = np.broadcast_to(normal, rays.shape).copy()
    normals[:, 30:] = (1.0, 0.0, 0.0)
    crease = smooth_normals_mask(normals)
    assert not crease[:, 29:31].any() and crease[:, :29].all() and crease[:, 31:].all()


def test_crop_sampling_follows_the_paper_ranges():
    views = CropSampling(num_crops=2000, crop_size=8).sample_views(np.random.default_rng(0))
    fov = np.degrees([v.hfov for v in views])
    pitch = np.degrees([v.pitch for v in views])
    yaw = np.degrees([v.yaw for v in views])
    assert 80 <= fov.min() and fov.max() <= 120 and abs(fov.mean() - 100) < 1.5
    assert -90 <= pitch.min() and pitch.max() <= 90 and abs(pitch.mean()) < 4
    assert -180 <= yaw.min() and yaw.max() <= 180 and np.histogram(yaw, 4)[0].min() > 400


def test_circular_span_wraps_the_seam():
    occupied = np.zeros(16, bool)
    occupied[[14, 15, 0, 1]] = True
    assert circular_span(occupied) == (14, 4)
    occupied[:] = True
    assert circular_span(occupied) == (0, 16)
    assert circular_span(np.zeros(4, bool)) == (0, 0)


def test_cache_round_trip_and_resume(tiny_cache, tmp_path):
    cache = PseudoLabelCache(tiny_cache)
    assert len(cache) == 2 and cache.num_crops(0) == 6
    counts = cache.class_counts(150)
    assert counts[0] > 0 and counts.sum() == sum((cache.crop(i, k).semantic != IGNORE_ID).sum()
                                                 for i in range(2) for k in range(6))
    assert cache.key(0) == "synthetic/scene_000003/000" and cache.rgb(0).shape == (128, 256, 3)
    sample = SyntheticPanoramas([3], 128)[0]
    views = CropSampling(num_crops=6, crop_size=64).sample_views(panorama_rng(0, 0))
    labels = OracleTeacher().predict(None, views, sample.context)
    for index in (0, 5):
        stored = cache.crop(0, index)
        patch = reproject_crop(labels, index, views[index], 128)
        np.testing.assert_array_equal(stored.semantic, patch.semantic)
        np.testing.assert_allclose(stored.depth, patch.depth, rtol=1e-3)  # float16 on disk
        np.testing.assert_allclose(stored.normals, patch.normals, atol=1e-3)
        # metric point map P = D r, stored as int16 millimetres
        points_ok = np.isfinite(stored.points).all(-1)
        np.testing.assert_allclose(np.linalg.norm(stored.points[points_ok], axis=-1), patch.depth[points_ok],
                                   atol=2e-3)
        assert (points_ok == (np.isfinite(patch.depth) & (np.abs(patch.depth) < 32))).mean() > 0.999

    # a crash loses at most the shard in progress: remove one shard and rerun, only it is rebuilt
    shard = tiny_cache / "shard_00001"
    mtime_other = (tiny_cache / "shard_00000" / "rgb.npy").stat().st_mtime_ns
    for f in shard.iterdir():
        f.unlink()
    shard.rmdir()
    with pytest.raises(ValueError, match="incomplete"):
        PseudoLabelCache(tiny_cache)
    generate_cache(tiny_cache, SyntheticPanoramas([3, 10], 128), OracleTeacher(), erp_height=128,
                   sampling=CropSampling(num_crops=6, crop_size=64), shard_size=1, seed=0, progress=False)
    assert (tiny_cache / "shard_00000" / "rgb.npy").stat().st_mtime_ns == mtime_other
    assert len(PseudoLabelCache(tiny_cache)) == 2
    with pytest.raises(ValueError, match="other parameters"):
        generate_cache(tiny_cache, SyntheticPanoramas([3, 10], 128), OracleTeacher(), erp_height=128,
                       sampling=CropSampling(num_crops=5, crop_size=64), shard_size=1, progress=False)


def test_sharding_over_ranks_gives_the_same_cache(tmp_path):
    source = SyntheticPanoramas([3, 10, 11], 32)
    sampling = CropSampling(num_crops=2, crop_size=16)
    single = generate_cache(tmp_path / "one", source, OracleTeacher(), erp_height=32, sampling=sampling,
                            shard_size=1, progress=False)
    for rank in (1, 0):
        generate_cache(tmp_path / "two", source, OracleTeacher(), erp_height=32, sampling=sampling, shard_size=1,
                       rank=rank, world_size=2, progress=False)
    a, b = PseudoLabelCache(single), PseudoLabelCache(tmp_path / "two")
    for index in range(3):
        np.testing.assert_array_equal(a.crop(index, 1).depth, b.crop(index, 1).depth)
    assert math.isclose(float(np.nanmean(a.crop(2, 0).depth)), float(np.nanmean(b.crop(2, 0).depth)))
