"""Rendering of ERP panoramas and perspective views with exact per-pixel ground truth.

For a ``CameraPose`` (world_from_camera, REP-103 camera frame) every pixel's ray is cast once through its pixel
centre (docs/CONVENTIONS.md: ERP rays from ``geometry.erp_rays``; view rays from ``PerspectiveView.pixel_rays``
turned by ``PerspectiveView.rotation``). Ground truth per pixel: radial depth in metres (NaN: sky), z-depth for
views, unit normals facing the camera (camera frame for ERP, the view's optical frame for views; NaN: sky),
ADE20K-150 semantic ids (sky = 2) and instance ids (sky = 0). Colour: procedural albedo x (ambient + Lambert from
the key light, optionally shadowed by shadow rays cast from the light), emissive surfaces unlit, the sky
procedural; optional Gaussian sensor noise and JPEG compression.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..geometry import PerspectiveView, erp_rays
from ..labels import class_id
from .materials import sky_color
from .raycast import SurfaceSample, cast_rays, sample_surfaces
from .scene import CameraPose, Scene

SKY_ID = class_id("sky")


@dataclass(frozen=True)
class RenderOptions:
    """``shadows``: cast shadow rays from the key light. ``noise_std``: std of additive Gaussian noise in 8-bit
    levels (0: off). ``jpeg_quality``: JPEG round trip at this quality (None: off). ``seed``: noise seed."""

    shadows: bool = True
    noise_std: float = 0.0
    jpeg_quality: int | None = None
    seed: int = 0


@dataclass
class Frame:
    """One rendered image with its ground truth (all arrays (H, W[, C]))."""

    rgb: np.ndarray  # uint8 RGB
    depth: np.ndarray  # float32 radial metres, NaN where no surface (sky)
    normals: np.ndarray  # float32 unit, facing the camera; ERP: camera frame, view: optical frame; NaN on sky
    semantic: np.ndarray  # uint8 ADE20K-150 ids (sky 2)
    instance: np.ndarray  # uint16 instance ids (sky 0)
    z_depth: np.ndarray | None = None  # float32 metres along the optical axis (perspective views only)


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-column dot products of (3, n) arrays."""
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _shade(scene: Scene, dirs: np.ndarray, t: np.ndarray, surf: SurfaceSample, pixel_angle: float,
           shadows: bool) -> np.ndarray:
    """RGB (3, n) in [0, 1] of unit world rays ``dirs`` (3, n) with hit distances ``t`` (inf: sky) and surface
    samples ``surf``; ``pixel_angle`` (radians) sets the pixel footprint that texture detail fades with."""
    sky = ~np.isfinite(t)
    points, normals, material = surf.points, surf.normals, surf.material
    footprint = t * pixel_angle / np.maximum(np.abs(_dot(normals, dirs)), 0.1)
    rgb = np.empty_like(points)
    emission = np.zeros_like(t)
    order = np.argsort(material, kind="stable")
    bounds = np.flatnonzero(np.diff(material[order])) + 1
    for sel in np.split(order, bounds):
        m = int(material[sel[0]])
        if m < 0:
            continue
        mat = scene.materials[m]
        rgb[:, sel] = mat.albedo(surf.uv[:, sel], points[:, sel], footprint[sel])
        emission[sel] = mat.emission
    light = scene.light
    to_light = light.position[:, None] - points
    distance = np.sqrt(_dot(to_light, to_light))
    with np.errstate(invalid="ignore"):
        direct = light.intensity * np.clip(_dot(normals, to_light) / distance, 0.0, None)
        if light.falloff is not None:
            direct *= light.falloff ** 2 / (light.falloff ** 2 + distance ** 2)
        lit = np.flatnonzero((direct > 0) & (emission == 0))
    if shadows and len(lit):
        casters = [p for p in scene.primitives if not all(scene.materials[m].emission > 0 for m in p.labels[:, 2])]
        blockers = cast_rays(casters, light.position, -to_light[:, lit] / distance[lit],
                             max_t=distance[lit] - (2e-3 + 1e-6 * distance[lit]))
        direct[lit[blockers.mask]] = 0.0
    glowing = emission > 0
    rgb *= np.where(glowing, emission, light.ambient * (0.9 + 0.1 * normals[2]) + direct)  # sky-ish ambient
    if sky.any():
        rgb[:, sky] = sky_color(dirs[:, sky], scene.sun_direction, scene.seed)
    return rgb


