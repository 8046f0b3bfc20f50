"""Auxiliary labels of MTPano (appendix A.3), vectorised in torch: image gradient, edge distance field, point maps.

All maps are ERP-shaped ``[B, C, H, W]`` on the device of their input.

* Image gradient: Sobel ``(G_x, G_y)`` of the grey image (circular padding across the seam, replicated at the
  poles, as the release's ``aux_label_generator.py``); magnitude ``M = sqrt(G_x² + G_y²)`` and direction
  ``Φ = atan2(G_y, G_x)`` (radians). The 2-channel ``grad`` head is supervised with ``(G_x, G_y)``, which holds M and
  Φ without the 2π wrap of Φ.
* Edge distance field (EDF): edges are the pixels whose gradient magnitude exceeds its ``τ = 0.99`` quantile, the
  image border cleared; distances in pixels to the nearest edge by the Jump Flooding Algorithm (Rong & Tan 2006)
  with steps N/2, ..., 1 followed by two refinement passes (2, 1: "JFA+2"); the ``sdf`` head learns
  ``log(1 + distance)``.
* Metric point maps: ``P = D · r`` (radial depth times the unit ray), stored on disk as int16 millimetres per axis
  (``(0, 0, 0)`` = invalid; beyond ±32.767 m is invalid too).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from pano_perception.geometry import erp_rays

GREY_WEIGHTS = (0.299, 0.587, 0.114)
EDGE_QUANTILE = 0.99
EDGE_BORDER_PX = 2
POINT_MM_LIMIT = 32767
_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def grey(rgb: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] RGB in [0, 1] -> [B, 1, H, W] luma (ITU-R BT.601 weights)."""
    weights = torch.tensor(GREY_WEIGHTS, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return (rgb * weights).sum(1, keepdim=True)


def sobel(image: torch.Tensor) -> torch.Tensor:
    """[B, 1, H, W] -> [B, 2, H, W] Sobel (G_x, G_y): x to the right, y down; wraps across the seam."""
    padded = torch.cat([image[..., -1:], image, image[..., :1]], dim=-1)
    padded = F.pad(padded, (0, 0, 1, 1), mode="replicate")
    kx = _SOBEL_X.to(image)
    kernels = torch.stack([kx, kx.T])[:, None]
    return F.conv2d(padded, kernels)


def gradient_magnitude_direction(gradient: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, 2, H, W] (G_x, G_y) -> magnitude [B, 1, H, W] and direction ``atan2(G_y, G_x)`` in radians [B, 1, H, W]."""
    gx, gy = gradient[:, :1], gradient[:, 1:]
    return torch.sqrt(gx * gx + gy * gy), torch.atan2(gy, gx)


def edge_mask(magnitude: torch.Tensor, quantile: float = EDGE_QUANTILE, border: int = EDGE_BORDER_PX) -> torch.Tensor:
    """[B, 1, H, W] gradient magnitude -> [B, H, W] bool edges (at or above the per-image ``quantile``, non-zero),
    border cleared."""
    flat = magnitude.flatten(1)
    threshold = torch.quantile(flat, quantile, dim=1).view(-1, 1, 1)
    edges = (magnitude[:, 0] >= threshold) & (magnitude[:, 0] > 0)
    if border > 0:
        edges[:, :border] = False
        edges[:, -border:] = False
        edges[:, :, :border] = False
        edges[:, :, -border:] = False
    return edges


def _shift(field: torch.Tensor, dy: int, dx: int, fill: float) -> torch.Tensor:
    """``out[..., y, x] = field[..., y + dy, x + dx]``, ``fill`` outside the image."""
    height, width = field.shape[-2:]
    out = torch.full_like(field, fill)
    if abs(dy) >= height or abs(dx) >= width:
        return out
    ys, yd = slice(max(dy, 0), height + min(dy, 0)), slice(max(-dy, 0), height + min(-dy, 0))
    xs, xd = slice(max(dx, 0), width + min(dx, 0)), slice(max(-dx, 0), width + min(-dx, 0))
    out[..., yd, xd] = field[..., ys, xs]
    return out


def jump_flood(seeds: torch.Tensor) -> torch.Tensor:
    """Nearest-seed coordinates by jump flooding: [B, H, W] bool seeds -> [B, 2, H, W] (row, column) of the
    nearest seed found (float; ``inf`` where the image has no seed at all). Pixel distances are Euclidean."""
    batch, height, width = seeds.shape
    device = seeds.device
    rows = torch.arange(height, device=device, dtype=torch.float32).view(1, height, 1).expand(batch, height, width)
    cols = torch.arange(width, device=device, dtype=torch.float32).view(1, 1, width).expand(batch, height, width)
    here = torch.stack([rows, cols], dim=1)
    nearest = torch.where(seeds[:, None], here, torch.full_like(here, math.inf))
    best = ((nearest - here) ** 2).sum(1)
    steps = []
    step = 1 << max(0, math.ceil(math.log2(max(height, width))) - 1)
    while step >= 1:
        steps.append(step)
        step //= 2
    for step in steps + [2, 1]:
        for dy in (-step, 0, step):
            for dx in (-step, 0, step):
                if dy == 0 and dx == 0:
                    continue
                candidate = _shift(nearest, dy, dx, math.inf)
                distance = ((candidate - here) ** 2).sum(1)
                better = distance < best
                best = torch.where(better, distance, best)
                nearest = torch.where(better[:, None], candidate, nearest)
    return nearest


def distance_to_seeds(seeds: torch.Tensor) -> torch.Tensor:
    """[B, H, W] bool seeds -> [B, H, W] Euclidean distance in pixels to the nearest seed (JFA); an image without
    seeds gets its diagonal length everywhere."""
    nearest = jump_flood(seeds)
    height, width = seeds.shape[-2:]
    rows = torch.arange(height, device=seeds.device, dtype=torch.float32).view(height, 1)
    cols = torch.arange(width, device=seeds.device, dtype=torch.float32).view(1, width)
    distance = torch.sqrt((nearest[:, 0] - rows) ** 2 + (nearest[:, 1] - cols) ** 2)
    return torch.nan_to_num(distance, nan=math.hypot(height, width), posinf=math.hypot(height, width))


def image_aux_targets(rgb: torch.Tensor) -> dict[str, torch.Tensor]:
    """Targets of the image-derived heads for [B, 3, H, W] RGB in [0, 1]: ``grad`` [B, 2, H, W] = (G_x, G_y) and
    ``sdf`` [B, 1, H, W] = log(1 + EDF in pixels)."""
    gradient = sobel(grey(rgb.float()))
    magnitude, _ = gradient_magnitude_direction(gradient)
    distance = distance_to_seeds(edge_mask(magnitude))
    return {"grad": gradient, "sdf": torch.log1p(distance)[:, None]}


def points_from_depth(depth: torch.Tensor) -> torch.Tensor:
    """Radial depth [..., H, W] in metres (NaN invalid) -> points [..., 3, H, W] in our camera frame (NaN stays NaN)."""
    height, width = depth.shape[-2:]
    rays = erp_rays(height, width, device=depth.device, dtype=depth.dtype).permute(2, 0, 1)
    return depth.unsqueeze(-3) * rays


def encode_points_mm(points: np.ndarray) -> np.ndarray:
    """Points (..., 3) in metres (NaN invalid) -> int16 millimetres; invalid or out of ±32.767 m -> (0, 0, 0)."""
    mm = np.round(np.nan_to_num(points, nan=np.inf) * 1000.0)
    ok = np.all(np.abs(mm) <= POINT_MM_LIMIT, axis=-1, keepdims=True)
    return np.where(ok, mm, 0).astype(np.int16)


def decode_points_mm(points_mm: np.ndarray) -> np.ndarray:
    """int16 millimetres (..., 3) -> float32 metres, NaN where the point is (0, 0, 0)."""
    metres = points_mm.astype(np.float32) / 1000.0
    return np.where(np.any(points_mm != 0, axis=-1, keepdims=True), metres, np.nan).astype(np.float32)
