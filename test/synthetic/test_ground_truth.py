"""Rendered ground truth is exact: points on the surfaces that were hit, analytic camera-facing normals,
labels of the objects hit, sky conventions, and ERP <-> perspective agreement through the geometry core."""
import math

import numpy as np
import pytest

from pano_perception.geometry import PerspectiveView, erp_rays, p2e
from pano_perception.labels import class_id
from pano_perception.synthetic import CameraPose, RenderOptions, render_erp, render_view, sample_camera_poses

HEIGHT = 96
FAST = RenderOptions(shadows=False)


def _residual_and_gradient(scene, points, instance):
    """|signed distance| to the nearest primitive of each pixel's object, and that primitive's SDF gradient."""
    residual = np.full(len(points), np.inf)
    gradient = np.zeros_like(points)
    for inst in np.unique(instance):
        rows = np.flatnonzero(instance == inst)
        for index in scene.object_by_instance(int(inst)).primitives:
            prim = scene.primitives[index]
            sdf = prim.signed_distance(points[rows])
            better = np.abs(sdf) < residual[rows]
            eps = 1e-6
            p = points[rows]
            grad = np.stack([(prim.signed_distance(p + eps * e) - prim.signed_distance(p - eps * e)) / (2 * eps)
                             for e in np.eye(3)], axis=-1)
            residual[rows[better]] = np.abs(sdf[better])
            gradient[rows[better]] = grad[better]
    return residual, gradient


def _check_surface_truth(scene, pose, rays_cam, depth, normals_cam, semantic, instance):
    """Shared checks on flat per-pixel arrays (camera-frame rays and normals)."""
    valid = np.isfinite(depth)
    assert valid.any()
    # Sky: NaN depth and normals, semantic 2, instance 0 - and nothing else.
    assert np.all(semantic[~valid] == class_id("sky")) and np.all(instance[~valid] == 0)
    assert np.all(np.isnan(normals_cam[~valid]))
    assert np.all(instance[valid] > 0) and np.all(np.isfinite(normals_cam[valid]))
    # depth x ray lands on the surface of the object that was hit.
    points = pose.position + (depth[valid, None].astype(np.float64) * rays_cam[valid]) @ pose.rotation.T
    residual, gradient = _residual_and_gradient(scene, points, instance[valid])
    assert np.all(residual <= 1e-5 * depth[valid] + 1e-6), residual.max()
    # Semantic ids are those of the objects hit.
    object_semantic = np.array([scene.object_by_instance(int(i)).semantic_id for i in instance[valid]])
    assert np.array_equal(semantic[valid], object_semantic)
    # Normals: unit length, facing the camera, equal to the analytic surface normal (SDF gradient) off edges.
    n = normals_cam[valid].astype(np.float64)
    np.testing.assert_allclose(np.linalg.norm(n, axis=-1), 1.0, atol=1e-5)
    rays = rays_cam[valid] / np.linalg.norm(rays_cam[valid], axis=-1, keepdims=True)
    facing = np.sum(n * rays, axis=-1)
    assert np.all(facing <= 1e-6) and np.mean(facing < 0) > 0.999
    grad_cam = gradient @ pose.rotation
    grad_cam /= np.linalg.norm(grad_cam, axis=-1, keepdims=True).clip(min=1e-12)
    assert np.mean(np.sum(n * grad_cam, axis=-1) > 0.999) > 0.98


def test_erp_ground_truth_is_exact(scene_and_pose):
    scene, pose = scene_and_pose
    frame = render_erp(scene, pose, HEIGHT, FAST)
    assert frame.rgb.shape == (HEIGHT, 2 * HEIGHT, 3) and frame.rgb.dtype == np.uint8
    assert frame.depth.dtype == np.float32 and frame.normals.shape == (HEIGHT, 2 * HEIGHT, 3)
    assert frame.semantic.dtype == np.uint8 and frame.instance.dtype == np.uint16 and frame.z_depth is None
    rays = erp_rays(HEIGHT, 2 * HEIGHT, numpy=True).reshape(-1, 3).astype(np.float64)
    _check_surface_truth(scene, pose, rays, frame.depth.ravel(), frame.normals.reshape(-1, 3),
                         frame.semantic.ravel(), frame.instance.ravel())


@pytest.mark.parametrize("view", [PerspectiveView.from_degrees(80, 60, 90.0, 30.0, 10.0, 0.0),
                                  PerspectiveView.from_degrees(64, 64, 60.0, -120.0, -35.0, 20.0)])