def _render_rays(scene: Scene, pose: CameraPose, rays_cam: np.ndarray, pixel_angle: float,
                 options: RenderOptions) -> dict:
    """Flat per-ray outputs for unit camera-frame rays (3, n) (float64); vectors come back as (n, 3)."""
    dirs = pose.rotation @ rays_cam
    hits = cast_rays(scene.primitives, pose.position, dirs)
    surf = sample_surfaces(scene.primitives, pose.position, dirs, hits)
    hit = hits.mask
    rgb = _shade(scene, dirs, np.where(hit, hits.t, np.inf), surf, pixel_angle, options.shadows)
    return {
        "rgb": rgb.T,
        "depth": np.where(hit, hits.t, np.nan).astype(np.float32),
        "normals_cam": (pose.rotation.T @ surf.normals).T,
        "semantic": np.where(hit, surf.semantic, SKY_ID).astype(np.uint8),
        "instance": surf.instance.astype(np.uint16),
    }


def _finish_rgb(rgb: np.ndarray, options: RenderOptions) -> np.ndarray:
    """Float RGB (H, W, 3) in [0, 1] -> uint8 with optional sensor noise and JPEG artefacts."""
    out = rgb * 255.0
    if options.noise_std > 0:
        out = out + np.random.default_rng(options.seed).normal(0.0, options.noise_std, out.shape)
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    if options.jpeg_quality is not None:
        ok, data = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(options.jpeg_quality)])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        out = np.ascontiguousarray(cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1])
    return out


def _unit_soa(rays: np.ndarray) -> np.ndarray:
    """Rays (..., 3) -> unit rays (3, n) in float64."""
    soa = np.ascontiguousarray(rays.reshape(-1, 3).T, dtype=np.float64)
    return soa / np.sqrt(soa[0] ** 2 + soa[1] ** 2 + soa[2] ** 2)


@functools.lru_cache(maxsize=4)
def _erp_unit_rays(height: int) -> np.ndarray:
    """Unit camera-frame rays (3, H*2H) through the ERP pixel centres (read-only, cached)."""
    rays = _unit_soa(erp_rays(height, 2 * height, numpy=True))
    rays.flags.writeable = False
    return rays


def render_erp(scene: Scene, pose: CameraPose, height: int, options: RenderOptions | None = None) -> Frame:
    """Equirectangular frame of ``height`` x ``2*height`` pixels; normals in the camera frame."""
    options = options or RenderOptions()
    width = 2 * height
    out = _render_rays(scene, pose, _erp_unit_rays(height), math.pi / height, options)
    return Frame(
        rgb=_finish_rgb(out["rgb"].reshape(height, width, 3), options),
        depth=out["depth"].reshape(height, width),
        normals=out["normals_cam"].astype(np.float32).reshape(height, width, 3),
        semantic=out["semantic"].reshape(height, width),
        instance=out["instance"].reshape(height, width),
    )


def render_view(scene: Scene, pose: CameraPose, view: PerspectiveView,
                options: RenderOptions | None = None) -> Frame:
    """Perspective frame of ``view`` (looking out of the 360-degree camera at ``pose``); normals and z-depth in
    the view's optical frame."""
    options = options or RenderOptions()
    optical = view.pixel_rays()  # (h, w, 3), z = 1
    norm = np.linalg.norm(optical, axis=-1)
    rays_cam = _unit_soa(optical @ view.rotation.T)
    out = _render_rays(scene, pose, rays_cam, 1.0 / view.focal, options)
    h, w = view.height, view.width
    depth = out["depth"].reshape(h, w)
    return Frame(
        rgb=_finish_rgb(out["rgb"].reshape(h, w, 3), options),
        depth=depth,
        normals=(out["normals_cam"] @ view.rotation).astype(np.float32).reshape(h, w, 3),
        semantic=out["semantic"].reshape(h, w),
        instance=out["instance"].reshape(h, w),
        z_depth=(depth / norm).astype(np.float32),
    )
