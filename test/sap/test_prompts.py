"""Prompt projection (SAP eq. 4): exact pixels, visibility, seam-crossing boxes, Fibonacci prompts, sessions."""
from __future__ import annotations

import math

import numpy as np
import pytest

from pano_perception.geometry import PerspectiveView, e2p
from pano_perception.models.sap import (
    BoxPrompt,
    ObjectPrompts,
    PointPrompt,
    PromptSession,
    ScanTrajectory,
    erp_pixel_to_ray,
    fibonacci_rays,
    project_box,
    project_rays,
    ray_to_erp_pixel,
    spherical_area,
)

H, W = 64, 128


def test_erp_pixel_round_trip_and_validation():
    for x, y in ((0.0, 0.0), (W / 2, H / 2), (127.9, 63.9), (3.25, 40.5)):
        ray = erp_pixel_to_ray(x, y, H, W)
        assert np.linalg.norm(ray) == pytest.approx(1.0)
        assert ray_to_erp_pixel(ray, H, W) == pytest.approx((x, y), abs=1e-9)
    np.testing.assert_allclose(erp_pixel_to_ray(W / 2, H / 2, H, W), [1, 0, 0], atol=1e-12)  # straight ahead
    for bad, message in (((W, 3.0), "outside"), ((-0.1, 3.0), "outside"), ((3.0, H), "outside"),
                         ((math.nan, 3.0), "not finite")):
        with pytest.raises(ValueError, match=message):
            erp_pixel_to_ray(*bad, H, W)
    with pytest.raises(ValueError, match="non-zero"):
        PointPrompt(np.zeros(3))


def test_view_centre_projects_to_the_frame_centre_and_matches_e2p():
    views = ScanTrajectory(frame_size=64).views
    axes = np.stack([v.rotation[:, 2] for v in views])
    pixels, visible = project_rays(axes, views)
    for i in range(len(views)):
        assert visible[i, i]
        np.testing.assert_allclose(pixels[i, i], [32.0, 32.0], atol=1e-9)
    # A one-pixel ERP marker lands, through E2P, where its projected prompt says.
    erp = np.zeros((256, 512), np.float32)
    u, v = 300, 100
    erp[v, u] = 1.0
    ray = erp_pixel_to_ray(u + 0.5, v + 0.5, 256, 512)
    view = PerspectiveView.from_degrees(512, 512, 60, yaw_deg=40, pitch_deg=15)
    (x, y), seen = project_rays(ray[None], [view])[0][0, 0], project_rays(ray[None], [view])[1][0, 0]
    assert seen
    rendered = e2p(erp, [view], mode="nearest")[0]
    ys, xs = np.nonzero(rendered)
    assert abs(xs.mean() + 0.5 - x) < 1.0 and abs(ys.mean() + 0.5 - y) < 1.0


def test_visibility_needs_in_front_and_inside():
    view = PerspectiveView.from_degrees(100, 100, 90)
    rays = np.array([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [1.0, -0.999, 0.0], [1.0, -1.01, 0.0], [0.0, 1.0, 0.0]])
    pixels, visible = project_rays(rays, [view])
    assert visible[0].tolist() == [True, False, True, False, False]
    np.testing.assert_allclose(pixels[0, 2], [50 + 49.95, 50.0], atol=1e-9)  # x = f * 0.999 + cx, f = 50


def test_box_across_the_seam_projects_into_the_seam_view():
    box = BoxPrompt.from_erp_pixels(120.0, 24.0, 8.0, 40.0, H, W)  # x1 < x0: crosses the seam
    assert box.lon_span == pytest.approx(16 / W * 2 * math.pi)
    np.testing.assert_allclose(box.centre_ray, erp_pixel_to_ray(0.0, 32.0, H, W), atol=1e-12)
    seam = PerspectiveView.from_degrees(256, 256, 90, yaw_deg=-180)
    front = PerspectiveView.from_degrees(256, 256, 90, yaw_deg=0)
    boxes, visible = project_box(box, [seam, front])
    assert visible.tolist() == [True, False]
    x0, y0, x1, y1 = boxes[0]
    assert x0 < 128 < x1 and y0 < 128 < y1
    half_width = 128 * math.tan(8 / W * 2 * math.pi)  # f = 128 px, 8 ERP columns each side
    assert (x1 - x0) / 2 == pytest.approx(half_width, rel=0.01)
    with pytest.raises(ValueError, match="below"):
        BoxPrompt.from_erp_pixels(10, 30, 20, 20, H, W)


def test_fibonacci_rays_are_unit_and_spread_evenly():
    rays = fibonacci_rays(200)
    np.testing.assert_allclose(np.linalg.norm(rays, axis=1), 1.0, atol=1e-12)
    assert abs(rays.mean(axis=0)).max() < 0.02
    assert (rays[:, 2] > 0).sum() == 100
    nearest = np.sort(rays @ rays.T, axis=1)[:, -2]
    assert np.degrees(np.arccos(nearest)).max() < 2.0 * np.degrees(np.arccos(nearest)).min()
    assert spherical_area(np.ones((H, W))) == pytest.approx(1.0)


def test_session_accumulates_undoes_and_resets():
    session = PromptSession()
    click = PointPrompt(np.array([1.0, 0.0, 0.0]))
    assert session.add_point(click) == 1
    session.add_point(PointPrompt(np.array([1.0, 0.1, 0.0]), positive=False))
    assert session.new_object() == 2
    session.add_point(PointPrompt(np.array([0.0, 1.0, 0.0])))
    box_id = session.add_box(BoxPrompt(0.0, 0.5, 0.3, 0.1))
    assert box_id == 3 and session.current_id == 3
    assert [len(o.points) for o in session.objects] == [2, 1, 0]
    assert session.undo() and [o.object_id for o in session.objects] == [1, 2]  # the box object goes at once
    assert session.current_id == 2
    assert session.undo() and session.objects[1].is_empty
    assert session.undo() and len(session.objects) == 1 and session.current_id == 1
    assert session.undo() and session.has_prompts  # the negative click
    assert session.undo() and not session.has_prompts
    assert session.undo() and not session.objects and not session.undo()
    session.add_point(click)
    session.reset()
    assert not session.objects and session.add_point(click) == 1
    assert ObjectPrompts(5, [PointPrompt(np.array([0, 0, 1.0]), positive=False)]).is_empty
