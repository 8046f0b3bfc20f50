"""The culled ray caster equals brute force; primitives intersect where their surfaces are."""
import math

import numpy as np
import pytest

from pano_perception.geometry import rot_x, rot_y, rot_z
from pano_perception.synthetic.primitives import Box, Cylinder, GroundRect, RoomShell, Sphere
from pano_perception.synthetic.raycast import cast_rays, sample_surfaces


def _random_primitives(rng, count=60):
    prims = [RoomShell([[[0, 0, 0], [6, 4, 2.7]], [[2, 3.5, 0], [4.5, 7, 2.7]]], [[0, 1, 0]] * 12)]
    for i in range(count):
        centre = rng.uniform([0.3, 0.3, 0.1], [5.7, 6.5, 2.5])
        rotation = rot_z(rng.uniform(-math.pi, math.pi)) @ rot_x(rng.uniform(-1, 1)) @ rot_y(rng.uniform(-1, 1))
        kind = i % 3
        if kind == 0:
            prims.append(Box(centre, rng.uniform(0.02, 0.4, 3), [[15, i + 2, 0]], rotation))
        elif kind == 1:
            prims.append(Cylinder(centre, rng.uniform(0.02, 0.3), rng.uniform(0.05, 0.4), [[15, i + 2, 0]], rotation))
        else:
            prims.append(Sphere(centre, rng.uniform(0.02, 0.3), [[15, i + 2, 0]]))
    return prims


def _brute_force(prims, origin, dirs):
    t_best = np.full(dirs.shape[1], np.inf)
    prim_best = np.full(dirs.shape[1], -1)
    for i, prim in enumerate(prims):
        t, _ = prim.intersect(origin, dirs)
        closer = t < t_best
        t_best[closer], prim_best[closer] = t[closer], i
    return t_best, prim_best


def _unit(v):
    return v / np.linalg.norm(v, axis=0)


@pytest.mark.parametrize("bundle", ["sphere", "cone", "distant"])
def test_culled_casting_equals_brute_force(bundle):
    rng = np.random.default_rng(0)
    prims = _random_primitives(rng)
    origin = np.array([1.5, 1.2, 1.4])
    if bundle == "sphere":  # all directions
        dirs = _unit(rng.normal(size=(3, 20000)))
    elif bundle == "cone":  # a perspective-like bundle
        dirs = _unit(np.array([1.0, 0.3, -0.1])[:, None] + 0.5 * rng.uniform(-1, 1, size=(3, 20000)))
    else:  # rays from far away towards points in the room (the sun's shadow rays)
        origin = np.array([300.0, -200.0, 400.0])
        dirs = _unit(rng.uniform([0, 0, 0], [6, 7, 2.7], size=(20000, 3)).T - origin[:, None])
    hits = cast_rays(prims, origin, dirs)
    t, prim = _brute_force(prims, origin, dirs)
    assert np.array_equal(hits.primitive, np.where(np.isfinite(t), prim, -1))
    np.testing.assert_allclose(hits.t, t, rtol=1e-9)  # BLAS rounding differs between subsets


def test_max_t_keeps_only_nearer_hits():
    rng = np.random.default_rng(1)
    prims = _random_primitives(rng, 20)
    origin = np.array([1.0, 1.0, 1.0])
    dirs = _unit(rng.normal(size=(3, 5000)))
    full = cast_rays(prims, origin, dirs)
    limit = np.full(5000, 1.0)
    limited = cast_rays(prims, origin, dirs, max_t=limit)
    assert np.array_equal(limited.mask, full.t < 1.0)
    np.testing.assert_array_equal(limited.t[limited.mask], full.t[limited.mask])


