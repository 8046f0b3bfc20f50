"""Pre- and post-processing of MTPano as the official ``inference.py`` does it, in our conventions.

Everything at model resolution runs on the network's device on batched torch tensors (images [B, 3, h, w], depth
[B, 1, h, w], normals [B, 3, h, w]); resizing the products to the input size runs on the CPU with OpenCV, where
they end up anyway (ROS messages, files), and never touches the 150 class logits.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ...cpu import check_destination, row_bands, set_nan
from .config import IMAGENET_MEAN, IMAGENET_STD

#: ADE20K-150 id of "sky" (0-based), masked out of depth and normals like the release does.
SKY_ID = 2
#: Depth at or below this (metres) is invalid, as in the release's seam fix.
MIN_VALID_DEPTH = 1e-4
#: The release's seam fix overwrites columns W−2, W−1, 0, 1 from anchors W−3 and 2.
SEAM_MARGIN = 2


def normalise_images(rgb_uint8: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[B, H, W, 3] uint8 RGB → [B, 3, h, w] float32 network input (ImageNet-normalised) at ``size`` = (h, w).

    Resizing is antialiased bilinear with half-pixel centres on the 8-bit image: PIL's ``Image.resize(BILINEAR)``,
    as the release does, within one grey level. On the CPU it runs on uint8 in channels-last order (torch's
    vectorised path, 30x faster than on float at 4K), so resize before moving a large image to a GPU.
    """
    images = resize_images(rgb_uint8.permute(0, 3, 1, 2), size).float()
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    return (images / 255 - mean) / std


def resize_images(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[B, C, H, W] uint8 images → ``size`` = (h, w) by antialiased bilinear resizing with half-pixel centres,
    rounded to uint8 values (uint8 on the CPU, float elsewhere). Channels-last uint8 takes torch's vectorised path
    on the CPU."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    if images.device.type == "cpu":
        return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)
    images = F.interpolate(images.float(), size=size, mode="bilinear", align_corners=False, antialias=True)
    return images.round().clamp(0, 255)


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
        blended = F.normalize(blended, dim=1)  # [B, C, H, 4]: small
    fixed = values.clone()
    fixed[..., columns] = torch.where(rows_ok[..., None], blended, torch.zeros_like(blended))
    return fixed


def semantic_labels(logits: torch.Tensor) -> torch.Tensor:
    """[B, classes, H, W] logits → [B, H, W] int64 class ids (argmax; the first class wins ties).

    On the CPU, logits in channels-last memory order (as the network and the ONNX export emit them) are reduced by
    numpy along the innermost dimension: 0.8 ms for 150 × 128 × 256, against 11 ms for torch's reduction over a
    strided dimension. One thread: right after a forward, torch's OpenMP workers still spin on the other cores, and
    splitting the argmax over our own threads measured slower (1.0 ms quiet, 5 ms with another process on a core).
    """
    if logits.device.type == "cpu" and logits.dtype == torch.float32 and \
            logits.is_contiguous(memory_format=torch.channels_last):
        return torch.from_numpy(logits.permute(0, 2, 3, 1).numpy().argmax(axis=-1))
    return logits.float().max(dim=1).indices  # max().indices: 3x faster than argmax over dim 1 on CPU


def unit_channels(vectors: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] vectors scaled to unit length over C (zero stays zero). ``F.normalize(dim=1)`` computes the
    same with a strided reduction that is 10x slower on the CPU."""
    length = vectors[:, 0:1].square()
    for channel in range(1, vectors.shape[1]):
        length = length + vectors[:, channel:channel + 1].square()
    return vectors / length.sqrt_().clamp_min_(1e-12)


def _nonzero_vectors(vectors: torch.Tensor) -> torch.Tensor:
    """[B, H, W] bool: which [B, C, H, W] vectors are not all zero."""
    nonzero = vectors[:, 0] != 0
    for channel in range(1, vectors.shape[1]):
        nonzero = nonzero | (vectors[:, channel] != 0)
    return nonzero


def official_normals_to_ours(normals: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] normals of the release's N-space (pointing away from the camera) → our camera frame
    (x forward, y left, z up, pointing towards the camera): ``n_ours = (n_X, n_Z, n_Y)``. See docs/CONVENTIONS.md.
    """
    return normals[:, [0, 2, 1]]


