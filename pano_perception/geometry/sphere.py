"""ERP pixels <-> (lon, lat) <-> unit rays in the 360-degree camera frame (REP-103: x fwd, y left, z up).

Every function works on numpy arrays and on torch tensors (the result has the input's type, device and dtype).
Conventions (docs/CONVENTIONS.md): pixel centres at half-integers; lon in [-pi, pi) grows to the right with
lon = 0 straight ahead and the seam straight behind; lat in [-pi/2, pi/2] grows upwards.
"""
from __future__ import annotations

import math

import numpy as np
import torch

Array = np.ndarray | torch.Tensor


def _is_torch(a) -> bool:
    return isinstance(a, torch.Tensor)


def _stack(parts, axis=-1):
    return torch.stack(parts, dim=axis) if _is_torch(parts[0]) else np.stack(parts, axis=axis)


def _atan2(y, x):
    return torch.atan2(y, x) if _is_torch(y) else np.arctan2(y, x)


def _asin_clamped(a):
    return torch.asin(a.clamp(-1.0, 1.0)) if _is_torch(a) else np.arcsin(np.clip(a, -1.0, 1.0))


def _cos(a):
    return torch.cos(a) if _is_torch(a) else np.cos(a)


def _sin(a):
    return torch.sin(a) if _is_torch(a) else np.sin(a)


def check_erp_size(height: int, width: int) -> None:
    """Raise ValueError unless (height, width) is a 2:1 equirectangular size."""
    if height < 2 or width != 2 * height:
        raise ValueError(f"an equirectangular image must be 2:1 (width = 2 x height); got {width}x{height}")


def erp_pixel_to_lonlat(x: Array, y: Array, height: int, width: int) -> tuple[Array, Array]:
    """Continuous ERP pixel coordinates (x = column, y = row; pixel centres at +0.5) -> (lon, lat) in radians."""
    lon = x * (2.0 * math.pi / width) - math.pi
    lat = math.pi / 2 - y * (math.pi / height)
    return lon, lat


def lonlat_to_erp_pixel(lon: Array, lat: Array, height: int, width: int) -> tuple[Array, Array]:
    """(lon, lat) in radians -> continuous ERP pixel coordinates (x, y); x is wrapped into [0, width)."""
    x = (lon + math.pi) * (width / (2.0 * math.pi))
    x = x % width
    y = (math.pi / 2 - lat) * (height / math.pi)
    return x, y


def lonlat_to_ray(lon: Array, lat: Array) -> Array:
    """(lon, lat) -> unit ray (..., 3) in the camera frame: (cos lat cos lon, -cos lat sin lon, sin lat)."""
    cos_lat = _cos(lat)
    return _stack([cos_lat * _cos(lon), -cos_lat * _sin(lon), _sin(lat)])


def ray_to_lonlat(ray: Array) -> tuple[Array, Array]:
    """Rays (..., 3) in the camera frame (need not be unit) -> (lon, lat) in radians."""
    x, y, z = ray[..., 0], ray[..., 1], ray[..., 2]
    norm = (ray * ray).sum(-1) ** 0.5
    return _atan2(-y, x), _asin_clamped(z / norm)


def erp_rays(height: int, width: int, *, device=None, dtype=None, numpy: bool = False) -> Array:
    """Unit rays (height, width, 3) through the ERP pixel centres, camera frame.

    Returns a float32 numpy array when ``numpy`` is true, else a torch tensor on ``device``.
    """
    check_erp_size(height, width)
    if numpy:
        x = np.arange(width, dtype=np.float64) + 0.5
        y = np.arange(height, dtype=np.float64) + 0.5
        lon, lat = erp_pixel_to_lonlat(x[None, :], y[:, None], height, width)
        lon, lat = np.broadcast_arrays(lon, lat)
        return lonlat_to_ray(lon, lat).astype(np.float32)
    dtype = dtype or torch.float32
    x = torch.arange(width, device=device, dtype=torch.float64) + 0.5
    y = torch.arange(height, device=device, dtype=torch.float64) + 0.5
    lon, lat = erp_pixel_to_lonlat(x[None, :], y[:, None], height, width)
    lon, lat = torch.broadcast_tensors(lon, lat)
    return lonlat_to_ray(lon, lat).to(dtype)


def erp_depth_to_points(depth: Array) -> Array:
    """Radial ERP depth (H, W) in metres -> 3D points (H, W, 3) in the camera frame (NaN stays NaN)."""
    height, width = depth.shape[-2:]
    if _is_torch(depth):
        rays = erp_rays(height, width, device=depth.device, dtype=depth.dtype)
    else:
        rays = erp_rays(height, width, numpy=True).astype(depth.dtype if depth.dtype.kind == "f" else np.float32)
    return rays * depth[..., None]
