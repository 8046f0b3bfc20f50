"""Back from the views to the panorama: per-pixel max fusion (SAP eq. 5), instance ids, spherical areas.

Per-view mask probabilities are written into the ERP with ``geometry.p2e(..., reduce="max")`` (bilinear inside
each view, only where the view sees the pixel); pixels no view covers get probability 0. Several objects become
one instance-id image by a per-pixel arg-max over the objects above the threshold (ties go to the more probable
object). Areas and IoUs are spherical: each ERP pixel counts with its solid angle, so the stretched rows near
the poles do not dominate.

The segmenter fuses each object only inside its ``ErpWindow`` (the rows and the run of columns, wrapping around
the seam, where it reaches the threshold): ``fuse_windows`` samples every view once for all of its objects,
``InstanceCanvas.add`` and the small-component cleanup then work on that window alone. The values there are
those of ``fuse_views`` (the same cached P2E windows and samples).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from ...geometry import PerspectiveView, erp_connected_components, p2e
from ...geometry.projection import longest_circular_run, p2e_windows

#: Height at which segment-everything compares masks for de-duplication (spherical IoU, area-averaged).
IOU_HEIGHT = 256


def fuse_views(probabilities: torch.Tensor, views: Sequence[PerspectiveView], erp_height: int) -> torch.Tensor:
    """Probabilities (N, K, h, w) in [0, 1] of K objects in N views -> fused (K, H, W) by per-pixel max."""
    fused, _ = p2e(probabilities, views, erp_height, mode="bilinear", reduce="max", fill=0.0, edge_margin=0.0)
    return fused


@dataclass(frozen=True)
class ErpWindow:
    """A rectangle of an ERP of ``height`` x ``width``: ``rows`` and ``count`` columns from ``start``, wrapping
    around the seam (column ``width - 1`` is followed by column 0). Crops are (rows, count) arrays or tensors."""

    height: int
    width: int
    rows: slice
    start: int = 0
    count: int = 0

    @classmethod
    def full(cls, height: int, width: int) -> "ErpWindow":
        return cls(height, width, slice(0, height), 0, width)

    @classmethod
    def covering(cls, height: int, width: int, pieces: Sequence[tuple[slice, slice]]) -> "ErpWindow":
        """The smallest window holding every (rows, contiguous ERP columns) piece: rows from the first to the
        last, the columns outside the longest run (around the circle) that no piece touches."""
        pieces = [(r, c) for r, c in pieces if r.stop > r.start and c.stop > c.start]
        if not pieces:
            return cls(height, width, slice(0, 0))
        rows = slice(min(r.start for r, _ in pieces), max(r.stop for r, _ in pieces))
        used = np.zeros(width, dtype=bool)
        for _, cols in pieces:
            used[cols] = True
        if used.all():
            return cls(height, width, rows, 0, width)
        gap, gap_end = longest_circular_run(~used)  # the window starts where the longest unused run ends
        return cls(height, width, rows, gap_end % width, width - gap)

    @property
    def shape(self) -> tuple[int, int]:
        return self.rows.stop - self.rows.start, self.count

    @property
    def is_empty(self) -> bool:
        return self.shape[0] <= 0 or self.count <= 0

    def runs(self) -> list[tuple[slice, slice]]:
        """(window columns, ERP columns) of the one or two contiguous pieces of the window."""
        first = min(self.count, self.width - self.start)
        pieces = [(slice(0, first), slice(self.start, self.start + first))]
        if first < self.count:
            pieces.append((slice(first, self.count), slice(0, self.count - first)))
        return pieces if self.count > 0 else []

    def columns(self, cols: slice) -> slice:
        """Window columns of a contiguous run of ERP columns that lies inside the window."""
        offset = (cols.start - self.start) % self.width
        return slice(offset, offset + cols.stop - cols.start)

    def crop(self, erp):
        """The window of an (H, W) array or tensor (a view when it does not cross the seam)."""
        parts = [erp[self.rows, cols] for _, cols in self.runs()] or [erp[self.rows, 0:0]]
        if len(parts) == 1:
            return parts[0]
        if isinstance(erp, np.ndarray):
            return np.concatenate(parts, axis=1)
        return torch.cat(parts, dim=1)

    def paste(self, crop, erp) -> None:
        """Write a crop into its window of ``erp`` (in place)."""
        for window_cols, cols in self.runs():
            erp[self.rows, cols] = crop[:, window_cols]

    def row_weights(self) -> np.ndarray:
        """Solid angle of one pixel in each of the window's rows (see ``pixel_solid_angles``)."""
        return pixel_solid_angles(self.height)[self.rows]


