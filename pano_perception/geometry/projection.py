"""Batched ERP -> perspective (E2P) and perspective -> ERP (P2E) resampling in torch.

Shapes: an ERP is ``(C, H, W)`` or ``(B, C, H, W)``; views come back as ``(N, C, h, w)`` or ``(B, N, C, h, w)``
for N views of one size. numpy inputs ``(H, W)`` or ``(H, W, C)`` are accepted and give numpy ``(N, h, w[, C])``.

- E2P wraps the seam and continues across the poles (no clamping, no black columns); bilinear or nearest
  (labels); when a view pixel covers several ERP pixels the ERP is first low-passed to a matching mip level.
- P2E writes each view back into the ERP footprint it covers, with a validity mask, and merges overlapping
  views by per-pixel ``max`` (SAP mask fusion), ``mean``, or ``center`` (the view whose axis is closest).
- Depth: ERP depth is radial, view depth is z-depth: ``z = radial * cos(alpha)`` (MTPano eq. 5).
  Normals: ``n_cam = R_cam_from_view @ n_view`` (MTPano eq. 6).
Sampling grids are cached per (ERP size, views, device, dtype).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .camera import PerspectiveView
from .sphere import check_erp_size, erp_rays, lonlat_to_erp_pixel, ray_to_lonlat

_MODES = ("bilinear", "nearest")
_REDUCTIONS = ("max", "mean", "center")
_CACHE_SIZE = 16


class _LRU(OrderedDict):
    def get_or_build(self, key, build):
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = build()
        self[key] = value
        if len(self) > _CACHE_SIZE:
            self.popitem(last=False)
        return value


_E2P_GRIDS = _LRU()
_P2E_WINDOWS = _LRU()


def clear_grid_cache() -> None:
    """Forget every cached sampling grid (e.g. to free GPU memory)."""
    _E2P_GRIDS.clear()
    _P2E_WINDOWS.clear()


def _check_views(views: Sequence[PerspectiveView]) -> tuple[PerspectiveView, ...]:
    views = tuple(views)
    if not views:
        raise ValueError("at least one view is needed")
    if len({(v.width, v.height) for v in views}) != 1:
        raise ValueError("all views of one call must have the same size")
    return views


def _views_key(views) -> tuple:
    return tuple((v.width, v.height, v.hfov, v.yaw, v.pitch, v.roll) for v in views)


def _as_batched_chw(image) -> tuple[torch.Tensor, str]:
    """numpy HW/HWC or torch CHW/BCHW -> (B, C, H, W) tensor and the layout tag to undo it."""
    if isinstance(image, np.ndarray):
        if image.ndim == 2:
            return torch.from_numpy(np.ascontiguousarray(image))[None, None], "np_hw"
        if image.ndim == 3:
            return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None], "np_hwc"
        raise ValueError(f"a numpy image must be HxW or HxWxC; got shape {image.shape}")
    if image.ndim == 3:
        return image[None], "chw"
    if image.ndim == 4:
        return image, "bchw"
    raise ValueError(f"a tensor image must be CxHxW or BxCxHxW; got shape {tuple(image.shape)}")


def _restore_views(out: torch.Tensor, layout: str):
    """(B, N, C, h, w) -> the layout the caller used."""
    if layout == "np_hw":
        return out[0, :, 0].cpu().numpy()
    if layout == "np_hwc":
        return out[0].permute(0, 2, 3, 1).cpu().numpy()
    return out[0] if layout == "chw" else out


def pad_erp(erp: torch.Tensor, pad: int) -> torch.Tensor:
    """Pad (B, C, H, W) by ``pad`` pixels: columns wrap around the seam, rows continue across the poles."""
    if pad == 0:
        return erp
    half = erp.shape[-1] // 2
    top = erp[..., :pad, :].flip(-2).roll(half, -1)
    bottom = erp[..., -pad:, :].flip(-2).roll(half, -1)
    erp = torch.cat([top, erp, bottom], dim=-2)
    return torch.cat([erp[..., -pad:], erp, erp[..., :pad]], dim=-1)


def _mip_level(erp_width: int, view: PerspectiveView) -> int:
    """Integer shrink factor of the ERP so that one view pixel covers about one ERP pixel."""
    view_px = 1.0 / view.focal  # radians per view pixel at the image centre
    erp_px = 2.0 * math.pi / erp_width
    return max(1, int(view_px / erp_px + 1e-6))


def _e2p_grid(height, width, views, pad, device, dtype) -> torch.Tensor:
    """Sampling grid (1, N*h, w, 2) into the padded ERP, built once per key."""

    def build():
        w, h = views[0].width, views[0].height
        grid = np.empty((len(views), h, w, 2), dtype=np.float64)
        for i, view in enumerate(views):
            rays = view.pixel_rays() @ view.rotation.T
            lon, lat = ray_to_lonlat(rays)
            x, y = lonlat_to_erp_pixel(lon, lat, height, width)
            grid[i, ..., 0] = 2.0 * (x + pad) / (width + 2 * pad) - 1.0
            grid[i, ..., 1] = 2.0 * (y + pad) / (height + 2 * pad) - 1.0
        return torch.from_numpy(grid.reshape(1, len(views) * h, w, 2)).to(device=device, dtype=dtype)

    key = (height, width, _views_key(views), pad, str(device), dtype)
    return _E2P_GRIDS.get_or_build(key, build)


def e2p(erp, views: Sequence[PerspectiveView], *, mode: str = "bilinear", antialias: bool = True):
    """Sample perspective views from an ERP (any channels; floats, or integer labels with ``nearest``).

    ``antialias`` low-passes the ERP first when a view pixel spans two or more ERP pixels (bilinear only).
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}; got {mode!r}")
    views = _check_views(views)
    batch, layout = _as_batched_chw(erp)
    check_erp_size(*batch.shape[-2:])
    source_dtype = batch.dtype
    work = batch if batch.is_floating_point() else batch.to(torch.float32)
    if mode == "bilinear" and antialias:
        level = _mip_level(work.shape[-1], views[0])
        if level > 1:
            small_h = max(2, work.shape[-2] // level)
            work = F.interpolate(work, size=(small_h, 2 * small_h), mode="bilinear", antialias=True,
                                 align_corners=False)
    height, width = work.shape[-2:]
    grid = _e2p_grid(height, width, views, 1, work.device, work.dtype)
    padded = pad_erp(work, 1)
    out = F.grid_sample(padded, grid.expand(padded.shape[0], -1, -1, -1), mode=mode, padding_mode="border",
                        align_corners=False)
    n, h, w = len(views), views[0].height, views[0].width
    out = out.view(out.shape[0], out.shape[1], n, h, w).permute(0, 2, 1, 3, 4)
    if not source_dtype.is_floating_point:
        out = out.round().to(source_dtype)
    return _restore_views(out, layout)


def view_cos_alpha(view: PerspectiveView, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """cos of the angle between each view pixel's ray and the optical axis, (h, w)."""
    rays = view.pixel_rays()
    return torch.from_numpy(1.0 / np.linalg.norm(rays, axis=-1)).to(device=device, dtype=dtype)


def e2p_depth(radial_depth, views: Sequence[PerspectiveView], *, mode: str = "nearest"):
    """Radial ERP depth (H, W) or (B, 1, H, W) -> z-depth of each view (N, h, w) or (B, N, 1, h, w)."""
    views = _check_views(views)
    sampled = e2p(radial_depth, views, mode=mode, antialias=False)
    as_numpy = isinstance(sampled, np.ndarray)
    sampled_t = torch.from_numpy(sampled) if as_numpy else sampled
    cos = torch.stack([view_cos_alpha(v, device=sampled_t.device, dtype=sampled_t.dtype) for v in views])
    if sampled_t.ndim >= 4:  # (N, C, h, w) or (B, N, C, h, w)
        cos = cos[:, None]
    out = sampled_t * cos
    return out.numpy() if as_numpy else out


def e2p_normals(normals, views: Sequence[PerspectiveView], *, mode: str = "bilinear"):
    """ERP normals (camera frame; (H, W, 3) numpy or (B, 3, H, W)) -> unit normals in each view's optical frame."""
    views = _check_views(views)
    batch, layout = _as_batched_chw(normals)
    sampled = e2p(batch, views, mode=mode, antialias=False)  # (B, N, 3, h, w)
    rot = torch.stack([torch.from_numpy(v.rotation.T) for v in views]).to(sampled)  # view_from_cam
    rotated = torch.einsum("nij,bnjhw->bnihw", rot, sampled)
    rotated = F.normalize(rotated, dim=2)
    return _restore_views(rotated, layout)


@dataclass
class P2EWindow:
    """The ERP pixels (``rows`` × ``cols``) one perspective view can paint, with their sampling grid into it."""

    view_index: int
    rows: slice
    cols: slice  # ERP columns (a contiguous run: windows crossing the seam are split in two)
    grid: torch.Tensor  # (1, hh, ww, 2) into the view, align_corners=False
    valid: torch.Tensor  # (hh, ww) bool: in front and inside the view
    cos_alpha: torch.Tensor  # (hh, ww): cos of the angle between the ERP ray and the optical axis


def _footprint(view: PerspectiveView, height: int, width: int) -> tuple[slice, np.ndarray]:
    """ERP rows and (wrapped) columns that can see the view; margins of two pixels."""
    rot = view.rotation
    pole_rows = []
    for pole, row_range in ((np.array([0.0, 0.0, 1.0]), (0, None)), (np.array([0.0, 0.0, -1.0]), (None, height))):
        x, y, _ = view.project(rot.T @ pole)
        # A pole on or near the view's edge (a 90-degree view at pitch 45) counts as inside: around it the
        # footprint spans every column.
        near = (rot.T @ pole)[2] > 0 and -2 <= x <= view.width + 2 and -2 <= y <= view.height + 2
        if near:
            pole_rows.append(row_range)
    n = 64
    t = (np.arange(n) + 0.5) / n
    w, h = view.width, view.height
    border = np.concatenate([
        np.stack([t * w, np.zeros(n)], -1), np.stack([t * w, np.full(n, h)], -1),
        np.stack([np.zeros(n), t * h], -1), np.stack([np.full(n, w), t * h], -1)])
    rays = np.concatenate([(border - [w / 2, h / 2]) / view.focal, np.ones((4 * n, 1))], -1) @ rot.T
    lon, lat = ray_to_lonlat(rays)
    _, y = lonlat_to_erp_pixel(lon, lat, height, width)
    top = int(max(0, math.floor(y.min()) - 2))
    bottom = int(min(height, math.ceil(y.max()) + 2))
    for start, stop in pole_rows:
        top = 0 if start == 0 else top
        bottom = height if stop == height else bottom
    if pole_rows:
        return slice(top, bottom), np.arange(width)
    centre_lon, _ = ray_to_lonlat(rot[:, 2])
    delta = (lon - centre_lon + math.pi) % (2 * math.pi) - math.pi
    x_lo = (centre_lon + delta.min() + math.pi) * width / (2 * math.pi) - 2
    x_hi = (centre_lon + delta.max() + math.pi) * width / (2 * math.pi) + 2
    count = min(width, int(math.ceil(x_hi) - math.floor(x_lo)))
    return slice(top, bottom), (math.floor(x_lo) + np.arange(count)) % width


def _footprint_bands(view: PerspectiveView, height: int, width: int, band_rows: int = 64,
                     step: int = 8) -> list[tuple[slice, np.ndarray]]:
    """The footprint as bands of rows, each with its own (wrapped) column range.

    A view that contains a pole spans every column near the pole but far fewer away from it; splitting its
    full-width window into bands keeps the cached grids (and the samples) close to the true footprint.
    """
    rows, cols = _footprint(view, height, width)
    if len(cols) < width:
        return [(rows, cols)]
    coarse = np.arange(0, width, step)
    lon = (coarse + step / 2) * (2 * math.pi / width) - math.pi
    bands = []
    for top in range(rows.start, rows.stop, band_rows):
        bottom = min(top + band_rows, rows.stop)
        ys = np.append(np.arange(top, bottom, step / 2), bottom) + 0.0
        lat = math.pi / 2 - np.clip(ys, 0.0, height) * (math.pi / height)
        lo, la = np.meshgrid(lon, lat)
        rays = np.stack([np.cos(la) * np.cos(lo), -np.cos(la) * np.sin(lo), np.sin(la)], -1) @ view.rotation
        x, y, _ = view.project(rays)
        seen = (rays[..., 2] > 0) & (x > -step) & (x < view.width + step) & (y > -step) & (y < view.height + step)
        hit = seen.any(axis=0)
        if not hit.any():
            continue
        hit = hit | np.roll(hit, 1) | np.roll(hit, -1)
        if hit.all():
            bands.append((slice(top, bottom), np.arange(width)))
            continue
        # The complement of the longest circular run of misses is the band's column range.
        gap, gap_end = longest_circular_run(~hit)
        start = (gap_end % len(hit)) * step - step
        bands.append((slice(top, bottom), (start + np.arange(min(width, (len(hit) - gap + 2) * step))) % width))
    return bands


def _contiguous_runs(cols: np.ndarray) -> list[slice]:
    """Wrapped column indices (start + arange(n)) % width as one or two slices."""
    breaks = np.flatnonzero(np.diff(cols) != 1) + 1
    return [slice(int(run[0]), int(run[-1]) + 1) for run in np.split(cols, breaks)]


def longest_circular_run(flags: np.ndarray) -> tuple[int, int]:
    """(length, end index) of the longest run of True in a circular boolean array that is not all True;
    the end index is one past the run's last element and may exceed len(flags) (take it modulo)."""
    doubled = np.concatenate([flags, flags]).astype(np.int8)
    edges = np.diff(np.concatenate([[0], doubled, [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    longest = int(np.argmax(ends - starts))
    return int(min(len(flags), ends[longest] - starts[longest])), int(ends[longest])


def p2e_windows(height, width, views, margin, device, dtype) -> list[P2EWindow]:
    """Per-view ERP windows; ``margin`` (pixels) keeps samples that far inside the view (0.5 for bilinear)."""

    def build():
        rays_all = erp_rays(height, width, numpy=True).astype(np.float64)
        windows = []
        for index, view in enumerate(views):
            for rows, wrapped in _footprint_bands(view, height, width):
                for cols in _contiguous_runs(wrapped):
                    rays = rays_all[rows, cols] @ view.rotation  # view_from_cam applied to row vectors
                    x, y, inside = view.project(rays)
                    inside &= (x >= margin) & (x <= view.width - margin)
                    inside &= (y >= margin) & (y <= view.height - margin)
                    grid = np.stack([2.0 * x / view.width - 1.0, 2.0 * y / view.height - 1.0], -1)
                    grid = np.where(inside[..., None], grid, -2.0)
                    windows.append(P2EWindow(
                        view_index=index,
                        rows=rows,
                        cols=cols,
                        grid=torch.from_numpy(grid[None]).to(device=device, dtype=dtype),
                        valid=torch.from_numpy(inside).to(device),
                        cos_alpha=torch.from_numpy(rays[..., 2]).to(device=device, dtype=dtype)))
        return windows

    key = (height, width, _views_key(views), margin, str(device), dtype)
    return _P2E_WINDOWS.get_or_build(key, build)


def _as_batched_views(views_data, n_views: int) -> tuple[torch.Tensor, str]:
    """numpy (N, h, w[, C]) or torch (N, C, h, w) / (B, N, C, h, w) -> (B, N, C, h, w) and a layout tag."""
    if isinstance(views_data, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(views_data))
        if t.ndim == 3:
            t, layout = t[None, :, None], "np_hw"
        elif t.ndim == 4:
            t, layout = t.permute(0, 3, 1, 2)[None], "np_hwc"
        else:
            raise ValueError(f"numpy views must be NxHxW or NxHxWxC; got {views_data.shape}")
    elif views_data.ndim == 4:
        t, layout = views_data[None], "chw"
    elif views_data.ndim == 5:
        t, layout = views_data, "bchw"
    else:
        raise ValueError(f"tensor views must be NxCxHxW or BxNxCxHxW; got {tuple(views_data.shape)}")
    if t.shape[1] != n_views:
        raise ValueError(f"got {t.shape[1]} view images for {n_views} views")
    return t, layout


def _restore_erp(out: torch.Tensor, valid: torch.Tensor, layout: str):
    if layout == "np_hw":
        return out[0, 0].cpu().numpy(), valid[0].cpu().numpy()
    if layout == "np_hwc":
        return out[0].permute(1, 2, 0).cpu().numpy(), valid[0].cpu().numpy()
    if layout == "chw":
        return out[0], valid[0]
    return out, valid


def p2e(views_data, views: Sequence[PerspectiveView], erp_height: int, *, mode: str = "bilinear",
        reduce: str = "center", fill: float = 0.0, edge_margin: float | None = None, _transform=None):
    """Write view images back into an ERP of ``erp_height`` x ``2*erp_height``.

    Returns ``(erp, valid)``: ``erp`` (B, C, H, W) (or the caller's layout) and ``valid`` (B, H, W), true where
    at least one view sees the pixel. ``reduce``: ``max`` (per-pixel max, SAP's fusion), ``mean`` (average of the
    views that see it) or ``center`` (the view whose optical axis is closest to the ray; use it for labels).
    Pixels no view sees hold ``fill``. ``edge_margin`` (pixels; default 0.5 for bilinear, 0 for nearest) is the
    band along a view's border that does not count as seen: bilinear samples there would be clamped, not
    interpolated. Pass 0 where clamped values are fine (mask fusion) and full coverage matters: a 90-degree view at
    pitch 45 has the pole on its edge.
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}; got {mode!r}")
    if reduce not in _REDUCTIONS:
        raise ValueError(f"reduce must be one of {_REDUCTIONS}; got {reduce!r}")
    views = _check_views(views)
    height, width = erp_height, 2 * erp_height
    check_erp_size(height, width)
    data, layout = _as_batched_views(views_data, len(views))
    source_dtype = data.dtype
    work = data if data.is_floating_point() else data.to(torch.float32)
    b, _, c = work.shape[:3]
    if edge_margin is None:
        edge_margin = 0.5 if mode == "bilinear" else 0.0  # bilinear needs a neighbour on both sides
    windows = p2e_windows(height, width, views, edge_margin, work.device, work.dtype)
    init = -math.inf if reduce == "max" else 0.0
    out = torch.full((b, c, height, width), init, dtype=work.dtype, device=work.device)
    score = torch.full((b, height, width), -math.inf if reduce == "center" else 0.0, dtype=work.dtype,
                       device=work.device)
    for win in windows:
        sampled = F.grid_sample(work[:, win.view_index], win.grid.expand(b, -1, -1, -1), mode=mode,
                                padding_mode="border", align_corners=False)  # (B, C, hh, ww)
        if _transform is not None:
            sampled = _transform(sampled, views[win.view_index], win)
        valid = win.valid[None].expand(b, -1, -1)
        current = out[:, :, win.rows, win.cols]  # views: updated in place
        current_score = score[:, win.rows, win.cols]
        if reduce == "max":
            current.copy_(torch.where(valid[:, None], torch.maximum(current, sampled), current))
            current_score.add_(valid.to(work.dtype))
        elif reduce == "mean":
            current.add_(torch.where(valid[:, None], sampled, 0.0))
            current_score.add_(valid.to(work.dtype))
        else:
            take = valid & (win.cos_alpha[None] > current_score)
            current.copy_(torch.where(take[:, None], sampled, current))
            current_score.copy_(torch.where(take, win.cos_alpha[None], current_score))
    covered = score > 0 if reduce != "center" else torch.isfinite(score)
    if reduce == "mean":
        out = out / score.clamp(min=1.0)[:, None]
    out = torch.where(covered[:, None], out, torch.as_tensor(fill, dtype=out.dtype, device=out.device))
    if not source_dtype.is_floating_point:
        out = out.round().to(source_dtype)
    return _restore_erp(out, covered, layout)


def p2e_depth(z_depth, views: Sequence[PerspectiveView], erp_height: int, *, mode: str = "nearest",
              reduce: str = "center", fill: float = math.nan):
    """View z-depth -> radial ERP depth (``radial = z / cos(alpha)`` for the ERP pixel's ray: MTPano eq. 5).

    ``bilinear`` interpolates inverse depth, which is linear across a plane in a perspective image, so planes
    stay exact; NaN (invalid) neighbours make the result NaN rather than blending across holes.
    """
    if mode == "bilinear":
        inverse = 1.0 / z_depth

        def to_radial(sampled, view, win):
            return 1.0 / (sampled * win.cos_alpha.clamp(min=1e-6))

        return p2e(inverse, views, erp_height, mode=mode, reduce=reduce, fill=fill, _transform=to_radial)

    def z_to_radial(sampled, view, win):
        return sampled / win.cos_alpha.clamp(min=1e-6)

    return p2e(z_depth, views, erp_height, mode=mode, reduce=reduce, fill=fill, _transform=z_to_radial)


def p2e_normals(normals, views: Sequence[PerspectiveView], erp_height: int, *, mode: str = "bilinear",
                reduce: str = "center", fill: float = math.nan):
    """View normals (optical frame) -> unit ERP normals in the camera frame (``R @ n``: MTPano eq. 6)."""

    def rotate(sampled, view, win):
        rot = torch.from_numpy(view.rotation).to(sampled)
        return F.normalize(torch.einsum("ij,bjhw->bihw", rot, sampled), dim=1)

    return p2e(normals, views, erp_height, mode=mode, reduce=reduce, fill=fill, _transform=rotate)
