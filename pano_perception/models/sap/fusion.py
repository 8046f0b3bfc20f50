"""Back from the views to the panorama: per-pixel max fusion (SAP eq. 5), instance ids, spherical areas.

Per-view mask probabilities are written into the ERP with ``geometry.p2e(..., reduce="max")`` (bilinear inside
each view, only where the view sees the pixel); pixels no view covers get probability 0. Several objects become
one instance-id image by a per-pixel arg-max over the objects above the threshold (ties go to the more probable
object). Areas and IoUs are spherical: each ERP pixel counts with its solid angle, so the stretched rows near
the poles do not dominate.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
import torch

from ...geometry import PerspectiveView, erp_connected_components, p2e

#: Height at which segment-everything compares masks for de-duplication (spherical IoU, area-averaged).
IOU_HEIGHT = 256


def fuse_views(probabilities: torch.Tensor, views: Sequence[PerspectiveView], erp_height: int) -> torch.Tensor:
    """Probabilities (N, K, h, w) in [0, 1] of K objects in N views -> fused (K, H, W) by per-pixel max."""
    fused, _ = p2e(probabilities, views, erp_height, mode="bilinear", reduce="max", fill=0.0, edge_margin=0.0)
    return fused


class InstanceCanvas:
    """The instance-id image being assembled: per pixel the most probable object at or above ``threshold``."""

    def __init__(self, height: int, width: int, threshold: float, device="cpu"):
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1]; got {threshold}")
        self.threshold = threshold
        self.best = torch.zeros((height, width), dtype=torch.float32, device=device)
        self.ids = torch.zeros((height, width), dtype=torch.int32, device=device)

    def add(self, object_id: int, probability: torch.Tensor) -> None:
        """Claim the pixels where ``probability`` (H, W) reaches the threshold and beats the current owner."""
        if not 1 <= object_id <= 65535:
            raise ValueError(f"instance ids are 1..65535; got {object_id}")
        take = (probability >= self.threshold) & (probability > self.best)
        self.best = torch.where(take, probability, self.best)
        self.ids = torch.where(take, torch.as_tensor(object_id, dtype=torch.int32, device=self.ids.device), self.ids)

    def result(self, min_component_px: int = 0) -> np.ndarray:
        """The (H, W) uint16 id image; components smaller than ``min_component_px`` pixels (seam and pole aware)
        are cleared."""
        ids = self.ids.cpu().numpy().astype(np.uint16)
        if min_component_px > 0:
            for object_id in np.unique(ids[ids > 0]):
                mask = ids == object_id
                ids[mask & ~drop_small_components(mask, min_component_px)] = 0
        return ids


    def mean_probabilities(self, ids: np.ndarray) -> dict[int, float]:
        """Mean fused probability of each id present in ``ids`` (the result), over the pixels it owns."""
        flat = ids.ravel().astype(np.int64)
        sums = np.bincount(flat, weights=self.best.cpu().numpy().ravel().astype(np.float64))
        counts = np.bincount(flat)
        return {int(i): float(sums[i] / counts[i]) for i in np.flatnonzero(counts) if i > 0}


def drop_small_components(mask: np.ndarray, min_px: int) -> np.ndarray:
    """``mask`` without its connected components (joined across the seam and the poles) under ``min_px`` px."""
    labels, count = erp_connected_components(mask)
    if count == 0:
        return mask
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    keep = sizes >= min_px
    keep[0] = False
    return keep[labels]


def pixel_solid_angles(height: int) -> np.ndarray:
    """Fraction of the sphere covered by one ERP pixel in each row (height,); a full row sums to its band."""
    edges = math.pi / 2.0 - np.arange(height + 1) * math.pi / height
    band = (np.sin(edges[:-1]) - np.sin(edges[1:])) / 2.0  # fraction of the sphere between the row's edges
    return band / (2 * height)


def spherical_area(mask: np.ndarray) -> float:
    """Fraction of the sphere covered by an (H, W) boolean or fractional ERP mask."""
    return float(np.asarray(mask, dtype=np.float64).sum(axis=1) @ pixel_solid_angles(mask.shape[0]))


def spherical_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Solid-angle weighted IoU of two (H, W) masks (boolean, or fractional: min / max); 0 when both are empty."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    union = spherical_area(np.maximum(a, b))
    return spherical_area(np.minimum(a, b)) / union if union > 0 else 0.0


def coarse_mask(mask: np.ndarray, height: int = IOU_HEIGHT) -> np.ndarray:
    """Area-averaged float32 copy of an ERP mask at most ``height`` rows high (for fast spherical IoUs)."""
    mask = np.asarray(mask, dtype=np.float32)
    if mask.shape[0] <= height:
        return mask
    return cv2.resize(mask, (2 * height, height), interpolation=cv2.INTER_AREA)
