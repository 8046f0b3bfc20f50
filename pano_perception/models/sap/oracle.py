"""An oracle SAP backend: exact masks from ground-truth instance ids, to test and evaluate the SAP geometry.

Given each view's instance-id image, an object is the set of instances under its positive clicks (and the most
common instance inside its box), minus those under its negative clicks; its "probability" is 1 on those
instances in every frame and 0 elsewhere. Whatever the fused panorama then gets wrong, the scan, the prompt
projection or the fusion got wrong. Instance id 0 (sky, background) is never an object.

Sources of the per-view ids: an instance-id ERP sampled with nearest-neighbour E2P (``erp_instance_source``),
or the synthetic world's ray caster rendering each view exactly (``scene_instance_source``).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch

from ...geometry import PerspectiveView, check_erp_size, e2p
from .backend import BackendSpec, SegmenterBackend

#: Renders the instance ids (N, h, w) seen by each of the given views.
InstanceSource = Callable[[Sequence[PerspectiveView]], np.ndarray]


def erp_instance_source(instances: np.ndarray) -> InstanceSource:
    """Per-view ids sampled from an (H, W) instance-id ERP (nearest neighbour, seam and poles wrapped)."""
    instances = np.asarray(instances)
    if instances.ndim != 2 or instances.dtype.kind not in "iu":
        raise ValueError(f"instance ids must be an integer (H, W) image; got {instances.dtype} {instances.shape}")
    check_erp_size(*instances.shape)
    ids = instances.astype(np.int32)

    def render(views: Sequence[PerspectiveView]) -> np.ndarray:
        return e2p(ids, views, mode="nearest")

    return render


def scene_instance_source(scene, pose) -> InstanceSource:
    """Per-view ids ray-cast from a synthetic ``scene`` seen from the camera ``pose`` (exact, no resampling)."""
    from ...synthetic import RenderOptions, render_view

    options = RenderOptions(shadows=False)

    def render(views: Sequence[PerspectiveView]) -> np.ndarray:
        return np.stack([render_view(scene, pose, view, options).instance.astype(np.int32) for view in views])

    return render


class OracleBackend(SegmenterBackend):
    """Ground-truth masks for the prompted instances; per-view ids are rendered once per view and cached.

    ``supersample`` > 1 renders each view at that many times its size and returns the covered fraction of each
    frame pixel (soft edges, like a model's probabilities); prompts are looked up at the pixel's centre.
    """

    def __init__(self, source: InstanceSource, supersample: int = 1):
        if supersample < 1:
            raise ValueError(f"supersample must be >= 1; got {supersample}")
        self._source = source
        self._supersample = supersample
        self._cache: dict[PerspectiveView, np.ndarray] = {}
        self._ids: np.ndarray | None = None
        self._prompts: dict[int, dict[int, tuple[set[int], set[int]]]] = {}

    def describe(self) -> str:
        return "oracle"

    def init(self, frames: torch.Tensor, views: Sequence[PerspectiveView]) -> None:
        if len(frames) != len(views):
            raise ValueError(f"got {len(frames)} frames for {len(views)} views")
        missing = [v for v in dict.fromkeys(views) if v not in self._cache]
        if missing:
            k = self._supersample
            fine = [replace(v, width=v.width * k, height=v.height * k) for v in missing]  # same FoV and pose
            self._cache.update(zip(missing, self._source(fine)))
        self._ids = np.stack([self._cache[v] for v in views])
        self._prompts = {}

    def _id_at(self, frame_ids: np.ndarray, x: float, y: float) -> int:
        """Id under continuous frame pixel (x, y) (given in frame pixels; the ids may be supersampled)."""
        k = self._supersample
        h, w = frame_ids.shape
        return int(frame_ids[min(int(y * k), h - 1), min(int(x * k), w - 1)])

    def add_prompt(self, frame: int, object_id: int, points: np.ndarray | None = None,
                   labels: np.ndarray | None = None, box: np.ndarray | None = None) -> None:
        if self._ids is None:
            raise RuntimeError("init the backend with frames before adding prompts")
        if points is None and box is None:
            raise ValueError("a prompt needs points or a box")
        frame_ids = self._ids[frame]
        positive, negative = set(), set()
        if points is not None:
            for (x, y), label in zip(np.asarray(points).reshape(-1, 2), np.asarray(labels).reshape(-1)):
                (positive if label == 1 else negative).add(self._id_at(frame_ids, x, y))
        if box is not None:
            x0, y0, x1, y1 = np.asarray(box, dtype=np.float64) * self._supersample
            inside = frame_ids[int(y0):max(int(np.ceil(y1)), int(y0) + 1), int(x0):max(int(np.ceil(x1)), int(x0) + 1)]
            ids, counts = np.unique(inside[inside > 0], return_counts=True)
            if len(ids):
                positive.add(int(ids[np.argmax(counts)]))
        self._prompts.setdefault(object_id, {})[frame] = (positive, negative)

    def _instances_of(self, object_id: int) -> np.ndarray:
        positive = set().union(*(p for p, _ in self._prompts[object_id].values()))
        negative = set().union(*(n for _, n in self._prompts[object_id].values()))
        return np.array(sorted(positive - negative - {0}), dtype=np.int32)

    def propagate(self) -> Iterator[tuple[int, list[int], torch.Tensor]]:
        if self._ids is None:
            raise RuntimeError("init the backend with frames before propagating")
        object_ids = list(self._prompts)
        wanted = [self._instances_of(obj) for obj in object_ids]
        k = self._supersample
        for frame, frame_ids in enumerate(self._ids):
            h, w = frame_ids.shape[0] // k, frame_ids.shape[1] // k
            masks = np.zeros((len(wanted), h, w), dtype=np.float32)
            for i, ids in enumerate(wanted):
                masks[i] = np.isin(frame_ids, ids).reshape(h, k, w, k).mean(axis=(1, 3))
            yield frame, object_ids, torch.from_numpy(masks)

    def reset(self) -> None:
        self._prompts = {}

    def close(self) -> None:
        self._cache.clear()
        self._ids = None


def load_instance_erp(path: str | Path) -> np.ndarray:
    """An instance-id ERP from ``.npy`` or a 16-bit ``.png``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ground-truth instance image not found: {path}")
    if path.suffix == ".npy":
        return np.load(path)
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.ndim != 2:
        raise ValueError(f"{path} is not a single-channel instance-id image")
    return image


def create(spec: BackendSpec) -> OracleBackend:
    """Factory for ``BackendSpec(name="oracle", checkpoint=<instance-id ERP .npy/.png>)``."""
    if not spec.checkpoint:
        raise ValueError("the oracle backend needs the ground-truth instance-id ERP (.npy or 16-bit .png) as its "
                         "checkpoint")
    return OracleBackend(erp_instance_source(load_instance_erp(spec.checkpoint)))
