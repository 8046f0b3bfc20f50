"""Targets in the official MTPano output frame (docs/CONVENTIONS.md, last section).

Our labels live in the 360-degree camera frame (REP-103: x forward, y left, z up; normals towards the camera). The
network is trained, like the release, to output vectors in the release's frames:

* normals: N-space, pointing away from the camera. ``n_official = (n_x, n_z, n_y)`` of ours: the inverse of
  ``postprocess.official_normals_to_ours``, a swap of two axes and therefore its own inverse.
* point maps (the extended ``point`` head): the release's S-space of ``utils/aux_label_generator.py``
  (ray ``s = (cos φ sin θ, sin φ, −cos φ cos θ)``, ARCHITECTURE_FACTS §8/§9), i.e. ``p_official = −(p_y, p_z, p_x)``.
  Metres in both frames.
"""
from __future__ import annotations

import torch

from pano_perception.models.mtpano.postprocess import official_normals_to_ours

VECTOR_KINDS = ("normals", "points")


def to_official_frame(vectors: torch.Tensor, kind: str) -> torch.Tensor:
    """Our-frame vectors [B, 3, H, W] (or [..., 3, H, W]) -> the release's frame for ``kind`` (see module doc)."""
    if kind not in VECTOR_KINDS:
        raise ValueError(f"kind must be one of {VECTOR_KINDS}; got {kind!r}")
    flat = vectors.reshape(-1, *vectors.shape[-3:])
    if kind == "normals":
        out = official_normals_to_ours(flat)  # the axis swap is an involution
    else:
        out = -flat[:, [1, 2, 0]]
    return out.reshape(vectors.shape)
