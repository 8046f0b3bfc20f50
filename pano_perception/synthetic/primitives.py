"""Analytic primitives of the synthetic world: boxes, cylinders, spheres, a ground rectangle and a room shell.

World frame: REP-103 ``map`` (x forward, y left, z up), metres. Every primitive answers, for rays from one
origin, the first entry distance along unit directions (``intersect``), the surface normal and 2D texture
coordinates in metres at hit points (``surface``), and its signed distance (``signed_distance``). The ray-facing
methods take vectors as rows ((3, n) arrays, contiguous per component, for speed); ``signed_distance`` takes
points (n, 3). Faces: each primitive has a small table of per-face labels
``labels[face] = (semantic id, instance id, material index)``; the face index of a hit picks the row (a box has
6 faces, a cylinder 3, a room shell 6 per box, a ground rectangle one per strip).
"""
from __future__ import annotations

import math

import numpy as np

T_MIN = 1e-6  # metres: hits closer than this to the ray origin are ignored (rays leaving a surface)
# Texture axes (u, v) of a face normal to axis k: vertical faces get v = z (up), horizontal faces (x, y).
_UV_AXES = np.array([[1, 2], [0, 2], [0, 1]])


def _labels_table(labels, n_faces: int) -> np.ndarray:
    table = np.asarray(labels, dtype=np.int64).reshape(-1, 3)
    if len(table) == 1:
        table = np.repeat(table, n_faces, axis=0)
    if table.shape != (n_faces, 3):
        raise ValueError(f"expected {n_faces} label rows (semantic, instance, material); got {table.shape}")
    return table


def _local_directions(rotation: np.ndarray):
    """A function mapping world directions (3, n) to the local frame of ``rotation`` (world_from_local).

    Signed permutations (axis-aligned primitives, wheels on their side) just pick and negate rows.
    """
    local_from_world = rotation.T
    if np.all(np.isin(local_from_world, (-1.0, 0.0, 1.0))):
        axes = np.abs(local_from_world).argmax(axis=1)
        signs = local_from_world[np.arange(3), axes]
        return lambda dirs: [dirs[a] if s > 0 else -dirs[a] for a, s in zip(axes, signs)]
    return lambda dirs: local_from_world @ dirs


def _as_rotation(rotation) -> np.ndarray:
    r = np.eye(3) if rotation is None else np.asarray(rotation, dtype=np.float64).reshape(3, 3)
    if not np.allclose(r @ r.T, np.eye(3), atol=1e-9) or np.linalg.det(r) < 0:
        raise ValueError("rotation must be a proper 3x3 rotation matrix")
    return r