@dataclass
class MTPanoPrediction:
    """Products for one ERP image, at its input resolution H×W.

    ``semantic``: uint8 [H, W] ADE20K-150 ids (0-based; 2 = sky).
    ``depth``: float32 [H, W] radial distance in metres; NaN for sky and invalid pixels.
    ``normals``: float32 [H, W, 3] unit normals in our camera frame (x forward, y left, z up; pointing towards
    the camera, docs/CONVENTIONS.md); NaN where invalid.
    ``model_semantic``: the ids at the network's output resolution, which ``semantic`` resizes (nearest); None
    when not known.
    """

    semantic: np.ndarray
    depth: np.ndarray
    normals: np.ndarray
    model_semantic: np.ndarray | None = None


def postprocess(outputs: dict[str, torch.Tensor], size: tuple[int, int],
                out: Sequence[Mapping[str, np.ndarray]] | None = None) -> list[MTPanoPrediction]:
    """Network outputs (model resolution, official frame, any device) → one prediction per image at ``size`` = (H, W).

    Order as in the release: argmax, sky masking, seam fix (depth and normals, not semantics); then ours: the frame
    change and resizing (``resize_valid``, ``resize_labels``). NaN where invalid (sky, depth ≤ 1e-4, no normal).
    ``out``: per image, destination arrays for any of ``semantic``, ``depth``, ``normals`` (shapes and dtypes of
    MTPanoPrediction; e.g. views of ROS message buffers), which the prediction then holds; the other products are
    new arrays.
    """
    labels = semantic_labels(outputs["semseg"])
    sky = labels == SKY_ID
    depth = outputs["depth"].float().masked_fill(sky[:, None], 0.0)
    normals = unit_channels(outputs["normals"].float()).masked_fill(sky[:, None], 0.0)

    depth = fix_panorama_seam(depth, depth[:, 0] > MIN_VALID_DEPTH, unit_vectors=False)
    normals = fix_panorama_seam(normals, _nonzero_vectors(normals), unit_vectors=True)
    depth_valid = depth[:, 0] > MIN_VALID_DEPTH
    normals_valid = _nonzero_vectors(normals)
    normals = official_normals_to_ours(normals)

    labels = labels.to(torch.uint8).cpu().numpy()
    depth, depth_valid = depth[:, 0].cpu().numpy(), depth_valid.cpu().numpy()
    normals, normals_valid = normals.permute(0, 2, 3, 1).contiguous().cpu().numpy(), normals_valid.cpu().numpy()
    out = out if out is not None else [{}] * len(labels)
    if len(out) != len(labels):
        raise ValueError(f"out has {len(out)} entries for a batch of {len(labels)}")
    return [MTPanoPrediction(semantic=resize_labels(labels[i], size, out=out[i].get("semantic")),
                             depth=resize_valid(depth[i], depth_valid[i], size, out=out[i].get("depth")),
                             normals=resize_valid(normals[i], normals_valid[i], size, unit_vectors=True,
                                                  out=out[i].get("normals")),
                             model_semantic=labels[i])
            for i in range(len(labels))]


def resize_labels(labels: np.ndarray, size: tuple[int, int], *, out: np.ndarray | None = None) -> np.ndarray:
    """uint8 [h, w] ids → ``size`` = (H, W) by nearest neighbour with half-pixel centres: a new array, or ``out``."""
    check_destination(out, tuple(size), np.uint8)
    if labels.shape == tuple(size):
        out = np.empty_like(labels) if out is None else out
        np.copyto(out, labels)
        return out
    return cv2.resize(labels, (size[1], size[0]), dst=out, interpolation=cv2.INTER_NEAREST_EXACT)


