"""Exact-answer tests of the spherical geometry core (docs/CONVENTIONS.md)."""
import math

import numpy as np
import pytest
import torch

from pano_perception.geometry import (PerspectiveView, e2p, e2p_depth, e2p_normals, erp_connected_components,
                                      erp_depth_to_points, erp_pixel_to_lonlat, erp_rays, fov_from_centre_convention,
                                      lonlat_to_erp_pixel, lonlat_to_ray, normals_from_depth, p2e, p2e_depth,
                                      p2e_normals, ray_to_lonlat, rotate_erp_yaw)
from pano_perception.geometry import projection

ORIENTATIONS = [(0, 0, 0), (30, 20, 0), (-135, -40, 10), (180, 0, 0), (90, 90, 0), (-60, -90, 25), (179, 45, -30)]


def test_erp_pixel_centres_and_directions():
    height, width = 4, 8
    lon, lat = erp_pixel_to_lonlat(np.array([0.5, width / 2]), np.array([0.5, height / 2]), height, width)
    np.testing.assert_allclose(lon, [-math.pi + math.pi / 8, 0.0])
    np.testing.assert_allclose(lat, [math.pi / 2 - math.pi / 8, 0.0])
    # Straight ahead is +x, right of centre is -y (REP-103 y points left), up is +z.
    np.testing.assert_allclose(lonlat_to_ray(0.0, 0.0), [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(lonlat_to_ray(math.pi / 2, 0.0), [0, -1, 0], atol=1e-12)
    np.testing.assert_allclose(lonlat_to_ray(0.0, math.pi / 2), [0, 0, 1], atol=1e-12)
    x, y = lonlat_to_erp_pixel(*ray_to_lonlat(np.array([-1.0, 1e-9, 0.0])), height, width)
    assert x == pytest.approx(0.0, abs=1e-6) or x == pytest.approx(width, abs=1e-6)  # the seam is behind


def test_ray_round_trip_numpy_and_torch():
    rays = erp_rays(32, 64, numpy=True)
    np.testing.assert_allclose(np.linalg.norm(rays, axis=-1), 1.0, atol=1e-6)
    lon, lat = ray_to_lonlat(rays.astype(np.float64))
    x, y = lonlat_to_erp_pixel(lon, lat, 32, 64)
    np.testing.assert_allclose(x, np.broadcast_to(np.arange(64) + 0.5, (32, 64)), atol=1e-4)
    np.testing.assert_allclose(y, np.broadcast_to((np.arange(32) + 0.5)[:, None], (32, 64)), atol=1e-4)
    torch_rays = erp_rays(32, 64, dtype=torch.float64)
    np.testing.assert_allclose(torch_rays.numpy(), rays, atol=1e-6)


@pytest.mark.parametrize("yaw,pitch,roll", ORIENTATIONS)
def test_view_centre_looks_at_its_yaw_and_pitch(yaw, pitch, roll):
    view = PerspectiveView.from_degrees(64, 48, 90, yaw, pitch, roll)
    axis = view.rotation @ [0.0, 0.0, 1.0]
    np.testing.assert_allclose(axis, lonlat_to_ray(math.radians(yaw), math.radians(pitch)), atol=1e-12)
    # The centre of the sampled view shows the ERP pixel at (yaw, pitch): sample an ERP of its own rays.
    rays = erp_rays(512, 1024)
    views = e2p(rays.permute(2, 0, 1), [view], antialias=False)[0]  # (3, h, w)
    centre = views[:, 23:25, 31:33].mean(dim=(1, 2)).numpy()
    np.testing.assert_allclose(centre / np.linalg.norm(centre), axis, atol=2e-3)
    np.testing.assert_allclose(np.linalg.det(view.rotation), 1.0, atol=1e-12)


@pytest.mark.parametrize("yaw,pitch,roll", ORIENTATIONS)
def test_e2p_is_seam_and_pole_continuous(yaw, pitch, roll):
    """Sampling the ERP's own ray field gives every view pixel its exact ray, even across seam and poles."""
    view = PerspectiveView.from_degrees(40, 40, 100, yaw, pitch, roll)
    rays = erp_rays(256, 512)
    sampled = e2p(rays.permute(2, 0, 1), [view], antialias=False)[0].permute(1, 2, 0).numpy()
    expected = view.pixel_rays() @ view.rotation.T
    expected /= np.linalg.norm(expected, axis=-1, keepdims=True)
    sampled /= np.linalg.norm(sampled, axis=-1, keepdims=True)
    angle = np.degrees(np.arccos(np.clip(np.sum(sampled * expected, -1), -1, 1)))
    assert angle.max() < 0.2, f"max angular error {angle.max():.3f} deg (ERP pixel is 0.70 deg)"


def test_view_roll_turns_the_image_content_counter_clockwise():
    rolled = PerspectiveView.from_degrees(9, 9, 60, 0, 0, 90)
    # With roll = +90 deg the view's x axis (right) points down in the camera frame.
    np.testing.assert_allclose(rolled.rotation @ [1, 0, 0], [0, 0, -1], atol=1e-12)


def test_fov_convention_conversion():
    assert fov_from_centre_convention(512, math.radians(90)) > math.radians(90)
    view = PerspectiveView(512, 512, fov_from_centre_convention(512, math.radians(90)))
    # The centres of the edge pixels then sit at exactly +-45 degrees.
    x_edge = (0.5 - 256) / view.focal
    assert math.degrees(math.atan(-x_edge)) == pytest.approx(45.0, abs=1e-9)


def test_e2p_then_p2e_reproduces_the_erp_inside_the_valid_mask():
    """The 24-view SAP scan covers the sphere; bilinear there and back stays within interpolation error."""
    height = 128
    lon, lat = erp_pixel_to_lonlat(np.arange(2 * height)[None] + 0.5, np.arange(height)[:, None] + 0.5,
                                   height, 2 * height)
    lon, lat = np.broadcast_arrays(lon, lat)
    image = np.stack([np.cos(lon) * np.cos(lat), np.sin(2 * lon) * np.cos(lat), np.sin(3 * lat)], -1)
    image = image.astype(np.float32)  # smooth everywhere on the sphere, seam and poles included
    views = [PerspectiveView.from_degrees(96, 96, 90, yaw, pitch) for pitch in (-45, 0, 45)
             for yaw in range(-180, 180, 45)]
    back, valid = p2e(e2p(image, views), views, height)
    assert valid.all()
    error = np.abs(back - image)
    assert error.max() < 0.01 and error.mean() < 5e-4  # measured: 0.0062 and 2.8e-4
    nearest, valid = p2e(e2p(image, views, mode="nearest"), views, height, mode="nearest")
    assert valid.all() and np.abs(nearest - image).max() < 0.05  # one ERP pixel of gradient at most


def test_p2e_valid_mask_and_fill():
    view = PerspectiveView.from_degrees(32, 32, 60, 90, 0)
    data = np.ones((1, 32, 32), np.float32)
    erp, valid = p2e(data, [view], 64, fill=-1.0)
    lon, lat = erp_pixel_to_lonlat(np.arange(128)[None] + 0.5, np.arange(64)[:, None] + 0.5, 64, 128)
    lon, lat = np.broadcast_arrays(lon, lat)
    inside = (np.abs(lon - math.pi / 2) < math.radians(25)) & (np.abs(lat) < math.radians(25))
    outside = (np.abs(lon - math.pi / 2) > math.radians(35)) | (np.abs(lat) > math.radians(35))
    assert valid[inside].all() and not valid[outside].any()
    np.testing.assert_allclose(erp[valid], 1.0, rtol=1e-6)
    assert np.all(erp[~valid] == -1.0)


def test_p2e_max_fusion_and_center_choice():
    left = PerspectiveView.from_degrees(64, 64, 90, -20, 0)
    right = PerspectiveView.from_degrees(64, 64, 90, 20, 0)
    probs = np.stack([np.full((64, 64), 0.3, np.float32), np.full((64, 64), 0.8, np.float32)])
    fused, valid = p2e(probs, [left, right], 64, reduce="max")
    lon, _ = erp_pixel_to_lonlat(np.arange(128) + 0.5, np.zeros(128), 64, 128)
    row = fused[32]
    assert np.all(row[(lon > -0.2) & (lon < 0.2)] == pytest.approx(0.8))  # overlap: max
    assert np.all(row[(lon < -math.radians(50)) & (lon > -math.radians(60))] == pytest.approx(0.3))
    centred, _ = p2e(probs, [left, right], 64, reduce="center")
    assert centred[32, (lon < -0.05) & (lon > -0.3)] == pytest.approx(0.3)  # closer to the left view's axis
    assert centred[32, (lon > 0.05) & (lon < 0.3)] == pytest.approx(0.8)


def test_plane_depth_radial_and_z_agree_in_every_view():
    """A wall x = D: radial ERP depth, per-view z-depth and normals agree within 1e-4 relative."""
    distance = 3.0
    height = 1024
    rays = erp_rays(height, 2 * height, numpy=True).astype(np.float64)
    with np.errstate(divide="ignore"):
        radial = np.where(rays[..., 0] > 0.05, distance / rays[..., 0], np.nan).astype(np.float32)
    normals = np.zeros(rays.shape, np.float32)
    normals[...] = [-1.0, 0.0, 0.0]
    views = [PerspectiveView.from_degrees(48, 48, 60, yaw, pitch, roll)
             for yaw, pitch, roll in [(0, 0, 0), (25, 10, 0), (-30, -20, 15), (10, 30, -40)]]
    z_depth = e2p_depth(radial, views, mode="bilinear")
    for view, z in zip(views, z_depth):
        rays_cam = view.pixel_rays() @ view.rotation.T  # z = 1 in the view
        expected = distance / rays_cam[..., 0]  # points = z * ray_view, so x_cam = z * (R ray)_x = D
        np.testing.assert_allclose(z, expected, rtol=1e-4)
    view_normals = e2p_normals(normals, views)
    for view, n in zip(views, view_normals):
        np.testing.assert_allclose(n, np.broadcast_to(view.rotation.T @ [-1, 0, 0], n.shape), atol=1e-5)
    # Back to the ERP: radial depth and the same camera-frame normal from every view.
    back, valid = p2e_depth(z_depth, views, height // 4, mode="bilinear")
    small_rays = erp_rays(height // 4, height // 2, numpy=True).astype(np.float64)
    np.testing.assert_allclose(back[valid], (distance / small_rays[..., 0])[valid], rtol=1e-4)
    back_normals, valid_n = p2e_normals(view_normals, views, height // 4)
    np.testing.assert_allclose(back_normals[valid_n], np.broadcast_to([-1, 0, 0], back_normals[valid_n].shape),
                               atol=1e-5)


def test_fronto_parallel_plane_is_exact():
    """Constant z-depth in a view is a plane normal to its axis; P2E gives D / cos(alpha) exactly."""
    view = PerspectiveView.from_degrees(64, 64, 80, 120, -35, 5)
    erp, valid = p2e_depth(np.full((1, 64, 64), 2.5, np.float32), [view], 128)
    rays = erp_rays(128, 256, numpy=True).astype(np.float64)
    cos_alpha = rays @ (view.rotation @ [0, 0, 1])
    np.testing.assert_allclose(erp[valid], (2.5 / cos_alpha)[valid], rtol=1e-6)
    points = erp_depth_to_points(np.where(valid, erp, np.nan))
    np.testing.assert_allclose((points[valid] @ (view.rotation @ [0, 0, 1])), 2.5, rtol=1e-5)


def test_normals_from_depth_of_a_floor():
    height = 256
    rays = erp_rays(height, 2 * height, numpy=True)
    depth = np.where(rays[..., 2] < -0.2, -1.5 / rays[..., 2], np.nan).astype(np.float32)
    normals = normals_from_depth(depth)
    inner = rays[..., 2] < -0.3
    np.testing.assert_allclose(normals[inner], np.broadcast_to([0, 0, 1], normals[inner].shape), atol=1e-3)


def test_seam_and_pole_connected_components():
    mask = np.zeros((32, 64), bool)
    mask[10:14, 0:3] = True
    mask[10:14, 61:64] = True  # straddles the seam
    mask[20:22, 30:32] = True  # separate
    labels, count = erp_connected_components(mask)
    assert count == 2
    assert labels[11, 0] == labels[11, 63] != labels[20, 30]
    pole = np.zeros((32, 64), bool)
    pole[0:3, 5:8] = True
    pole[0:3, 37:40] = True  # the same cap seen from the other side of the north pole
    assert erp_connected_components(pole)[1] == 1
    empty_labels, empty_count = erp_connected_components(np.zeros((8, 16), bool))
    assert empty_count == 0 and not empty_labels.any()


def test_rotate_erp_yaw():
    erp = np.arange(8 * 16, dtype=np.float32).reshape(8, 16)
    quarter = rotate_erp_yaw(erp, math.pi / 2)
    np.testing.assert_array_equal(quarter[:, 8], erp[:, 12])  # new centre shows lon = 90 deg
    np.testing.assert_array_equal(rotate_erp_yaw(erp, 2 * math.pi), erp)
    half_px = rotate_erp_yaw(erp, math.pi / 16)
    np.testing.assert_allclose(half_px[:, 0], 0.5 * (erp[:, 0] + erp[:, 1]))


def test_labels_use_nearest_and_keep_dtype():
    labels = np.random.default_rng(1).integers(0, 150, (64, 128)).astype(np.uint8)
    views = [PerspectiveView.from_degrees(16, 16, 90, yaw, 0) for yaw in (0, 180)]
    out = e2p(labels, views, mode="nearest")
    assert out.dtype == np.uint8 and out.shape == (2, 16, 16)
    assert set(np.unique(out)) <= set(np.unique(labels))
    back, valid = p2e(out, views, 64, mode="nearest")
    assert back.dtype == np.uint8 and valid.any()


def test_antialias_when_shrinking():
    erp = np.zeros((256, 512), np.float32)
    erp[:, ::2] = 1.0  # stripes one ERP pixel wide
    view = PerspectiveView.from_degrees(32, 32, 90, 0, 0)  # one view pixel covers ~11 ERP pixels
    smooth = e2p(erp, [view])[0]
    aliased = e2p(erp, [view], antialias=False)[0]
    assert abs(smooth.mean() - 0.5) < 0.05 and smooth.std() < 0.05
    assert aliased.std() > 0.3


def test_grids_are_cached_and_batches_work():
    projection.clear_grid_cache()
    views = [PerspectiveView.from_degrees(8, 8, 90, yaw, 0) for yaw in (0, 90)]
    erp = torch.rand(2, 3, 16, 32)
    first = e2p(erp, views)
    assert first.shape == (2, 2, 3, 8, 8)
    assert len(projection._E2P_GRIDS) == 1
    e2p(erp, views)
    assert len(projection._E2P_GRIDS) == 1
    np.testing.assert_allclose(e2p(erp[1], views).numpy(), first[1].numpy())
    back, valid = p2e(first, views, 16)
    assert back.shape == (2, 3, 16, 32) and valid.shape == (2, 16, 32)


def test_bad_inputs_raise_clear_errors():
    view = PerspectiveView.from_degrees(8, 8, 90)
    with pytest.raises(ValueError, match="2:1"):
        e2p(np.zeros((10, 10), np.float32), [view])
    with pytest.raises(ValueError, match="field of view"):
        PerspectiveView.from_degrees(8, 8, 180)
    with pytest.raises(ValueError, match="same size"):
        e2p(np.zeros((8, 16), np.float32), [view, PerspectiveView.from_degrees(4, 4, 90)])
    with pytest.raises(ValueError, match="mode"):
        e2p(np.zeros((8, 16), np.float32), [view], mode="cubic")
    with pytest.raises(ValueError, match="2 view images for 1 views"):
        p2e(np.zeros((2, 8, 8), np.float32), [view], 8)


@pytest.mark.parametrize("yaw,pitch,roll", [(0, 0, 0), (40, 20, 0), (-100, -30, 0), (170, 60, 0), (30, 10, 20)])
def test_agrees_with_py360convert_e2p(yaw, pitch, roll):
    """Same view from py360convert once conventions are aligned.

    py360convert spans the FoV with the edge pixel *centres* and computes in float32; its yaw (u_deg), pitch
    (v_deg) and in-plane rotation have our signs. Tolerance: on a smooth image (|gradient| <= ~1 per radian)
    the outputs agree to 1e-3 (measured 2.9e-4, float32 rounding); on per-pixel noise, where any sub-pixel
    coordinate difference shows, the mean difference stays below 0.005 (measured 0.0033).
    """
    py360convert = pytest.importorskip("py360convert")
    height, w, h = 256, 64, 48
    lon, lat = erp_pixel_to_lonlat(np.arange(2 * height)[None] + 0.5, np.arange(height)[:, None] + 0.5,
                                   height, 2 * height)
    lon, lat = np.broadcast_arrays(lon, lat)
    smooth = np.stack([np.cos(lon) * np.cos(lat), np.sin(2 * lon) * np.cos(lat), np.sin(3 * lat)], -1)
    smooth = (0.5 * smooth + 0.5).astype(np.float32)
    noise = np.random.default_rng(0).random((height, 2 * height, 3)).astype(np.float32)
    vfov_centres = 2 * math.degrees(math.atan((h - 1) / (w - 1)))
    view = PerspectiveView(w, h, fov_from_centre_convention(w, math.radians(90)), math.radians(yaw),
                           math.radians(pitch), math.radians(roll))
    for image, max_tol, mean_tol in ((smooth, 1e-3, 2e-4), (noise, 0.05, 0.005)):
        ref = py360convert.e2p(image, (90, vfov_centres), yaw, pitch, (h, w), in_rot_deg=roll, mode="bilinear")
        ours = e2p(image, [view], antialias=False)[0]
        assert np.abs(ours - ref).max() < max_tol
        assert np.abs(ours - ref).mean() < mean_tol


def test_scan_covers_the_poles_at_4k_and_polar_windows_stay_small():
    """With 90-degree views at pitch +-45 the poles sit on the views' edges: with edge_margin=0 (mask fusion)
    every pixel of a 4096x2048 panorama is covered, and the polar views' cached windows are split into bands."""
    views = [PerspectiveView.from_degrees(64, 64, 90, yaw, pitch) for pitch in (45, 0, -45)
             for yaw in range(-180, 180, 45)]
    projection.clear_grid_cache()
    _, valid = p2e(torch.ones(24, 1, 64, 64), views, 2048, reduce="max", edge_margin=0.0)
    assert bool(valid.all())
    windows = next(iter(projection._P2E_WINDOWS.values()))
    polar_pixels = sum(w.valid.numel() for w in windows if views[w.view_index].pitch != 0)
    full_width = 16 * (2048 // 2) * 4096  # what one full-width window per polar view down to the equator would hold
    assert polar_pixels < 0.6 * full_width  # measured 0.52
    projection.clear_grid_cache()