def fuse_windows(probabilities: torch.Tensor, views: Sequence[PerspectiveView], erp_height: int,
                 active: np.ndarray, threshold: float, *, groups: Sequence[Sequence[int]] | None = None,
                 device="cpu") -> list[tuple[ErpWindow, torch.Tensor]]:
    """Per-pixel max fusion of K objects over the views ``active`` (N, K) marks, where it reaches ``threshold``.

    ``probabilities`` (N, K, h, w): uint8 (steps of 1/255) or float in [0, 1]. Returns per object the window
    holding every ERP pixel whose fused probability reaches ``threshold`` (empty when none does) and its float32
    crop: at those pixels exactly ``fuse_views`` of the active views; elsewhere a lower bound (below the
    threshold). Each view is sampled once for all of its active objects through its cached P2E windows (row
    bands for the polar views); only the parts of a band where an object reaches the threshold are kept.
    ``groups`` partitions the view indices into the sets whose P2E windows are built and cached together
    (default: all views at once).
    """
    height, width = erp_height, 2 * erp_height
    device = torch.device(device)
    active = np.asarray(active, dtype=bool)
    by_view: dict[int, list] = {}  # view index -> its cached P2E windows
    for group in (groups if groups is not None else [range(len(views))]):
        group = [int(i) for i in group]
        if active[group].any():
            for win in p2e_windows(height, width, tuple(views[i] for i in group), 0.0, device, torch.float32):
                by_view.setdefault(group[win.view_index], []).append(win)
    pieces: list[list] = [[] for _ in range(active.shape[1])]  # per object: (rows, cols, values, valid)
    for view in np.flatnonzero(active.any(axis=1)):
        objects = np.flatnonzero(active[view])
        data = probabilities[int(view), torch.as_tensor(objects)].to(device, torch.float32)
        if not probabilities.is_floating_point():
            data = data / 255.0
        for win in by_view[int(view)]:
            sampled = F.grid_sample(data[None], win.grid, mode="bilinear", padding_mode="border",
                                    align_corners=False)[0]  # (objects of the view, hh, ww)
            reaches = (sampled.amax(dim=(-2, -1)) >= threshold).tolist()
            for channel in np.flatnonzero(reaches):
                above = (sampled[channel] >= threshold) & win.valid
                rows = torch.nonzero(above.any(dim=1)).flatten().tolist()
                if not rows:
                    continue
                cols = torch.nonzero(above.any(dim=0)).flatten().tolist()
                r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
                pieces[objects[channel]].append((
                    slice(win.rows.start + r0, win.rows.start + r1), slice(win.cols.start + c0, win.cols.start + c1),
                    sampled[channel, r0:r1, c0:c1].clone(), win.valid[r0:r1, c0:c1]))
    fused = []
    for object_pieces in pieces:
        region = ErpWindow.covering(height, width, [(rows, cols) for rows, cols, _, _ in object_pieces])
        values = torch.zeros(region.shape, dtype=torch.float32, device=device)
        for rows, cols, sampled, valid in object_pieces:
            current = values[rows.start - region.rows.start:rows.stop - region.rows.start, region.columns(cols)]
            current.copy_(torch.where(valid, torch.maximum(current, sampled), current))
        fused.append((region, values))
    return fused


class InstanceCanvas:
    """The instance-id image being assembled: per pixel the most probable object at or above ``threshold``."""

    def __init__(self, height: int, width: int, threshold: float, device="cpu"):
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1]; got {threshold}")
        self.threshold = threshold
        self.best = torch.zeros((height, width), dtype=torch.float32, device=device)
        self.ids = torch.zeros((height, width), dtype=torch.int32, device=device)
        self._windows: dict[int, ErpWindow] = {}  # where each added object may own pixels

    def add(self, object_id: int, probability: torch.Tensor, window: ErpWindow | None = None) -> None:
        """Claim the pixels where ``probability`` reaches the threshold and beats the current owner.

        ``probability`` is (H, W), or the crop of ``window`` (of its ``shape``): then only the window is visited.
        """
        if not 1 <= object_id <= 65535:
            raise ValueError(f"instance ids are 1..65535; got {object_id}")
        height, width = self.ids.shape
        window = ErpWindow.full(height, width) if window is None else window
        if tuple(probability.shape) != window.shape:
            raise ValueError(f"probability of shape {tuple(probability.shape)} for a window of {window.shape}")
        if window.is_empty:
            return
        known = self._windows.get(object_id)
        self._windows[object_id] = window if known in (None, window) else ErpWindow.full(height, width)
        value = torch.as_tensor(object_id, dtype=torch.int32, device=self.ids.device)
        for window_cols, cols in window.runs():
            candidate = probability[:, window_cols]
            best, ids = self.best[window.rows, cols], self.ids[window.rows, cols]  # views: updated in place
            take = (candidate >= self.threshold) & (candidate > best)
            best.copy_(torch.where(take, candidate, best))
            ids.copy_(torch.where(take, value, ids))

    def result(self, min_component_px: int = 0) -> np.ndarray:
        """The (H, W) uint16 id image; components smaller than ``min_component_px`` pixels (seam and pole aware)
        are cleared."""
        ids = self.ids.cpu().numpy().astype(np.uint16)
        if min_component_px > 0:
            for object_id, window in self._windows.items():  # an object owns pixels only inside its window
                crop = window.crop(ids)
                mask = crop == object_id
                if mask.any():
                    window.paste(np.where(mask & ~drop_small_components(mask, min_component_px, window), 0, crop),
                                 ids)
        return ids

    def mean_probabilities(self, ids: np.ndarray) -> dict[int, float]:
        """Mean fused probability of each id present in ``ids`` (the result), over the pixels it owns."""
        owned = ids > 0
        flat = ids[owned].astype(np.int64)
        sums = np.bincount(flat, weights=self.best.cpu().numpy()[owned].astype(np.float64))
        counts = np.bincount(flat)
        return {int(i): float(sums[i] / counts[i]) for i in np.flatnonzero(counts) if i > 0}


def drop_small_components(mask: np.ndarray, min_px: int, window: ErpWindow | None = None) -> np.ndarray:
    """``mask`` without its connected components (joined across the seam and the poles) under ``min_px`` px.

    With a ``window``, ``mask`` is that window's crop of an ERP mask that is empty outside it; the crop is
    labelled alone (the ERP's neighbours, seam included, are the crop's) unless the window spans every column or
    the mask reaches a pole row, where the whole ERP is labelled.
    """
    if window is not None:
        if not mask.any():
            return mask
        height, width = window.height, window.width
        alone = window.count < width
        alone &= window.rows.start > 0 or not mask[0].any()
        alone &= window.rows.stop < height or not mask[-1].any()
        if not alone:
            full = np.zeros((height, width), dtype=bool)
            window.paste(mask, full)
            return window.crop(drop_small_components(full, min_px))
        labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    else:
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
