"""Scenes by seed, camera poses in free space and smooth camera trajectories through a scene."""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse import csgraph

from .indoor import generate_indoor
from .outdoor import generate_outdoor
from .scene import CameraPose, Scene

KINDS = ("indoor", "outdoor")
OUTDOOR_FRACTION = 0.25
CAMERA_CLEARANCE = 0.5  # metres between the camera centre and any surface
COLUMN_CLEARANCE = 0.3  # metres between the column below the camera (down to 0.4 m) and any surface


def scene_kind(seed: int) -> str:
    """The kind a seed gives when none is asked for (about one scene in four is outdoor)."""
    return "outdoor" if np.random.default_rng([seed, 1]).random() < OUTDOOR_FRACTION else "indoor"


def generate_scene(seed: int, kind: str | None = None) -> Scene:
    """The scene of ``seed``: ``kind`` "indoor" or "outdoor" (None: decided by the seed)."""
    kind = kind or scene_kind(seed)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
    return generate_indoor(seed) if kind == "indoor" else generate_outdoor(seed)


def _column_clear(scene: Scene, xy: np.ndarray, z: np.ndarray) -> np.ndarray:
    """True where a camera at (x, y, z) keeps ``CAMERA_CLEARANCE`` and the column below it down to 0.4 m keeps
    ``COLUMN_CLEARANCE`` (a robot or a tripod stands there)."""
    xy = np.atleast_2d(xy)
    z = np.broadcast_to(np.asarray(z, dtype=np.float64), (len(xy),))
    ok = scene.clearance(np.column_stack([xy, z])) >= CAMERA_CLEARANCE
    for fraction in (0.0, 0.5):
        h = 0.4 + fraction * (z - 0.4)
        ok &= scene.clearance(np.column_stack([xy, h])) >= COLUMN_CLEARANCE
    return ok


def sample_camera_poses(scene: Scene, count: int, seed: int = 0, tilt_deg: float = 0.0) -> list[CameraPose]:
    """``count`` poses at free positions with random yaw (and random pitch/roll up to ``tilt_deg``)."""
    rng = np.random.default_rng([scene.seed, seed, 2])
    x0, x1, y0, y1 = scene.camera_region
    poses: list[CameraPose] = []
    for _ in range(200):
        n = 64
        xy = rng.uniform([x0, y0], [x1, y1], size=(n, 2))
        z = rng.uniform(*scene.camera_heights, size=n)
        free = _column_clear(scene, xy, z)
        for p, h in zip(xy[free], z[free]):
            tilt = np.radians(tilt_deg) * rng.uniform(-1, 1, size=2)
            poses.append(CameraPose.from_ypr([p[0], p[1], h], rng.uniform(-math.pi, math.pi), *tilt))
            if len(poses) == count:
                return poses
    raise RuntimeError(f"found only {len(poses)} free camera positions in scene {scene.seed}")


def _resample(polyline: np.ndarray, step: float) -> np.ndarray:
    """Points every ``step`` metres of arc length along a polyline (m, 2) (at least its two ends)."""
    seg = np.linalg.norm(np.diff(polyline, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    at = np.arange(0.0, arc[-1] + 1e-9, step) if arc[-1] > 0 else np.zeros(1)
    return np.stack([np.interp(at, arc, polyline[:, 0]), np.interp(at, arc, polyline[:, 1])], axis=-1)


def _free_grid_route(scene: Scene, rng: np.random.Generator, height: float, length: float) -> np.ndarray | None:
    """A route (m, 2) through free floor cells (0.1 m grid) at least ``length`` metres long: shortest paths between
    random far-apart free cells of the largest free region, chained."""
    res = 0.1
    x0, x1, y0, y1 = scene.camera_region
    xs, ys = np.arange(x0 + res / 2, x1, res), np.arange(y0 + res / 2, y1, res)
    gx, gy = np.meshgrid(xs, ys)
    free = _column_clear(scene, np.column_stack([gx.ravel(), gy.ravel()]), height).reshape(gx.shape)
    regions, count = ndimage.label(free, structure=np.ones((3, 3)))
    if count == 0:
        return None
    largest = 1 + int(np.argmax(np.bincount(regions.ravel())[1:]))
    free = regions == largest
    index = np.full(free.shape, -1)
    cells = np.argwhere(free)
    index[free] = np.arange(len(cells))
    rows, cols, weights = [], [], []
    for dv, du in ((0, 1), (1, 0), (1, 1), (1, -1)):  # each undirected edge once; no corner cutting
        a = cells
        b = cells + [dv, du]
        ok = (b[:, 0] < free.shape[0]) & (b[:, 1] >= 0) & (b[:, 1] < free.shape[1])
        a, b = a[ok], b[ok]
        ok = free[b[:, 0], b[:, 1]]
        if dv and du:
            ok &= free[a[:, 0], b[:, 1]] & free[b[:, 0], a[:, 1]]
        rows.append(index[a[ok, 0], a[ok, 1]])
        cols.append(index[b[ok, 0], b[ok, 1]])
        weights.append(np.full(int(ok.sum()), res * math.hypot(dv, du)))
    graph = sparse.coo_matrix((np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))),
                              shape=(len(cells), len(cells))).tocsr()
    current = int(rng.integers(len(cells)))
    route, total = [current], 0.0
    for _ in range(20):
        if total >= length:
            break
        dist, pred = csgraph.dijkstra(graph, directed=False, indices=current, return_predecessors=True)
        reachable = np.flatnonzero(np.isfinite(dist) & (dist >= min(1.0, 0.5 * dist[np.isfinite(dist)].max())))
        if len(reachable) == 0:
            return None
        target = int(rng.choice(reachable))
        path = [target]
        while path[-1] != current:
            path.append(int(pred[path[-1]]))
        route += path[::-1][1:]
        total += float(dist[target])
        current = target
    if total < length:
        return None
    return np.column_stack([xs[cells[route, 1]], ys[cells[route, 0]]])


