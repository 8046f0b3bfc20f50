"""What the SAP node shows, from an instance-id ERP: colour overlay, object points and object centroids. No ROS.

3D outputs are in the 360-degree camera frame (REP-103), metres. Depth, when given, is radial ERP depth (the
dense node's ``depth``; NaN invalid) and is resized (nearest) to the instance image when its size differs;
without depth every point lies at ``default_range`` along its ray (directions only).
"""
from __future__ import annotations

import colorsys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from ...geometry import erp_rays, lonlat_to_erp_pixel
from .fusion import pixel_solid_angles
from .prompts import ObjectPrompts, ray_to_erp_pixel

POSITIVE_COLOUR = (0, 255, 0)
NEGATIVE_COLOUR = (255, 0, 0)


def instance_colours(count: int) -> np.ndarray:
    """RGB uint8 palette (count + 1, 3): id 0 black, then well-separated hues (golden-ratio steps)."""
    palette = np.zeros((count + 1, 3), np.uint8)
    for i in range(1, count + 1):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.75, 1.0)
        palette[i] = (round(r * 255), round(g * 255), round(b * 255))
    return palette


def instance_overlay(rgb: np.ndarray, instances: np.ndarray, alpha: float,
                     objects: Sequence[ObjectPrompts] = ()) -> np.ndarray:
    """RGB uint8: objects blended in their palette colour with weight ``alpha``; clicks drawn as dots
    (green positive, red negative) and boxes as outlines."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1]; got {alpha}")
    palette = instance_colours(int(instances.max()))
    colour = palette[instances]
    blended = cv2.addWeighted(colour, alpha, np.ascontiguousarray(rgb), 1.0 - alpha, 0.0)
    out = np.where((instances > 0)[..., None], blended, rgb)
    height, width = instances.shape
    radius = max(2, height // 150)
    for obj in objects:
        for point in obj.points:
            x, y = ray_to_erp_pixel(point.ray, height, width)
            cv2.circle(out, (int(x), int(y)), radius, POSITIVE_COLOUR if point.positive else NEGATIVE_COLOUR, -1)
        if obj.box is not None:
            box = obj.box
            x0, y0 = lonlat_to_erp_pixel(box.lon_left, box.lat_top, height, width)
            _, y1 = lonlat_to_erp_pixel(box.lon_left, box.lat_bottom, height, width)
            x1 = x0 + box.lon_span * width / (2 * np.pi)  # unwrapped: may pass the right border
            for shift in (0, -width):  # a box across the seam is drawn on both sides
                cv2.rectangle(out, (int(x0) + shift, int(y0)), (int(x1) + shift, int(y1)), POSITIVE_COLOUR,
                              max(1, radius // 2))
    return out


@lru_cache(maxsize=4)
def _rays(height: int, width: int, step: int) -> np.ndarray:
    rays = erp_rays(height, width, numpy=True)[::step, ::step]
    rays.setflags(write=False)
    return rays


def _fit_depth(depth: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray | None:
    if depth is None or depth.shape == shape:
        return depth
    return cv2.resize(depth, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


@dataclass
class ObjectCloud:
    """Unorganised points (N, 3) float32 of the segmented objects, their RGB (N, 3) uint8 and ids (N,) uint16."""

    points: np.ndarray
    rgb: np.ndarray
    labels: np.ndarray


def object_cloud(instances: np.ndarray, rgb: np.ndarray, depth: np.ndarray | None = None, *, decimation: int = 2,
                 max_range: float = 45.0, default_range: float = 1.0) -> ObjectCloud:
    """Points of every pixel with an id on each ``decimation``-th row and column; pixels with invalid or too
    distant depth are dropped. Without ``depth`` the points lie at ``default_range`` (directions)."""
    if decimation < 1:
        raise ValueError(f"decimation must be >= 1; got {decimation}")
    height, width = instances.shape
    ids = instances[::decimation, ::decimation]
    keep = ids > 0
    depth = _fit_depth(depth, (height, width))
    if depth is None:
        ranges = np.full(ids.shape, default_range, np.float32)
    else:
        ranges = depth[::decimation, ::decimation].astype(np.float32)
        with np.errstate(invalid="ignore"):
            keep &= (ranges > 0) & (ranges <= max_range)  # False for NaN
    rays = _rays(height, width, decimation)
    return ObjectCloud(points=(rays[keep] * ranges[keep][:, None]).astype(np.float32),
                       rgb=rgb[::decimation, ::decimation][keep], labels=ids[keep].astype(np.uint16))


def object_centroids(instances: np.ndarray, depth: np.ndarray | None = None,
                     default_range: float = 1.0) -> dict[int, np.ndarray]:
    """Per object id: a 3D anchor (3,) in metres along its mean direction (solid-angle weighted, so seam and
    pole objects are not pulled astray), at its median valid depth or ``default_range``."""
    height, width = instances.shape
    step = max(1, height // 256)
    ids = instances[::step, ::step]
    rays = _rays(height, width, step)
    weights = pixel_solid_angles(height)[::step][:, None] * np.ones((1, ids.shape[1]))
    depth = _fit_depth(depth, (height, width))
    depth = None if depth is None else depth[::step, ::step]
    anchors = {}
    for object_id in np.unique(ids[ids > 0]).tolist():
        mask = ids == object_id
        direction = (rays[mask] * weights[mask][:, None]).sum(axis=0)
        norm = np.linalg.norm(direction)
        direction = direction / norm if norm > 1e-12 else rays[mask][0]
        distance = default_range
        if depth is not None:
            valid = depth[mask]
            valid = valid[np.isfinite(valid) & (valid > 0)]
            if len(valid):
                distance = float(np.median(valid))
        anchors[object_id] = (direction * distance).astype(np.float64)
    return anchors
