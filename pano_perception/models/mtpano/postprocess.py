"""Pre- and post-processing of MTPano as the official ``inference.py`` does it, in our conventions.

Tensors are batched torch tensors on any device: images [B, 3, H, W], depth [B, H, W], normals [B, 3, H, W].
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import IMAGENET_MEAN, IMAGENET_STD

#: ADE20K-150 id of "sky" (0-based), masked out of depth and normals like the release does.
SKY_ID = 2
#: Depth at or below this (metres) is invalid, as in the release's seam fix.
MIN_VALID_DEPTH = 1e-4
#: The release's seam fix overwrites columns W−2, W−1, 0, 1 from anchors W−3 and 2.
SEAM_MARGIN = 2


def normalise_images(rgb_uint8: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[B, H, W, 3] uint8 RGB → [B, 3, h, w] float32 network input (ImageNet-normalised) at ``size`` = (h, w).

    Resizing is antialiased bilinear with half-pixel centres, rounded to 8-bit levels: PIL's
    ``Image.resize(BILINEAR)`` on uint8, as the release does, within one grey level.
    """
    images = rgb_uint8.permute(0, 3, 1, 2).float()
    if tuple(images.shape[-2:]) != tuple(size):
        images = F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)
        images = images.round().clamp(0, 255)
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    return (images / 255 - mean) / std


def fix_panorama_seam(values: torch.Tensor, valid: torch.Tensor, *, unit_vectors: bool) -> torch.Tensor:
    """The release's ``fix_panorama_seam`` (margin 2) on [B, C, H, W] values.

    Columns W−2, W−1, 0, 1 become (1 − w)·left + w·right with anchors left = column W−3, right = column 2 and
    w = 0.2, 0.4, 0.6, 0.8. Rows whose two anchors are not both ``valid`` ([B, H, W]) get 0 there instead.
    ``unit_vectors`` re-normalises the interpolated vectors (normals).
    """
    width = values.shape[-1]
    left, right = values[..., width - 1 - SEAM_MARGIN], values[..., SEAM_MARGIN]
    rows_ok = (valid[..., width - 1 - SEAM_MARGIN] & valid[..., SEAM_MARGIN]).unsqueeze(1)
    columns = [width - 2, width - 1, 0, 1]
    weights = torch.tensor([0.2, 0.4, 0.6, 0.8], device=values.device, dtype=values.dtype)
    blended = left[..., None] * (1 - weights) + right[..., None] * weights
    if unit_vectors:
        blended = F.normalize(blended, dim=1)
    fixed = values.clone()
    fixed[..., columns] = torch.where(rows_ok[..., None], blended, torch.zeros_like(blended))
    return fixed


def official_normals_to_ours(normals: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] normals of the release's N-space (pointing away from the camera) → our camera frame
    (x forward, y left, z up, pointing towards the camera): ``n_ours = (n_X, n_Z, n_Y)``. See docs/CONVENTIONS.md.
    """
    return normals[:, [0, 2, 1]]


def resize_labels(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[B, H, W] integer ids → ``size`` by nearest neighbour with half-pixel centres (``nearest-exact``)."""
    if tuple(labels.shape[-2:]) == tuple(size):
        return labels
    resized = F.interpolate(labels[:, None].float(), size=size, mode="nearest-exact")
    return resized[:, 0].to(labels.dtype)


def resize_masked(values: torch.Tensor, valid: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Resize [B, C, H, W] values known only where ``valid`` ([B, H, W]) to ``size``, without bleeding.

    Values are bilinear (antialiased when shrinking) averages of valid pixels only (normalised convolution);
    validity is resized by nearest neighbour, like the labels. Returns (values, valid) at ``size``.
    """
    if tuple(values.shape[-2:]) == tuple(size):
        return values, valid
    weight = valid[:, None].to(values.dtype)

    def resize(x):
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)

    total = resize(values * weight)
    coverage = resize(weight)
    resized_valid = resize_labels(valid.to(torch.uint8), size).bool() & (coverage[:, 0] > 0)
    return total / coverage.clamp_min(torch.finfo(values.dtype).tiny), resized_valid


def postprocess(outputs: dict[str, torch.Tensor], size: tuple[int, int]) -> dict[str, torch.Tensor]:
    """Network outputs (model resolution, official frame) → our products at ``size`` = (H, W).

    Returns ``semantic`` [B, H, W] int64 ADE20K ids, ``depth`` [B, H, W] radial metres and ``normals``
    [B, 3, H, W] unit vectors in our camera frame, NaN where invalid (sky, depth ≤ 1e-4, no normal).
    Order as in the release: argmax, sky masking, seam fix (depth and normals, not semantics); then ours:
    resizing and the frame change.
    """
    labels = outputs["semseg"].float().argmax(dim=1)
    sky = labels == SKY_ID
    depth = outputs["depth"].float().masked_fill(sky[:, None], 0.0)
    normals = F.normalize(outputs["normals"].float(), dim=1).masked_fill(sky[:, None], 0.0)

    depth = fix_panorama_seam(depth, depth[:, 0] > MIN_VALID_DEPTH, unit_vectors=False)
    normals = fix_panorama_seam(normals, normals.abs().amax(dim=1) > 0, unit_vectors=True)

    depth, depth_valid = resize_masked(depth, depth[:, 0] > MIN_VALID_DEPTH, size)
    normals, normals_valid = resize_masked(normals, normals.abs().amax(dim=1) > 0, size)
    # F.normalize over the channel dim of a large NCHW tensor is a slow strided reduction (0.85 s at 4K);
    # summing three squared channels is the same unit vector at a fraction of the cost.
    length = normals.square().sum(dim=1, keepdim=True).sqrt().clamp_min(1e-12)
    normals = official_normals_to_ours(normals / length)
    nan = torch.tensor(float("nan"), device=depth.device)
    return {
        "semantic": resize_labels(labels, size),
        "depth": torch.where(depth_valid, depth[:, 0], nan),
        "normals": torch.where(normals_valid[:, None], normals, nan),
    }
