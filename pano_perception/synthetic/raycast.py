"""Vectorised closest-hit ray casting (numpy, float64) of rays sharing one origin against analytic primitives.

Culling: the rays are sorted into a grid of direction bins (longitude x sin latitude in a frame fitted to the
bundle, edges at quantiles of the rays); each primitive is tested only against the rays of the bins its bounding
sphere's angular cap overlaps, and only against rays that have not yet hit something nearer than that sphere
(primitives are visited front to back). So the cost grows with the solid angle the visible primitives cover, not
with rays x primitives.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .primitives import Primitive

_RAYS_PER_BIN = 64
_BOUNDED_MAX_ANGLE = math.radians(80.0)


@dataclass
class Hits:
    """Closest hits of n rays: distance ``t`` (metres along the unit ray, ``inf`` on a miss), the index of the
    primitive hit (-1 on a miss) and its face index."""

    t: np.ndarray
    primitive: np.ndarray
    face: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        return self.primitive >= 0


def _ranges_to_indices(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, e)`` for every pair."""
    lengths = ends - starts
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    offsets = np.cumsum(lengths) - lengths
    return np.arange(total, dtype=np.int64) - np.repeat(offsets - starts, lengths)


class _DirectionBins:
    """Rays sorted by direction bin; answers which (sorted) rays may hit a given angular cap.

    Bins are a grid in longitude x z (z = sin latitude) of a frame fitted to the bundle, with edges at quantiles
    of the rays so that bins hold similar numbers of rays (rays from a distant sun crowd into a narrow cone).
    """

    def __init__(self, dirs: np.ndarray):
        """``dirs``: unit rays (3, n)."""
        n = dirs.shape[1]
        self.frame = np.eye(3)
        self.wrap = True
        mean = dirs.mean(axis=1)
        mean_norm = float(np.linalg.norm(mean))
        if mean_norm > 0.5:  # a cone-like bundle (a perspective view, rays from a distant light)
            frame = _frame_with_x(mean / mean_norm)
            if float((frame[0] @ dirs).min()) > math.cos(_BOUNDED_MAX_ANGLE):
                self.frame = frame
                self.wrap = False
        local = self.frame @ dirs
        lon = np.arctan2(local[1], local[0])
        z = local[2]
        n_bins = max(1, min(30000, n // _RAYS_PER_BIN))
        self.n_z = max(1, round(math.sqrt(n_bins / (2 if self.wrap else 1))))
        self.n_lon = max(1, n_bins // self.n_z)
        sample = slice(None, None, max(1, n // 20000))
        self.z_edges = np.quantile(z[sample], np.arange(1, self.n_z) / self.n_z)
        self.lon_edges = np.quantile(lon[sample], np.arange(1, self.n_lon) / self.n_lon)
        bins = np.searchsorted(self.z_edges, z, side="right") * self.n_lon + np.searchsorted(self.lon_edges, lon,
                                                                                               side="right")
        self.order = np.argsort(bins.astype(np.int16 if n_bins < 32768 else np.int32), kind="stable")
        counts = np.bincount(bins, minlength=self.n_z * self.n_lon)
        self.starts = np.concatenate([[0], np.cumsum(counts)])

    def _columns(self, lon_a: float, lon_b: float) -> list[tuple[int, int]]:
        a = int(np.searchsorted(self.lon_edges, lon_a, side="right"))
        b = int(np.searchsorted(self.lon_edges, lon_b, side="right"))
        return [(a, b)] if a <= b else []

    def candidates(self, direction: np.ndarray, half_angle: float) -> np.ndarray | None:
        """Sorted-ray indices that may lie within ``half_angle`` of the unit ``direction``; None means all."""
        half_angle = half_angle * (1.0 + 1e-6) + 1e-9
        local = self.frame @ direction
        lon_c = math.atan2(local[1], local[0])
        lat_c = math.asin(max(-1.0, min(1.0, local[2])))
        lat_a, lat_b = lat_c - half_angle, lat_c + half_angle
        row_a = int(np.searchsorted(self.z_edges, math.sin(max(lat_a, -math.pi / 2)), side="right"))
        row_b = int(np.searchsorted(self.z_edges, math.sin(min(lat_b, math.pi / 2)), side="right"))
        full = [(0, self.n_lon - 1)]
        if lat_b >= math.pi / 2 or lat_a <= -math.pi / 2:
            col_ranges = full
        else:
            half_width = math.asin(min(1.0, math.sin(half_angle) / math.cos(lat_c)))
            lon_a, lon_b = lon_c - half_width, lon_c + half_width
            if not self.wrap or (lon_a >= -math.pi and lon_b < math.pi):
                col_ranges = self._columns(lon_a, lon_b)
            elif lon_b - lon_a >= 2 * math.pi:
                col_ranges = full
            elif lon_a < -math.pi:
                col_ranges = self._columns(lon_a + 2 * math.pi, math.pi) + self._columns(-math.pi, lon_b)
            else:
                col_ranges = self._columns(lon_a, math.pi) + self._columns(-math.pi, lon_b - 2 * math.pi)
        if not col_ranges or row_a > row_b:
            return np.empty(0, dtype=np.int64)
        if row_a == 0 and row_b == self.n_z - 1 and col_ranges == full:
            return None
        rows = np.arange(row_a, row_b + 1) * self.n_lon
        starts = np.concatenate([self.starts[rows + a] for a, _ in col_ranges])
        ends = np.concatenate([self.starts[rows + b + 1] for _, b in col_ranges])
        return _ranges_to_indices(starts, ends)


def _frame_with_x(x: np.ndarray) -> np.ndarray:
    """Rows: an orthonormal right-handed frame whose first axis is ``x``."""
    helper = np.array([0.0, 0.0, 1.0]) if abs(x[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    y = np.cross(helper, x)
    y /= np.linalg.norm(y)
    return np.stack([x, y, np.cross(x, y)])


def cast_rays(primitives: Sequence[Primitive], origin, dirs: np.ndarray, max_t: np.ndarray | None = None) -> Hits:
    """Closest hits of unit rays ``dirs`` (3, n) (float64, components as rows) from ``origin`` (3,) (world frame,
    metres); ``t`` is the Euclidean distance to the hit.

    With ``max_t`` (n,) only hits closer than it count (shadow rays: anything between the light and the receiver).
    Primitives are visited front to back and skip rays that already hit something nearer than their bounds.
    """
    origin = np.asarray(origin, dtype=np.float64)
    bins = _DirectionBins(dirs)
    sorted_dirs = np.take(dirs, bins.order, axis=1)
    n = sorted_dirs.shape[1]
    t_best = np.full(n, np.inf) if max_t is None else np.asarray(max_t, dtype=np.float64)[bins.order]
    prim_best = np.full(n, -1, dtype=np.int32)
    face_best = np.zeros(n, dtype=np.int16)
    near = []
    for prim in primitives:
        centre, radius = prim.bounding_sphere()
        distance = float(np.linalg.norm(centre - origin))
        near.append((-math.inf if math.isinf(radius) else distance - radius, distance, radius, centre))
    for index in sorted(range(len(primitives)), key=lambda i: near[i][0]):
        nearest, distance, radius, centre = near[index]
        candidates = None  # None: every ray
        if not math.isinf(radius) and nearest > 0:  # the origin is outside the bounding sphere
            candidates = bins.candidates((centre - origin) / distance, math.asin(radius / distance))
            candidates = (np.flatnonzero(t_best > nearest) if candidates is None
                          else candidates[t_best[candidates] > nearest])
        if candidates is None:
            t, face = primitives[index].intersect(origin, sorted_dirs)
            closer = t < t_best
            t_best = np.where(closer, t, t_best)
            prim_best[closer] = index
            face_best[closer] = face[closer]
        elif len(candidates):
            t, face = primitives[index].intersect(origin, np.take(sorted_dirs, candidates, axis=1))
            closer = t < t_best[candidates]
            winners = candidates[closer]
            t_best[winners] = t[closer]
            prim_best[winners] = index
            face_best[winners] = face[closer]
    hits = Hits(np.empty(n), np.empty(n, dtype=np.int32), np.empty(n, dtype=np.int16))
    hits.t[bins.order] = np.where(prim_best >= 0, t_best, np.inf)
    hits.primitive[bins.order] = prim_best
    hits.face[bins.order] = face_best
    return hits


@dataclass
class SurfaceSample:
    """Surface attributes at the hits of n rays (misses: NaN points/normals/uv, semantic -1, instance 0,
    material -1). Vectors are stored as rows: points (3, n) world metres, normals (3, n) world unit vectors
    facing the ray origin, uv (2, n) texture coordinates in metres."""

    points: np.ndarray
    normals: np.ndarray
    uv: np.ndarray
    semantic: np.ndarray
    instance: np.ndarray
    material: np.ndarray


def sample_surfaces(primitives: Sequence[Primitive], origin, dirs: np.ndarray, hits: Hits) -> SurfaceSample:
    """Hit points, normals facing the origin, texture coordinates and labels for the hits of ``cast_rays``
    (``dirs`` (3, n) as given to it)."""
    origin = np.asarray(origin, dtype=np.float64)
    n = dirs.shape[1]
    points = np.full((3, n), np.nan)
    normals = np.full((3, n), np.nan)
    uv = np.full((2, n), np.nan)
    labels = np.tile(np.array([[-1], [0], [-1]], dtype=np.int64), (1, n))
    hit_rows = np.flatnonzero(hits.mask)
    order = hit_rows[np.argsort(hits.primitive[hit_rows], kind="stable")]
    bounds = np.flatnonzero(np.diff(hits.primitive[order])) + 1
    for rows in np.split(order, bounds):
        if len(rows) == 0:
            continue
        prim = primitives[int(hits.primitive[rows[0]])]
        d = dirs[:, rows]
        p = origin[:, None] + hits.t[rows] * d
        face = hits.face[rows]
        nrm, tex = prim.surface(p, face)
        nrm *= np.where(nrm[0] * d[0] + nrm[1] * d[1] + nrm[2] * d[2] > 0, -1.0, 1.0)
        points[:, rows], normals[:, rows], uv[:, rows] = p, nrm, tex
        labels[:, rows] = prim.labels[face].T
    return SurfaceSample(points, normals, uv, labels[0], labels[1], labels[2])