def resize_valid(values: np.ndarray, valid: np.ndarray, size: tuple[int, int], *,
                 unit_vectors: bool = False, out: np.ndarray | None = None) -> np.ndarray:
    """float32 [h, w] or [h, w, C] values known only where ``valid`` ([h, w] bool) → ``size`` = (H, W), NaN where
    invalid, never blending an invalid pixel into a valid one: a new array, or ``out``.

    Validity is resized like the labels (nearest). Enlarging: bilinear (half-pixel centres) after filling each
    invalid pixel with the mean of its valid 3×3 neighbours, which is every invalid pixel a valid output's bilinear
    support can reach. Shrinking: area average of the valid pixels (normalised convolution). ``unit_vectors``
    re-normalises the interpolated vectors (normals).
    """
    height, width = size
    check_destination(out, (height, width) + values.shape[2:], np.float32)
    if valid.shape == (height, width):
        resized = np.empty(values.shape, np.float32) if out is None else out  # C order, for set_nan
        np.copyto(resized, values)
    elif height >= valid.shape[0]:
        resized = cv2.resize(_fill_invalid(values, valid), (width, height), dst=out, interpolation=cv2.INTER_LINEAR)
    else:
        weight = valid.astype(np.float32)
        total = cv2.resize(_times(values, weight), (width, height), interpolation=cv2.INTER_AREA)
        coverage = cv2.resize(weight, (width, height), interpolation=cv2.INTER_AREA)
        resized = _times(total, 1.0 / np.maximum(coverage, np.finfo(np.float32).tiny), out=out)
    invalid = resize_labels((~valid).view(np.uint8), size).view(bool)
    if unit_vectors:
        _unit_length_in_place(resized, invalid)
    else:
        set_nan(resized, invalid)
    return resized


_SMALLEST_NORMAL = float(np.finfo(np.float32).tiny)


def _unit_length_in_place(vectors: np.ndarray, invalid: np.ndarray) -> None:
    """[H, W, C] float32 vectors scaled to unit length, NaN where ``invalid`` ([H, W] bool), in bands of rows: a
    4K normal map (88 MB) is normalised 3x faster than with full-size temporaries."""
    ones = np.ones((1, vectors.shape[-1]), np.float32)
    for rows in row_bands(vectors.shape[0], vectors[0].nbytes):
        band = vectors[rows]
        squared_length = cv2.transform(cv2.multiply(band, band), ones)
        # zero vectors (inside a sky) raised to -0.5 take a path of OpenCV's pow 15x slower: clamp them first
        scale = cv2.pow(cv2.max(squared_length, _SMALLEST_NORMAL, dst=squared_length), -0.5)
        set_nan(scale, invalid[rows])
        _times(band, scale, out=band)


def _fill_invalid(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Invalid pixels ← mean of their valid 3×3 neighbours (0 with none); valid pixels unchanged."""
    if valid.all():
        return values
    weight = valid.astype(np.float32)
    total = cv2.boxFilter(_times(values, weight), -1, (3, 3), normalize=False, borderType=cv2.BORDER_REPLICATE)
    count = cv2.boxFilter(weight, -1, (3, 3), normalize=False, borderType=cv2.BORDER_REPLICATE)
    filled = values.copy()
    cv2.copyTo(_times(total, 1.0 / np.maximum(count, 1.0)), (~valid).view(np.uint8), filled)
    return filled


def _times(values: np.ndarray, per_pixel: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """float32 [h, w] or [h, w, C] values times a per-pixel float32 [h, w] factor (a new array, or ``out``).
    OpenCV, because numpy's broadcasting over a last axis of 3 is 3-4x slower."""
    if values.ndim == 2:
        return cv2.multiply(values, per_pixel, dst=out)
    return cv2.multiply(values, cv2.merge([per_pixel] * values.shape[2]), dst=out)