class Primitive:
    """Base class. ``labels`` has one row (semantic, instance, material) per face."""

    kind = "primitive"
    n_faces = 1

    def __init__(self, labels):
        self.labels = _labels_table(labels, self.n_faces)

    def bounding_sphere(self) -> tuple[np.ndarray, float]:
        """(centre (3,), radius) in metres; radius ``inf`` means every ray is a candidate."""
        raise NotImplementedError

    def aabb(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Exact world axis-aligned bounds (min (3,), max (3,)) in metres; None if unbounded."""
        return None

    def intersect(self, origin: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """First entry distance t (n,) along unit ``dirs`` (3, n) (components as rows) from ``origin`` (3,)
        (``inf`` on a miss) and the face index (n,)."""
        raise NotImplementedError

    def surface(self, points: np.ndarray, face: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unit normals (3, n) (world; out of the solid, into the room for a shell) and texture coordinates
        (2, n) in metres at surface points (3, n) with their face indices (n,)."""
        raise NotImplementedError

    def signed_distance(self, points: np.ndarray) -> np.ndarray:
        """Signed distance (n,) in metres from points (n, 3) to the surface (negative inside the solid)."""
        raise NotImplementedError

    def to_json(self) -> dict:
        raise NotImplementedError


class _Oriented(Primitive):
    """A primitive with a local frame: ``centre`` (3,) and ``rotation`` world_from_local (3, 3)."""

    def __init__(self, centre, rotation, labels):
        super().__init__(labels)
        self.centre = np.asarray(centre, dtype=np.float64)
        self.rotation = _as_rotation(rotation)
        self._local_dirs = _local_directions(self.rotation)

    def _local(self, points):
        """World points (n, 3) -> local (n, 3)."""
        return (points - self.centre) @ self.rotation

    def _local_soa(self, points):
        """World points (3, n) -> local (3, n)."""
        return self.rotation.T @ (points - self.centre[:, None])


class Box(_Oriented):
    """Oriented box: ``centre`` (3,), ``half_size`` (3,), ``rotation`` world_from_local (3, 3).

    Faces ``2k`` / ``2k+1`` are the ``-`` / ``+`` faces of local axis k.
    """

    kind = "box"
    n_faces = 6

    def __init__(self, centre, half_size, labels, rotation=None):
        super().__init__(centre, rotation, labels)
        self.half_size = np.asarray(half_size, dtype=np.float64)
        if np.any(self.half_size <= 0):
            raise ValueError("box half sizes must be positive")

    def bounding_sphere(self):
        return self.centre, float(np.linalg.norm(self.half_size))

    def aabb(self):
        extent = np.abs(self.rotation) @ self.half_size
        return self.centre - extent, self.centre + extent

    def intersect(self, origin, dirs):
        o = self._local(origin)
        d = self._local_dirs(dirs)
        t_enter = t_exit = face = None
        with np.errstate(divide="ignore", invalid="ignore"):
            for k in range(3):
                inv = 1.0 / d[k]
                t1 = (-self.half_size[k] - o[k]) * inv
                t2 = (self.half_size[k] - o[k]) * inv
                t_near, t_far = np.minimum(t1, t2), np.maximum(t1, t2)
                face_k = (2 * k + (d[k] < 0)).astype(np.int8)
                if k == 0:
                    t_enter, t_exit, face = t_near, t_far, face_k
                else:
                    later = t_near > t_enter
                    t_enter = np.where(later, t_near, t_enter)
                    face = np.where(later, face_k, face)
                    t_exit = np.minimum(t_exit, t_far)
        hit = (t_enter <= t_exit) & (t_enter > T_MIN)
        return np.where(hit, t_enter, np.inf), face

    def surface(self, points, face):
        local = self._local_soa(points) + self.half_size[:, None]
        axis = face.astype(np.int64) // 2
        normals = self.rotation[:, axis] * np.where(face % 2 == 1, 1.0, -1.0)
        cols = np.arange(points.shape[1])
        return normals, np.stack([local[_UV_AXES[axis, 0], cols], local[_UV_AXES[axis, 1], cols]])

    def signed_distance(self, points):
        q = np.abs(self._local(points)) - self.half_size
        outside = np.linalg.norm(np.maximum(q, 0.0), axis=-1)
        return outside + np.minimum(q.max(axis=-1), 0.0)

    def to_json(self):
        return {"type": self.kind, "centre": self.centre.tolist(), "half_size": self.half_size.tolist(),
                "rotation": self.rotation.tolist()}


class Cylinder(_Oriented):
    """Capped cylinder about its local z axis: ``centre`` (3,), ``radius``, ``half_height``, ``rotation``.

    Faces: 0 side, 1 bottom cap (local -z), 2 top cap (local +z).
    """

    kind = "cylinder"
    n_faces = 3

    def __init__(self, centre, radius, half_height, labels, rotation=None):
        super().__init__(centre, rotation, labels)
        self.radius = float(radius)
        self.half_height = float(half_height)
        if self.radius <= 0 or self.half_height <= 0:
            raise ValueError("cylinder radius and half height must be positive")

    def bounding_sphere(self):
        return self.centre, math.hypot(self.radius, self.half_height)

    def aabb(self):
        axis = self.rotation[:, 2]
        extent = self.radius * np.sqrt(np.clip(1.0 - axis ** 2, 0.0, None)) + self.half_height * np.abs(axis)
        return self.centre - extent, self.centre + extent

    def intersect(self, origin, dirs):
        o = self._local(origin)
        d = self._local_dirs(dirs)
        r, hh = self.radius, self.half_height
        n = dirs.shape[1]
        t = np.full(n, np.inf)
        face = np.zeros(n, dtype=np.int8)
        c = o[0] * o[0] + o[1] * o[1] - r * r
        if c > 0:  # the origin is outside the infinite cylinder: the side can be entered
            a = d[0] * d[0] + d[1] * d[1]
            b = o[0] * d[0] + o[1] * d[1]
            disc = b * b - a * c
            with np.errstate(invalid="ignore", divide="ignore"):
                t_side = c / (np.sqrt(disc) - b)  # stable form of (-b - sqrt(disc)) / a
            z = o[2] + t_side * d[2]
            ok = (disc >= 0) & (b < 0) & (np.abs(z) <= hh) & (t_side > T_MIN)
            t = np.where(ok, t_side, t)
        for cap_face, z_cap, outside in ((1, -hh, o[2] < -hh), (2, hh, o[2] > hh)):
            if not outside:
                continue
            with np.errstate(invalid="ignore", divide="ignore"):
                t_cap = (z_cap - o[2]) / d[2]
            x = o[0] + t_cap * d[0]
            y = o[1] + t_cap * d[1]
            ok = (t_cap > T_MIN) & (x * x + y * y <= r * r) & (t_cap < t)
            t = np.where(ok, t_cap, t)
            face[ok] = cap_face
        return t, face

    def surface(self, points, face):
        local = self._local_soa(points)
        side = face == 0
        radial = np.sqrt(local[0] ** 2 + local[1] ** 2).clip(min=1e-12)
        normals_local = np.stack([np.where(side, local[0] / radial, 0.0), np.where(side, local[1] / radial, 0.0),
                                  np.where(side, 0.0, np.where(face == 2, 1.0, -1.0))])
        angle = np.arctan2(local[1], local[0])
        uv = np.where(side, np.stack([(angle + math.pi) * self.radius, local[2] + self.half_height]),
                      local[:2] + self.radius)
        return self.rotation @ normals_local, uv

    def signed_distance(self, points):
        local = self._local(points)
        q = np.stack([np.linalg.norm(local[:, :2], axis=-1) - self.radius, np.abs(local[:, 2]) - self.half_height],
                     axis=-1)
        return np.linalg.norm(np.maximum(q, 0.0), axis=-1) + np.minimum(q.max(axis=-1), 0.0)

    def to_json(self):
        return {"type": self.kind, "centre": self.centre.tolist(), "radius": self.radius,
                "half_height": self.half_height, "rotation": self.rotation.tolist()}


class Sphere(Primitive):
    """Sphere: ``centre`` (3,), ``radius``."""

    kind = "sphere"

    def __init__(self, centre, radius, labels):
        super().__init__(labels)
        self.centre = np.asarray(centre, dtype=np.float64)
        self.radius = float(radius)
        if self.radius <= 0:
            raise ValueError("sphere radius must be positive")

    def bounding_sphere(self):
        return self.centre, self.radius

    def aabb(self):
        return self.centre - self.radius, self.centre + self.radius

    def intersect(self, origin, dirs):
        o = origin - self.centre
        c = float(o @ o) - self.radius * self.radius
        n = dirs.shape[1]
        if c <= 0:  # origin inside: never entered
            return np.full(n, np.inf), np.zeros(n, dtype=np.int8)
        b = o @ dirs
        disc = b * b - c
        with np.errstate(invalid="ignore", divide="ignore"):
            t = c / (np.sqrt(disc) - b)  # stable form of -b - sqrt(disc)
        ok = (disc >= 0) & (b < 0) & (t > T_MIN)
        return np.where(ok, t, np.inf), np.zeros(n, dtype=np.int8)

    def surface(self, points, face):
        normals = points - self.centre[:, None]
        normals /= np.sqrt(normals[0] ** 2 + normals[1] ** 2 + normals[2] ** 2)
        lon = np.arctan2(normals[1], normals[0])
        lat = np.arcsin(np.clip(normals[2], -1.0, 1.0))
        return normals, np.stack([(lon + math.pi) * self.radius, (lat + math.pi / 2) * self.radius])

    def signed_distance(self, points):
        return np.linalg.norm(points - self.centre, axis=-1) - self.radius

    def to_json(self):
        return {"type": self.kind, "centre": self.centre.tolist(), "radius": self.radius}


class GroundRect(Primitive):
    """Horizontal rectangle ``z = height`` over ``x_range`` x ``y_range``, seen from above.

    Split into strips along x by ``y_breaks`` (sorted, k values): face i covers ``y_breaks[i-1] <= y < y_breaks[i]``,
    so there are k + 1 faces (e.g. grass | sidewalk | road | sidewalk | grass).
    """

    kind = "ground"

    def __init__(self, height, x_range, y_range, y_breaks, labels):
        self.y_breaks = np.asarray(y_breaks, dtype=np.float64)
        self.n_faces = len(self.y_breaks) + 1
        super().__init__(labels)
        self.height = float(height)
        self.x_range = (float(x_range[0]), float(x_range[1]))
        self.y_range = (float(y_range[0]), float(y_range[1]))

    def bounding_sphere(self):
        return np.zeros(3), math.inf

    def intersect(self, origin, dirs):
        n = dirs.shape[1]
        if origin[2] <= self.height:
            return np.full(n, np.inf), np.zeros(n, dtype=np.int8)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (self.height - origin[2]) / dirs[2]
        x = origin[0] + t * dirs[0]
        y = origin[1] + t * dirs[1]
        ok = ((t > T_MIN) & (x >= self.x_range[0]) & (x <= self.x_range[1]) & (y >= self.y_range[0])
              & (y <= self.y_range[1]))
        face = np.searchsorted(self.y_breaks, np.where(ok, y, 0.0), side="right").astype(np.int8)
        return np.where(ok, t, np.inf), face

    def surface(self, points, face):
        normals = np.zeros_like(points)
        normals[2] = 1.0
        return normals, points[:2].copy()

    def signed_distance(self, points):
        return points[:, 2] - self.height

    def to_json(self):
        return {"type": self.kind, "height": self.height, "x_range": list(self.x_range),
                "y_range": list(self.y_range), "y_breaks": self.y_breaks.tolist()}


class RoomShell(Primitive):
    """The inside of a union of axis-aligned boxes (a rectangular, L- or T-shaped room), seen from within.

    ``boxes`` (m, 2, 3): rows ``(min corner, max corner)``; boxes must overlap where they join. A ray from inside
    hits the face where it leaves the union. Faces: ``6 b + 2k (+1)`` for box b, axis k, min (max) side.
    """

    kind = "room_shell"

    def __init__(self, boxes, labels):
        self.boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 2, 3)
        self.n_faces = 6 * len(self.boxes)
        super().__init__(labels)

    def bounding_sphere(self):
        return np.zeros(3), math.inf

    def intersect(self, origin, dirs):
        n = dirs.shape[1]
        with np.errstate(divide="ignore"):
            inv = 1.0 / dirs
        t_enter, t_exit, exit_face = [], [], []
        for b, (lo, hi) in enumerate(self.boxes):
            enter = exit_ = face = None
            for k in range(3):
                t1 = (lo[k] - origin[k]) * inv[k]
                t2 = (hi[k] - origin[k]) * inv[k]
                t_near, t_far = np.minimum(t1, t2), np.maximum(t1, t2)
                face_k = (6 * b + 2 * k + (dirs[k] > 0)).astype(np.int16)
                if k == 0:
                    enter, exit_, face = t_near, t_far, face_k
                else:
                    enter = np.maximum(enter, t_near)
                    sooner = t_far < exit_
                    exit_ = np.where(sooner, t_far, exit_)
                    face = np.where(sooner, face_k, face)
            t_enter.append(enter)
            t_exit.append(exit_)
            exit_face.append(face)
        t = np.zeros(n)
        face = np.full(n, -1, dtype=np.int16)
        for _ in range(len(self.boxes)):  # walk through overlapping boxes until the ray leaves the union
            changed = False
            for b in range(len(self.boxes)):
                go = (t_enter[b] <= t) & (t_exit[b] > t)
                if go.any():
                    t = np.where(go, t_exit[b], t)
                    face = np.where(go, exit_face[b], face)
                    changed = True
            if not changed:
                break
        hit = face >= 0
        return np.where(hit, t, np.inf), np.maximum(face, 0)

    def surface(self, points, face):
        face = face.astype(np.int64)
        axis = (face % 6) // 2
        cols = np.arange(points.shape[1])
        normals = np.zeros_like(points)
        normals[axis, cols] = np.where(face % 2 == 1, -1.0, 1.0)  # a max face looks towards -axis, into the room
        return normals, np.stack([points[_UV_AXES[axis, 0], cols], points[_UV_AXES[axis, 1], cols]])

    def signed_distance(self, points):
        dists = []
        for lo, hi in self.boxes:
            centre, half = (lo + hi) / 2, (hi - lo) / 2
            q = np.abs(points - centre) - half
            dists.append(np.linalg.norm(np.maximum(q, 0.0), axis=-1) + np.minimum(q.max(axis=-1), 0.0))
        return -np.min(dists, axis=0)  # positive inside the room (free space)

    def to_json(self):
        return {"type": self.kind, "boxes": self.boxes.tolist()}
