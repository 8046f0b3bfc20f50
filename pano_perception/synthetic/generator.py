"""Scenes by seed, camera poses in free space and smooth camera trajectories through a scene."""
from __future__ import annotations

import math

import numpy as np

from .indoor import generate_indoor
from .outdoor import generate_outdoor
from .scene import CameraPose, Scene

KINDS = ("indoor", "outdoor")
OUTDOOR_FRACTION = 0.25
MIN_CLEARANCE = 0.3  # metres between the camera (and the column below it) and any surface


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
    """True where a camera at (x, y, z) and the column below it down to 0.4 m keep ``MIN_CLEARANCE``."""
    xy = np.atleast_2d(xy)
    z = np.broadcast_to(np.asarray(z, dtype=np.float64), (len(xy),))
    ok = np.ones(len(xy), dtype=bool)
    for fraction in (0.0, 0.5, 1.0):
        h = 0.4 + fraction * (z - 0.4)
        ok &= scene.clearance(np.column_stack([xy, h])) >= MIN_CLEARANCE
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


def camera_trajectory(scene: Scene, n_frames: int, rate_hz: float = 10.0, seed: int = 0) -> list[CameraPose]:
    """Poses of a camera moving smoothly through free space at walking speed, one every ``1/rate_hz`` s.

    Indoors the path is an ellipse around a free point, outdoors a gently weaving line along the street; the
    camera looks along its direction of travel (plus a slowly varying offset), height bobbing by a few cm.
    """
    rng = np.random.default_rng([scene.seed, seed, 3])
    times = np.arange(n_frames) / rate_hz
    dense = np.linspace(0.0, times[-1] if n_frames > 1 else 0.0, max(4 * n_frames, 8))
    speed = 0.6 if scene.kind == "indoor" else 1.3
    for _ in range(300):
        start = sample_camera_poses(scene, 1, seed=int(rng.integers(1 << 30)))[0].position
        if scene.kind == "indoor":
            radii = rng.uniform(0.2, 1.5, size=2)
            phase, direction = rng.uniform(0, 2 * math.pi), rng.choice([-1.0, 1.0])
            omega = direction * speed / radii.mean()

            def path(t, start=start, radii=radii, phase=phase, omega=omega):
                a = phase + omega * t
                centre = start[:2] - radii * [math.cos(phase), math.sin(phase)]
                return centre + np.stack([radii[0] * np.cos(a), radii[1] * np.sin(a)], axis=-1)
        else:
            heading = rng.choice([0.0, math.pi]) + rng.uniform(-0.1, 0.1)
            sway = rng.uniform(0.1, 0.4)

            def path(t, start=start, heading=heading, sway=sway):
                along = speed * t
                side = sway * np.sin(0.5 * t)
                return start[:2] + np.stack([along * math.cos(heading) - side * math.sin(heading),
                                             along * math.sin(heading) + side * math.cos(heading)], axis=-1)
        if not _column_clear(scene, path(dense), start[2]).all():
            continue
        eps = 1e-3
        velocity = (path(times + eps) - path(times - eps)) / (2 * eps)
        yaw = np.arctan2(velocity[:, 1], velocity[:, 0]) + 0.3 * np.sin(0.4 * times + rng.uniform(0, 6))
        height = start[2] + 0.02 * np.sin(2 * math.pi * 1.8 * times)
        xy = path(times)
        return [CameraPose.from_ypr([x, y, h], a) for (x, y), h, a in zip(xy, height, yaw)]
    raise RuntimeError(f"no free trajectory found in scene {scene.seed}")