def _street_route(scene: Scene, rng: np.random.Generator, height: float, length: float) -> np.ndarray:
    """A gently weaving line (m, 2) along the street (world x) from a free point."""
    start = sample_camera_poses(scene, 1, seed=int(rng.integers(1 << 30)))[0].position[:2]
    heading = rng.choice([-1.0, 1.0])
    along = np.linspace(0.0, length + 1.0, max(2, int(length / 0.1) + 2))
    side = rng.uniform(0.1, 0.4) * np.sin(along / rng.uniform(2.0, 4.0))
    return start + np.column_stack([heading * along, side])


def camera_trajectory(scene: Scene, n_frames: int, rate_hz: float = 10.0, seed: int = 0) -> list[CameraPose]:
    """Poses of a camera moving smoothly through free space at walking speed, one every ``1/rate_hz`` s.

    Indoors the camera follows smoothed shortest paths between random points of the free floor, outdoors a gently
    weaving line along the street. It looks along its direction of travel (turning smoothly, plus a slow
    look-around), its height bobbing by 2 cm; every pose keeps the camera clearances.
    """
    rng = np.random.default_rng([scene.seed, seed, 3])
    speed = 0.5 if scene.kind == "indoor" else 1.3
    duration = (n_frames - 1) / rate_hz
    step = 0.02  # metres between dense samples of the smoothed path
    for _ in range(30):
        height = float(rng.uniform(*scene.camera_heights))
        route = (_free_grid_route if scene.kind == "indoor" else _street_route)(scene, rng, height,
                                                                               speed * duration + 0.2)
        if route is None:
            continue
        for smoothing in (0.3, 0.15, 0.05):  # metres; smoothing cuts corners, so try less if it hits something
            dense = ndimage.gaussian_filter1d(_resample(route, step), smoothing / step, axis=0, mode="nearest")
            dense = _resample(dense, step)
            if len(dense) * step < speed * duration or not _column_clear(scene, dense, height + 0.02).all():
                continue
            t_dense = np.arange(len(dense)) * step / speed
            times = np.arange(n_frames) / rate_hz
            tangent = np.gradient(dense, axis=0)
            heading = ndimage.gaussian_filter1d(np.unwrap(np.arctan2(tangent[:, 1], tangent[:, 0])),
                                                0.8 * speed / step, mode="nearest")
            yaw = np.interp(times, t_dense, heading) + 0.25 * np.sin(0.4 * times + rng.uniform(0, 2 * math.pi))
            x, y = np.interp(times, t_dense, dense[:, 0]), np.interp(times, t_dense, dense[:, 1])
            z = height + 0.02 * np.sin(2 * math.pi * 1.8 * times)
            return [CameraPose.from_ypr([px, py, pz], a) for px, py, pz, a in zip(x, y, z, yaw)]
    raise RuntimeError(f"no free trajectory found in scene {scene.seed}")
