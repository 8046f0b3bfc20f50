"""The SAP scanning trajectory: a yaw x pitch grid of perspective views visited column first, in a zigzag.

Angles are in degrees at the interface and ERP terms (docs/CONVENTIONS.md): yaw is the longitude of a view's
optical axis (positive right, 0 straight ahead, -180 the seam), pitch its latitude (positive up).

- Step between neighbouring views: ``fov * (1 - overlap)`` (SAP eq. 6), rounded so that whole columns close the
  circle: ``n_columns = ceil(360 / step)``, yaw of column ``c`` = ``-180 + c * 360 / n_columns``.
- Pitch rows: given, or derived so that the top and bottom rows touch the poles with at most one step between
  rows: pitches from ``-(90 - vfov/2)`` to ``+(90 - vfov/2)``, ``ceil((180 - vfov) / step) + 1`` of them.
  The defaults (FoV 90, overlap 0.5) give pitch -45 / 0 / +45 and 8 columns: 24 views (SAP Tab. 8).
- Column-first zigzag (eq. 8): even columns top to bottom, odd columns bottom to top. Consecutive views differ
  in yaw only or in pitch only; with an even column count the last view is one yaw step from the first, so
  the trajectory is a closed loop and a window of ``len(trajectory)`` views from any start visits every view once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ...geometry import PerspectiveView

_EPS = 1e-9


@dataclass(frozen=True)
class ScanTrajectory:
    """Views of a SAP scan: ``fov_deg`` (horizontal = vertical, square frames), ``overlap`` in [0, 1),
    ``pitch_deg`` (rows, any order; None = derived) and ``frame_size`` (pixels per side)."""

    fov_deg: float = 90.0
    overlap: float = 0.5
    pitch_deg: tuple[float, ...] | None = None
    frame_size: int = 1024

    def __post_init__(self):
        if not 0.0 < self.fov_deg < 180.0:
            raise ValueError(f"scan FoV must be in (0, 180) degrees; got {self.fov_deg}")
        if not 0.0 <= self.overlap < 1.0:
            raise ValueError(f"scan overlap must be in [0, 1); got {self.overlap}")
        if self.frame_size < 16:
            raise ValueError(f"frame size must be at least 16 pixels; got {self.frame_size}")
        if self.pitch_deg is not None:
            object.__setattr__(self, "pitch_deg", tuple(float(p) for p in self.pitch_deg))
            if not self.pitch_deg:
                raise ValueError("pitch rows must not be empty (use None for the derived rows)")
            if any(not -90.0 <= p <= 90.0 for p in self.pitch_deg):
                raise ValueError(f"pitch rows must be in [-90, 90] degrees; got {list(self.pitch_deg)}")
            if len(set(self.pitch_deg)) != len(self.pitch_deg):
                raise ValueError(f"pitch rows must be distinct; got {list(self.pitch_deg)}")

    @property
    def step_deg(self) -> float:
        """Nominal angular step between neighbouring views (degrees)."""
        return self.fov_deg * (1.0 - self.overlap)

    @cached_property
    def yaws_deg(self) -> tuple[float, ...]:
        """Yaw of each column, left to right in the ERP image (column 0 looks at the seam)."""
        n = math.ceil(360.0 / self.step_deg - _EPS)
        return tuple(-180.0 + c * 360.0 / n for c in range(n))

    @cached_property
    def pitches_deg(self) -> tuple[float, ...]:
        """Pitch of each row, top to bottom (descending)."""
        if self.pitch_deg is not None:
            return tuple(sorted(self.pitch_deg, reverse=True))
        limit = 90.0 - self.fov_deg / 2.0  # square frames: vertical FoV = horizontal FoV
        n = math.ceil((2.0 * limit) / self.step_deg - _EPS) + 1
        if n == 1:
            return (0.0,)
        return tuple(limit - r * 2.0 * limit / (n - 1) for r in range(n))

    @property
    def n_columns(self) -> int:
        return len(self.yaws_deg)

    @property
    def n_rows(self) -> int:
        return len(self.pitches_deg)

    def __len__(self) -> int:
        return self.n_columns * self.n_rows

    @cached_property
    def grid_positions(self) -> tuple[tuple[int, int], ...]:
        """(column, row) of each view in trajectory order: column first, zigzag (SAP eq. 8)."""
        order = []
        for c in range(self.n_columns):
            rows = range(self.n_rows) if c % 2 == 0 else range(self.n_rows - 1, -1, -1)
            order.extend((c, r) for r in rows)
        return tuple(order)

    @cached_property
    def column_views(self) -> tuple[tuple[int, ...], ...]:
        """Indices (trajectory order) of the views of each column, column 0 first."""
        return tuple(tuple(i for i, (c, _) in enumerate(self.grid_positions) if c == column)
                     for column in range(self.n_columns))

    @property
    def closed_loop(self) -> bool:
        """True when the last view is one yaw step from the first (an even column count, or a single row)."""
        return self.n_columns % 2 == 0 or self.n_rows == 1

    @cached_property
    def views(self) -> tuple[PerspectiveView, ...]:
        """The views in trajectory order (square ``frame_size`` frames)."""
        return tuple(
            PerspectiveView.from_degrees(self.frame_size, self.frame_size, self.fov_deg, self.yaws_deg[c],
                                         self.pitches_deg[r])
            for c, r in self.grid_positions)

    @cached_property
    def axes(self) -> np.ndarray:
        """Unit optical axes (N, 3) of the views in the camera frame, trajectory order."""
        return np.stack([v.rotation[:, 2] for v in self.views])

    def window(self, start: int, length: int | None = None) -> np.ndarray:
        """Indices of ``length`` (default: all) views from ``start`` along the cyclic trajectory."""
        n = len(self)
        length = n if length is None else length
        if length < 0:
            raise ValueError(f"window length must be non-negative; got {length}")
        return (int(start) % n + np.arange(length)) % n

    def most_central_view(self, ray: np.ndarray) -> int:
        """Index of the view whose optical axis is closest to ``ray`` (3,), camera frame; ties: lowest index."""
        ray = np.asarray(ray, dtype=np.float64)
        norm = np.linalg.norm(ray)
        if not np.isfinite(norm) or norm < _EPS:
            raise ValueError(f"a direction needs a finite non-zero vector; got {ray.tolist()}")
        cosines = self.axes @ (ray / norm)
        return int(np.flatnonzero(cosines >= cosines.max() - 1e-12)[0])
