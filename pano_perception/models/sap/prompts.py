"""Prompts on the sphere and their projection into the scan's views (SAP eq. 4).

A prompt is stored as a direction (a unit ray in the 360-degree camera frame, REP-103), so it does not depend on
the resolution of the panorama it was clicked on. ERP pixel prompts use continuous coordinates (pixel centres at
+0.5, docs/CONVENTIONS.md). A ray is visible in a view when it is in front of the camera and inside the frame.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ...geometry import PerspectiveView, erp_pixel_to_lonlat, lonlat_to_erp_pixel, lonlat_to_ray, ray_to_lonlat

POSITIVE, NEGATIVE = 1, 0  # SAM's point labels

#: Pixels a ray may lie outside a frame's border and still count as visible (floating-point slack).
EDGE_TOLERANCE = 1e-6
#: Samples per side of the lon/lat grid that stands for a box when it is projected into a view.
_BOX_SAMPLES = 17


def _unit(ray) -> np.ndarray:
    ray = np.asarray(ray, dtype=np.float64)
    norm = np.linalg.norm(ray)
    if ray.shape != (3,) or not np.isfinite(norm) or norm < 1e-12:
        raise ValueError(f"a direction needs a finite non-zero 3-vector; got {np.asarray(ray).tolist()}")
    return ray / norm


def erp_pixel_to_ray(x: float, y: float, height: int, width: int) -> np.ndarray:
    """Continuous ERP pixel (x = column, y = row) -> unit ray (3,) in the camera frame.

    Raises ValueError naming the problem when the point is not finite or outside the image.
    """
    if not (math.isfinite(x) and math.isfinite(y)):
        raise ValueError(f"prompt pixel ({x}, {y}) is not finite")
    if not (0.0 <= x < width and 0.0 <= y < height):
        raise ValueError(f"prompt pixel ({x:.1f}, {y:.1f}) is outside the {width}x{height} panorama")
    lon, lat = erp_pixel_to_lonlat(np.float64(x), np.float64(y), height, width)
    return np.asarray(lonlat_to_ray(lon, lat), dtype=np.float64)


@dataclass(frozen=True)
class PointPrompt:
    """A click: unit ``ray`` (3,) in the camera frame; ``positive`` (object) or negative (not the object)."""

    ray: np.ndarray
    positive: bool = True

    def __post_init__(self):
        object.__setattr__(self, "ray", _unit(self.ray))

    @classmethod
    def from_erp_pixel(cls, x: float, y: float, height: int, width: int, positive: bool = True) -> PointPrompt:
        return cls(erp_pixel_to_ray(x, y, height, width), positive)


@dataclass(frozen=True)
class BoxPrompt:
    """A lon/lat box in radians: ``lon_left`` to ``lon_right`` going right (it crosses the seam when
    ``lon_right < lon_left``), ``lat_top`` >= ``lat_bottom``."""

    lon_left: float
    lat_top: float
    lon_right: float
    lat_bottom: float

    def __post_init__(self):
        values = (self.lon_left, self.lat_top, self.lon_right, self.lat_bottom)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"box {values} is not finite")
        if not self.lat_top > self.lat_bottom:
            raise ValueError("a box needs its top above its bottom")

    @classmethod
    def from_erp_pixels(cls, x0: float, y0: float, x1: float, y1: float, height: int, width: int) -> BoxPrompt:
        """Box from ERP pixel corners (x0, y0) top-left and (x1, y1) bottom-right; ``x1 < x0`` crosses the seam."""
        for x, y in ((x0, y0), (x1, y1)):
            erp_pixel_to_ray(x, y, height, width)  # validates
        if not y1 > y0:
            raise ValueError(f"box bottom row {y1} must be below its top row {y0}")
        lon0, lat0 = erp_pixel_to_lonlat(float(x0), float(y0), height, width)
        lon1, lat1 = erp_pixel_to_lonlat(float(x1), float(y1), height, width)
        return cls(lon0, lat0, lon1, lat1)

    @property
    def lon_span(self) -> float:
        return (self.lon_right - self.lon_left) % (2.0 * math.pi)

    def sample_rays(self) -> np.ndarray:
        """Rays (S*S, 3) on a regular lon/lat grid over the box, camera frame."""
        t = np.linspace(0.0, 1.0, _BOX_SAMPLES)
        lon = self.lon_left + t * self.lon_span
        lat = self.lat_top + t * (self.lat_bottom - self.lat_top)
        lon, lat = np.meshgrid(lon, lat)
        return np.asarray(lonlat_to_ray(lon, lat)).reshape(-1, 3)

    @property
    def centre_ray(self) -> np.ndarray:
        lon = self.lon_left + self.lon_span / 2.0
        return np.asarray(lonlat_to_ray(lon, (self.lat_top + self.lat_bottom) / 2.0))


@dataclass
class ObjectPrompts:
    """Everything the user said about one object: clicks (in order) and at most one box."""

    object_id: int
    points: list[PointPrompt] = field(default_factory=list)
    box: BoxPrompt | None = None

    @property
    def anchor_ray(self) -> np.ndarray | None:
        """The direction that picks the scan's start view: the box centre, else the first positive click."""
        if self.box is not None:
            return self.box.centre_ray
        positives = [p.ray for p in self.points if p.positive]
        return positives[0] if positives else None

    @property
    def is_empty(self) -> bool:
        return self.box is None and not any(p.positive for p in self.points)