def test_surface_samples_lie_on_primitives_and_face_the_origin():
    rng = np.random.default_rng(2)
    prims = _random_primitives(rng, 30) + [GroundRect(-0.5, (-50, 50), (-50, 50), [-1.0, 1.0],
                                                      [[9, 99, 0], [6, 98, 0], [9, 97, 0]])]
    origin = np.array([3.0, 2.0, 1.2])
    dirs = _unit(rng.normal(size=(3, 20000)))
    hits = cast_rays(prims, origin, dirs)
    surf = sample_surfaces(prims, origin, dirs, hits)
    assert hits.mask.all()
    for i, prim in enumerate(prims):
        rows = hits.primitive == i
        if rows.any():
            sdf = prim.signed_distance(surf.points[:, rows].T)
            assert np.all(np.abs(sdf) <= 1e-9 * hits.t[rows] + 1e-12), (prim.kind, np.abs(sdf).max())
            assert np.array_equal(surf.instance[rows], prim.labels[hits.face[rows], 1])
    np.testing.assert_allclose(np.linalg.norm(surf.normals, axis=0), 1.0, atol=1e-12)
    assert np.all((surf.normals * dirs).sum(axis=0) <= 0)


def test_room_shell_faces_and_ground_strips():
    shell = RoomShell([[[0, 0, 0], [4, 3, 2.5]], [[1, 2.5, 0], [3, 5, 2.5]]], np.arange(36).reshape(12, 3))
    origin = np.array([2.0, 1.0, 1.0])
    dirs = _unit(np.array([[1.0, 0, 0], [0, 0, 1], [0, 0, -1], [0, 1.0, 0], [-1, 0, 0]]).T)
    t, face = shell.intersect(origin, dirs)
    np.testing.assert_allclose(t, [2.0, 1.5, 1.0, 4.0, 2.0])  # +y leaves through the second box at y = 5
    assert list(face) == [1, 5, 4, 6 + 3, 0]
    ground = GroundRect(0.0, (-10, 10), (-10, 10), [-2.0, 2.0], [[9, 1, 0], [6, 2, 0], [9, 3, 0]])
    down = _unit(np.array([[1.0, 0, -1], [0, 1, -1], [0, -3, -1], [0, 0, 1]]).T)
    t, face = ground.intersect(np.array([0.0, 0.0, 1.0]), down)
    assert list(face[:3]) == [1, 1, 0] and math.isinf(t[3])
    np.testing.assert_allclose(t[0], math.sqrt(2))


def test_invalid_primitives_are_rejected():
    with pytest.raises(ValueError):
        Box([0, 0, 0], [1, -1, 1], [[0, 1, 0]])
    with pytest.raises(ValueError):
        Sphere([0, 0, 0], 1.0, [[0, 1, 0], [0, 2, 0]])
    with pytest.raises(ValueError):
        Cylinder([0, 0, 0], 1.0, 1.0, [[0, 1, 0]], rotation=np.diag([1.0, 1.0, -1.0]))


def test_aabb_is_exact():
    rng = np.random.default_rng(3)
    for prim in _random_primitives(rng, 30)[1:]:
        lo, hi = prim.aabb()
        # Points on the surface (from rays cast at the primitive from all around) stay inside the bounds ...
        centre, radius = prim.bounding_sphere()
        origins = centre + 3 * radius * _unit(rng.normal(size=(3, 40))).T
        reached_lo, reached_hi = np.full(3, np.inf), np.full(3, -np.inf)
        for origin in origins:
            dirs = _unit(centre[:, None] + radius * rng.uniform(-1, 1, size=(3, 4000)) - origin[:, None])
            hits = cast_rays([prim], origin, dirs)
            points = origin[:, None] + hits.t[hits.mask] * dirs[:, hits.mask]
            assert np.all(points.T >= lo - 1e-9) and np.all(points.T <= hi + 1e-9)
            reached_lo, reached_hi = np.minimum(reached_lo, points.min(axis=1)), np.maximum(reached_hi,
                                                                                             points.max(axis=1))
        # ... and come close to every side of them.
        assert np.all(reached_lo - lo < 0.1 * radius) and np.all(hi - reached_hi < 0.1 * radius)
    assert GroundRect(0, (-1, 1), (-1, 1), [], [[9, 1, 0]]).aabb() is None