def test_perspective_ground_truth_is_exact(scene_and_pose, view):
    scene, pose = scene_and_pose
    frame = render_view(scene, pose, view, FAST)
    optical = view.pixel_rays()
    # z-depth and radial depth of the same pixel: radial = z * |r| with r = (x', y', 1).
    valid = np.isfinite(frame.depth)
    np.testing.assert_allclose(frame.depth[valid], frame.z_depth[valid] * np.linalg.norm(optical, axis=-1)[valid],
                               rtol=1e-6)
    rays_cam = (optical @ view.rotation.T).reshape(-1, 3)
    rays_cam /= np.linalg.norm(rays_cam, axis=-1, keepdims=True)
    normals_cam = frame.normals.reshape(-1, 3).astype(np.float64) @ view.rotation.T  # n_cam = R n_view
    _check_surface_truth(scene, pose, rays_cam, frame.depth.ravel(), normals_cam, frame.semantic.ravel(),
                         frame.instance.ravel())


def test_view_pixels_match_the_erp_through_the_geometry_core(scene_and_pose):
    """Instances of perspective views written back with p2e (nearest) agree with the ERP render."""
    scene, pose = scene_and_pose
    height = 128
    erp = render_erp(scene, pose, height, FAST)
    views = [PerspectiveView.from_degrees(96, 96, 90.0, yaw, pitch, roll)
             for yaw, pitch, roll in [(0, 0, 0), (90, 20, 10), (-150, -30, -15), (180, 60, 0)]]
    interior = np.ones_like(erp.instance, dtype=bool)  # ERP pixels whose 5x5 neighbourhood is one instance
    for dv in range(-2, 3):
        for du in range(-2, 3):
            shifted = np.roll(np.roll(erp.instance, du, axis=1), dv, axis=0)
            interior &= shifted == erp.instance
    interior[:2] = interior[-2:] = False
    for view in views:
        frame = render_view(scene, pose, view, FAST)
        back, valid = p2e(frame.instance.astype(np.int32)[None], [view], height, mode="nearest")
        mask = valid & interior
        assert mask.sum() > 500
        agreement = np.mean(back[mask] == erp.instance[mask])
        assert agreement >= 0.99, (view, agreement)
        # Radial depth agrees too where the surface is continuous.
        rad, _ = p2e(np.nan_to_num(frame.depth)[None], [view], height, mode="nearest")
        close = np.isclose(rad[mask], np.nan_to_num(erp.depth[mask]), rtol=0.05)
        assert np.mean(close) >= 0.99


def test_instances_are_stable_across_views_of_a_scene(indoor):
    scene, _ = indoor
    seen = {}
    for pose in sample_camera_poses(scene, 3, seed=7):
        frame = render_erp(scene, pose, 64, FAST)
        for inst in np.unique(frame.instance):
            labels = np.unique(frame.semantic[frame.instance == inst])
            assert len(labels) == 1
            seen.setdefault(int(inst), set()).add(int(labels[0]))
    assert all(len(v) == 1 for v in seen.values())
    assert all(scene.object_by_instance(i).semantic_id in s for i, s in seen.items())


def test_shading_options(indoor):
    scene, pose = indoor
    plain = render_erp(scene, pose, 48, FAST)
    shadowed = render_erp(scene, pose, 48)
    noisy = render_erp(scene, pose, 48, RenderOptions(shadows=False, noise_std=4.0, seed=1))
    jpeg = render_erp(scene, pose, 48, RenderOptions(shadows=False, jpeg_quality=30))
    assert shadowed.rgb.astype(int).sum() <= plain.rgb.astype(int).sum()  # shadows only remove light
    diff = noisy.rgb.astype(float) - plain.rgb
    assert 2.0 < diff.std() < 6.0 and abs(diff.mean()) < 1.0
    assert 0 < np.abs(jpeg.rgb.astype(float) - plain.rgb).mean() < 20
    for other in (shadowed, noisy, jpeg):  # ground truth does not depend on appearance options
        assert np.array_equal(other.instance, plain.instance)
        np.testing.assert_array_equal(other.depth, plain.depth)


def test_pose_conventions():
    """Yaw follows REP-103 (counter-clockwise seen from above); JSON round trip; quaternion w >= 0."""
    pose = CameraPose.from_ypr([0, 0, 0], math.pi / 2)
    np.testing.assert_allclose(pose.rotation @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    back = CameraPose.from_json(pose.to_json())
    np.testing.assert_allclose(back.rotation, pose.rotation, atol=1e-12)
    q = pose.quaternion_xyzw
    assert q[3] >= 0 and abs(np.linalg.norm(q) - 1) < 1e-12