def project_rays(rays: np.ndarray, views: Sequence[PerspectiveView]) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame rays (K, 3) -> view pixels (N, K, 2) (continuous x, y) and visibility (N, K).

    Visible: in front of the view (z > 0) and inside its frame, x in [0, w] and y in [0, h] give or take
    ``EDGE_TOLERANCE`` pixels (a ray on the shared edge of two views, e.g. a pole, is in both).
    """
    rays = np.asarray(rays, dtype=np.float64).reshape(-1, 3)
    pixels = np.empty((len(views), len(rays), 2))
    visible = np.empty((len(views), len(rays)), dtype=bool)
    for i, view in enumerate(views):
        local = rays @ view.rotation  # row vectors: R^T applied
        x, y, _ = view.project(local)
        pixels[i, :, 0], pixels[i, :, 1] = x, y
        visible[i] = ((local[:, 2] > 1e-9) & (x >= -EDGE_TOLERANCE) & (x <= view.width + EDGE_TOLERANCE)
                      & (y >= -EDGE_TOLERANCE) & (y <= view.height + EDGE_TOLERANCE))
    return pixels, visible


def project_box(box: BoxPrompt, views: Sequence[PerspectiveView]) -> tuple[np.ndarray, np.ndarray]:
    """A lon/lat box -> per-view pixel boxes (N, 4) ``(x0, y0, x1, y1)`` clipped to the frame, and visibility (N,).

    A view gets the box when the whole box is in front of the camera and its centre is visible there; the
    pixel box is the bounding box of the projected box samples, clipped to the frame.
    """
    samples = box.sample_rays()
    boxes = np.zeros((len(views), 4))
    visible = np.zeros(len(views), dtype=bool)
    _, centre_visible = project_rays(box.centre_ray[None], views)
    for i, view in enumerate(views):
        local = samples @ view.rotation
        if not (local[:, 2] > 1e-6).all():
            continue
        x, y, _ = view.project(local)
        boxes[i] = (max(0.0, x.min()), max(0.0, y.min()), min(view.width, x.max()), min(view.height, y.max()))
        visible[i] = centre_visible[i, 0]
    return boxes, visible


def fibonacci_rays(count: int) -> np.ndarray:
    """``count`` near-uniform unit rays (count, 3) on the sphere (spherical Fibonacci lattice), camera frame."""
    if count < 1:
        raise ValueError(f"need at least one Fibonacci point; got {count}")
    i = np.arange(count) + 0.5
    lat = np.arcsin(1.0 - 2.0 * i / count)
    golden = math.pi * (3.0 - math.sqrt(5.0))
    lon = (golden * i + math.pi) % (2.0 * math.pi) - math.pi
    return np.asarray(lonlat_to_ray(lon, lat))


def ray_to_erp_pixel(ray: np.ndarray, height: int, width: int) -> tuple[float, float]:
    """Ray (3,), camera frame -> continuous ERP pixel (x, y)."""
    lon, lat = ray_to_lonlat(np.asarray(ray, dtype=np.float64))
    x, y = lonlat_to_erp_pixel(lon, lat, height, width)
    return float(x), float(y)
