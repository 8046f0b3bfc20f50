"""Whole-panorama operations: yaw rotation, normals from depth, seam- and pole-aware connected components."""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from .sphere import check_erp_size, erp_depth_to_points, erp_rays


def rotate_erp_yaw(erp: np.ndarray, yaw: float) -> np.ndarray:
    """Turn the panorama so that the new image centre shows longitude ``yaw`` (radians, positive right).

    Works on (H, W) or (H, W, C) arrays; a whole-pixel shift is exact, a fractional one interpolates linearly
    between neighbouring columns (wrapping around the seam). Vector values (normals) are not rotated.
    """
    check_erp_size(*erp.shape[:2])
    width = erp.shape[1]
    shift = yaw * width / (2.0 * math.pi)
    whole = math.floor(shift)
    frac = shift - whole
    left = np.roll(erp, -whole, axis=1)
    if frac < 1e-9:
        return left
    right = np.roll(erp, -whole - 1, axis=1)
    return ((1.0 - frac) * left + frac * right).astype(erp.dtype if erp.dtype.kind == "f" else np.float32)


def normals_from_depth(depth: np.ndarray) -> np.ndarray:
    """Unit normals (H, W, 3) in the camera frame, facing the camera, from radial ERP depth (H, W) in metres.

    Central differences on the 3D points (wrapping across the seam); NaN where a neighbour is invalid.
    """
    points = erp_depth_to_points(depth.astype(np.float64))
    d_lon = np.roll(points, -1, axis=1) - np.roll(points, 1, axis=1)
    d_lat = np.empty_like(points)
    d_lat[1:-1] = points[2:] - points[:-2]
    d_lat[0] = points[1] - points[0]
    d_lat[-1] = points[-1] - points[-2]
    normals = np.cross(d_lat, d_lon)
    norm = np.linalg.norm(normals, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        normals = normals / norm
    rays = erp_rays(*depth.shape, numpy=True)
    facing = np.sum(normals * rays, axis=-1, keepdims=True)
    normals = np.where(facing > 0, -normals, normals)
    return normals.astype(np.float32)


def erp_connected_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Label 8-connected components of a boolean ERP mask, joining across the seam and over the poles.

    Returns ``(labels, count)`` like ``scipy.ndimage.label``: int32 labels 1..count, 0 outside the mask.
    """
    mask = np.asarray(mask, dtype=bool)
    height, width = mask.shape
    check_erp_size(height, width)
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return labels.astype(np.int32), 0
    parent = np.arange(count + 1)

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def join(a_labels, b_labels):
        both = (a_labels > 0) & (b_labels > 0)
        for a, b in set(zip(a_labels[both].tolist(), b_labels[both].tolist())):
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)

    last, first = labels[:, -1], labels[:, 0]
    for offset in (-1, 0, 1):  # 8-connectivity across the seam
        join(last, np.roll(first, offset))
    half = width // 2
    for row in (0, height - 1):  # over a pole: column u touches column u + W/2 (and its neighbours)
        for offset in (-1, 0, 1):
            join(labels[row], np.roll(labels[row], half + offset))
    roots = np.array([find(i) for i in range(count + 1)])
    unique_roots, compact = np.unique(roots, return_inverse=True)
    relabel = compact.astype(np.int32)  # root 0 (background) maps to 0 since label 0 is its own root
    return relabel[labels], len(unique_roots) - 1
