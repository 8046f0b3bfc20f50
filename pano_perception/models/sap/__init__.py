"""SAP (Segment Any 4K Panorama): promptable instance segmentation of ERP panoramas as a scanning pseudo-video.

``build_segmenter`` makes a ready ``PanoSegmenter`` from names and numbers; the pieces (trajectory, prompts,
backends, fusion) are importable on their own. Design and parameters: docs/SAP.md.
"""
from __future__ import annotations

from .backend import BackendSpec, SegmenterBackend, available_backends, create_backend, register_backend
from .fusion import InstanceCanvas, fuse_views, pixel_solid_angles, spherical_area, spherical_iou
from .oracle import OracleBackend, erp_instance_source, scene_instance_source
from .prompts import (
    BoxPrompt,
    ObjectPrompts,
    PointPrompt,
    erp_pixel_to_ray,
    fibonacci_rays,
    project_box,
    project_rays,
    ray_to_erp_pixel,
)
from .segmenter import PROMPT_FRAMES, PanoSegmenter, PromptSession, Segmentation
from .trajectory import ScanTrajectory


def build_segmenter(backend: str | SegmenterBackend = "builtin", *, config: str = "", checkpoint: str = "",
                    device: str = "cpu", precision: str = "fp32", fov_deg: float = 90.0, overlap: float = 0.5,
                    pitch_deg: tuple[float, ...] | None = None, frame_size: int = 256,
                    prompt_frames: str = "visible", threshold: float = 0.5,
                    min_component_px: int = 0) -> PanoSegmenter:
    """A ``PanoSegmenter``: ``backend`` is a registered name (``available_backends()``; ``builtin``, the default,
    ships with the package) built from ``config``, ``checkpoint``, ``device`` and ``precision`` at ``frame_size``
    (sam2 wants 1024), or a backend instance. Scan: ``fov_deg``,
    ``overlap``, ``pitch_deg`` (None: derived) and ``frame_size`` (pixels); fusion: ``threshold`` and
    ``min_component_px`` (seam/pole-aware cleanup of tiny components; 0 = off)."""
    trajectory = ScanTrajectory(fov_deg, overlap, pitch_deg, frame_size)
    if isinstance(backend, str):
        backend = create_backend(BackendSpec(backend, config, checkpoint, device, precision, frame_size))
    return PanoSegmenter(backend, trajectory, threshold=threshold, prompt_frames=prompt_frames,
                         min_component_px=min_component_px, device=device)


__all__ = [
    "PROMPT_FRAMES",
    "BackendSpec",
    "BoxPrompt",
    "InstanceCanvas",
    "ObjectPrompts",
    "OracleBackend",
    "PanoSegmenter",
    "PointPrompt",
    "PromptSession",
    "ScanTrajectory",
    "Segmentation",
    "SegmenterBackend",
    "available_backends",
    "build_segmenter",
    "create_backend",
    "erp_instance_source",
    "erp_pixel_to_ray",
    "fibonacci_rays",
    "fuse_views",
    "pixel_solid_angles",
    "project_box",
    "project_rays",
    "ray_to_erp_pixel",
    "register_backend",
    "scene_instance_source",
    "spherical_area",
    "spherical_iou",
]
