"""Dense products for display and transport, from a prediction and its RGB panorama. No ROS here.

Colour images for RViz (semantic overlay, normals), and the point cloud arrays behind ``depth/points``:
camera frame (REP-103), metres, one point per kept pixel.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .geometry import erp_rays
from .labels import colorize_semantic


def semantic_overlay(rgb: np.ndarray, semantic: np.ndarray, alpha: float) -> np.ndarray:
    """RGB uint8 blend: ``alpha`` * ADE20K palette colour + (1 - alpha) * image."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1]; got {alpha}")
    palette = colorize_semantic(semantic).astype(np.float32)
    blended = alpha * palette + (1.0 - alpha) * rgb.astype(np.float32)
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def normals_to_color(normals: np.ndarray) -> np.ndarray:
    """Unit normals (H, W, 3) -> RGB uint8 encoding (n + 1) / 2; invalid (NaN) pixels are black."""
    colour = np.nan_to_num((normals + 1.0) * 127.5, nan=0.0)
    return np.clip(colour + 0.5, 0, 255).astype(np.uint8)


@lru_cache(maxsize=8)
def _decimated_rays(height: int, width: int, step: int) -> np.ndarray:
    rays = erp_rays(height, width, numpy=True)[::step, ::step]
    rays.setflags(write=False)
    return rays


@dataclass
class PointCloudArrays:
    """Points (N, 3) float32 in metres, camera frame; per-point RGB (N, 3) uint8, optional normals and labels."""

    points: np.ndarray
    rgb: np.ndarray
    normals: np.ndarray | None = None
    labels: np.ndarray | None = None


def depth_to_cloud(depth: np.ndarray, rgb: np.ndarray, *, decimation: int = 1, min_range: float = 0.05,
                   max_range: float = 45.0, normals: np.ndarray | None = None,
                   labels: np.ndarray | None = None) -> PointCloudArrays:
    """Radial ERP depth (H, W) -> points on every ``decimation``-th row and column within the range limits.

    The rays are those of the kept pixels' centres, so decimation never shifts a point.
    """
    if decimation < 1:
        raise ValueError(f"decimation must be >= 1; got {decimation}")
    height, width = depth.shape
    rays = _decimated_rays(height, width, decimation)
    d = depth[::decimation, ::decimation]
    with np.errstate(invalid="ignore"):
        keep = np.isfinite(d) & (d >= min_range) & (d <= max_range)
    points = (rays[keep] * d[keep][:, None]).astype(np.float32)

    def pick(image):
        return image[::decimation, ::decimation][keep]

    return PointCloudArrays(
        points=points,
        rgb=pick(rgb),
        normals=None if normals is None else pick(normals).astype(np.float32),
        labels=None if labels is None else pick(labels),
    )


def check_panorama(rgb: np.ndarray, min_height: int, max_width: int) -> None:
    """Raise ValueError naming the problem unless ``rgb`` is a 2:1 uint8 RGB panorama within the size limits."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 panorama (H, W, 3); got {rgb.dtype} {rgb.shape}")
    height, width = rgb.shape[:2]
    if width != 2 * height:
        raise ValueError(f"the image is {width}x{height}, not a 2:1 equirectangular panorama")
    if height < min_height:
        raise ValueError(f"the panorama is {width}x{height}: smaller than the minimum height {min_height}")
    if width > max_width:
        raise ValueError(f"the panorama is {width}x{height}: wider than the maximum width {max_width}")
