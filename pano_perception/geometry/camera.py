"""Rotations and virtual pinhole cameras looking out of the 360-degree camera centre.

A view's optical frame is z forward, x right, y down (REP-103 ``_optical``). Its orientation is (yaw, pitch, roll)
in radians in ERP terms: yaw = longitude of the optical axis (positive right), pitch = its latitude (positive up),
roll about the optical axis. ``R_cam_from_view = Rz(-yaw) @ Ry(-pitch) @ R0 @ Rz(roll)`` (docs/CONVENTIONS.md).
The focal length follows ``f = W / (2 tan(hfov / 2))``: the image edges span the FoV.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Optical axes expressed in the camera frame at yaw = pitch = roll = 0: columns are x_opt, y_opt, z_opt.
R_CAM_FROM_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def rot_x(angle: float) -> np.ndarray:
    """Right-handed rotation about x by ``angle`` radians."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(angle: float) -> np.ndarray:
    """Right-handed rotation about y by ``angle`` radians."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_z(angle: float) -> np.ndarray:
    """Right-handed rotation about z by ``angle`` radians."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def view_rotation(yaw: float, pitch: float, roll: float = 0.0) -> np.ndarray:
    """R_cam_from_view (3x3, float64) for a view with the given yaw, pitch and roll (radians)."""
    return rot_z(-yaw) @ rot_y(-pitch) @ R_CAM_FROM_OPTICAL @ rot_z(roll)


def focal_from_fov(size_px: int, fov: float) -> float:
    """Focal length in pixels such that ``size_px`` pixels (edge to edge) span ``fov`` radians."""
    if not 0.0 < fov < math.pi:
        raise ValueError(f"field of view must be in (0, 180) degrees; got {math.degrees(fov):.3f}")
    return size_px / (2.0 * math.tan(fov / 2.0))


def fov_from_centre_convention(size_px: int, fov_centres: float) -> float:
    """FoV in our edge convention from a FoV whose edge *pixel centres* span it (py360convert, SAP)."""
    return 2.0 * math.atan(size_px / (size_px - 1) * math.tan(fov_centres / 2.0))


@dataclass(frozen=True)
class PerspectiveView:
    """A virtual pinhole view: image size in pixels, horizontal FoV and orientation in radians."""

    width: int
    height: int
    hfov: float
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0

    @classmethod
    def from_degrees(cls, width: int, height: int, hfov_deg: float, yaw_deg: float = 0.0,
                     pitch_deg: float = 0.0, roll_deg: float = 0.0) -> "PerspectiveView":
        return cls(width, height, math.radians(hfov_deg), math.radians(yaw_deg), math.radians(pitch_deg),
                   math.radians(roll_deg))

    def __post_init__(self):
        if self.width < 1 or self.height < 1:
            raise ValueError(f"view size must be positive; got {self.width}x{self.height}")
        focal_from_fov(self.width, self.hfov)

    @property
    def focal(self) -> float:
        """Focal length in pixels (fx = fy)."""
        return focal_from_fov(self.width, self.hfov)

    @property
    def vfov(self) -> float:
        return 2.0 * math.atan(self.height / (2.0 * self.focal))

    @property
    def intrinsics(self) -> np.ndarray:
        """K (3x3) in the half-integer pixel-centre convention: cx = W/2, cy = H/2."""
        f = self.focal
        return np.array([[f, 0.0, self.width / 2.0], [0.0, f, self.height / 2.0], [0.0, 0.0, 1.0]])

    @property
    def rotation(self) -> np.ndarray:
        """R_cam_from_view (3x3): optical-frame vectors -> 360-degree camera frame."""
        return view_rotation(self.yaw, self.pitch, self.roll)

    def pixel_rays(self) -> np.ndarray:
        """Rays (H, W, 3) through the pixel centres in the optical frame, scaled to z = 1 (float64)."""
        f = self.focal
        x = (np.arange(self.width) + 0.5 - self.width / 2.0) / f
        y = (np.arange(self.height) + 0.5 - self.height / 2.0) / f
        xx, yy = np.meshgrid(x, y)
        return np.stack([xx, yy, np.ones_like(xx)], axis=-1)

    def project(self, rays_view: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Optical-frame rays (..., 3) -> continuous pixel (x, y) and a mask of rays in front and inside."""
        z = rays_view[..., 2]
        in_front = z > 1e-9
        safe_z = np.where(in_front, z, 1.0)
        x = rays_view[..., 0] / safe_z * self.focal + self.width / 2.0
        y = rays_view[..., 1] / safe_z * self.focal + self.height / 2.0
        inside = in_front & (x >= 0) & (x < self.width) & (y >= 0) & (y < self.height)
        return x, y, inside
