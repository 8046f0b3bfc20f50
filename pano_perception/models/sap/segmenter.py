"""SAP: promptable instance segmentation of a whole panorama as segmentation of a scanning pseudo-video.

``PanoSegmenter`` renders the scan's views from the ERP in one batched E2P, orders them along the cyclic
trajectory from the view where the first prompt is most central, hands them with the projected prompts to a
``SegmenterBackend``, and fuses the per-view probabilities back into an instance-id ERP (SAP eq. 5).

Which frames get an object's prompts (``prompt_frames``):
- ``visible`` (SAP sec. 3.3): every frame in which one of its positive clicks (or its box) is visible;
- ``central``: for each positive click (or the box) only the frame where it is most central.
Each such frame gets all of the object's clicks visible in it, positive and negative; a negative click never
makes a frame on its own (a frame with only "not here" would erase the object there).

Modes: ``segment`` for clicks and boxes (any number of objects; ``PromptSession`` keeps the accumulating
clicks, undo and reset), ``segment_everything`` for prompts on a spherical Fibonacci grid, de-duplicated by
spherical IoU. Probabilities between backend and fusion are kept as 8-bit (steps of 1/255).
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ...geometry import check_erp_size, e2p
from .backend import SegmenterBackend
from .fusion import ErpWindow, InstanceCanvas, coarse_mask, drop_small_components, fuse_windows, spherical_iou
from .prompts import (
    NEGATIVE,
    POSITIVE,
    BoxPrompt,
    ObjectPrompts,
    PointPrompt,
    fibonacci_rays,
    project_box,
    project_rays,
)
from .trajectory import ScanTrajectory

PROMPT_FRAMES = ("visible", "central")


@dataclass
class Segmentation:
    """A segmented panorama: ``instances`` (H, W) uint16 (0 = none), the ids present with a confidence each
    (mean fused probability inside the object's mask), the scan's start view and frame count, timings (s)."""

    instances: np.ndarray
    scores: dict[int, float]
    start_view: int
    frames: int
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def object_ids(self) -> list[int]:
        return sorted(self.scores)


@dataclass
class _FramePrompt:
    points: list[np.ndarray] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    box: np.ndarray | None = None


class PanoSegmenter:
    """SAP on one panorama at a time: ``set_image``, then ``segment`` / ``segment_everything``."""

    def __init__(self, backend: SegmenterBackend, trajectory: ScanTrajectory | None = None, *,
                 threshold: float = 0.5, prompt_frames: str = "visible", min_component_px: int = 0,
                 device: str = "cpu"):
        if prompt_frames not in PROMPT_FRAMES:
            raise ValueError(f"prompt_frames must be one of {PROMPT_FRAMES}; got {prompt_frames!r}")
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1]; got {threshold}")
        if min_component_px < 0:
            raise ValueError(f"min_component_px must be >= 0; got {min_component_px}")
        self.backend = backend
        self.trajectory = trajectory or ScanTrajectory()
        self.threshold = threshold
        self.prompt_frames = prompt_frames
        self.min_component_px = min_component_px
        self.device = torch.device(device)
        self._frames: torch.Tensor | None = None  # (N, 3, s, s) uint8, trajectory order
        self._erp_shape: tuple[int, int] | None = None
        self._render_s = 0.0
        self._backend_order: tuple[int, ...] | None = None

    # ----- image -----
    @property
    def erp_shape(self) -> tuple[int, int] | None:
        """(H, W) of the current panorama, None before ``set_image``."""
        return self._erp_shape

    def set_image(self, erp: np.ndarray) -> None:
        """Render the scan's views of an RGB uint8 ERP (H, W, 3) in one batched E2P."""
        if erp.ndim != 3 or erp.shape[2] != 3 or erp.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 panorama (H, W, 3); got {erp.dtype} {erp.shape}")
        check_erp_size(*erp.shape[:2])
        start = time.perf_counter()
        image = torch.from_numpy(np.ascontiguousarray(erp)).to(self.device).permute(2, 0, 1)
        self._frames = e2p(image, self.trajectory.views)
        self._erp_shape = erp.shape[:2]
        self._backend_order = None
        self._render_s = time.perf_counter() - start

    # ----- prompts -> frames -----
    def _frame_prompts(self, obj: ObjectPrompts, views) -> dict[int, _FramePrompt]:
        """Prompts per video frame for one object (see the module docstring for the policy).

        A positive click's (or the box's) most central frame always gets it, clamped into the frame, so every
        object is prompted somewhere even where the grid leaves holes or the click sits on a frame's edge.
        """
        prompts: dict[int, _FramePrompt] = {}
        size = np.array([views[0].width, views[0].height], dtype=np.float64)
        positive_frames = np.zeros(len(views), dtype=bool)
        shown = np.zeros((len(views), len(obj.points)), dtype=bool)
        if obj.points:
            rays = np.stack([p.ray for p in obj.points])
            labels = np.array([POSITIVE if p.positive else NEGATIVE for p in obj.points])
            pixels, visible = project_rays(rays, views)
            pixels = np.clip(pixels, 0.0, size - 1e-3)
            shown |= visible
            for i in np.flatnonzero(labels == POSITIVE):
                central = self._most_central(rays[i], views)
                positive_frames[central] = shown[central, i] = True
                if self.prompt_frames == "visible":
                    positive_frames |= visible[:, i]
        box_frames = np.zeros(len(views), dtype=bool)
        if obj.box is not None:
            boxes, box_visible = project_box(obj.box, views)
            box_frames[self._most_central(obj.box.centre_ray, views)] = True
            if self.prompt_frames == "visible":
                box_frames |= box_visible
            positive_frames |= box_frames
        for frame in np.flatnonzero(positive_frames):
            prompt = _FramePrompt()
            if shown[frame].any():
                prompt.points = list(pixels[frame, shown[frame]])
                prompt.labels = list(labels[shown[frame]])
            if box_frames[frame]:
                prompt.box = boxes[frame]
            prompts[int(frame)] = prompt
        return prompts

    @staticmethod
    def _most_central(ray: np.ndarray, views) -> int:
        axes = np.stack([v.rotation[:, 2] for v in views])
        return int(np.argmax(axes @ (ray / np.linalg.norm(ray))))

    # ----- running the backend -----
    def _run(self, objects: Sequence[ObjectPrompts], start: int) -> tuple[np.ndarray, list[int], torch.Tensor]:
        """Prompt and propagate; returns the video order, the object ids and uint8 probabilities (N, K, s, s)."""
        order = self.trajectory.window(start)
        views = [self.trajectory.views[i] for i in order]
        if self._backend_order == tuple(order):
            self.backend.reset()
        else:
            self._backend_order = None
            self.backend.init(self._frames[torch.as_tensor(order, device=self._frames.device)], views)
            self._backend_order = tuple(order)
        for obj in objects:
            for frame, prompt in self._frame_prompts(obj, views).items():
                points = np.array(prompt.points).reshape(-1, 2) if prompt.points else None
                labels = np.array(prompt.labels) if prompt.points else None
                self.backend.add_prompt(frame, obj.object_id, points, labels, prompt.box)
        size = self.trajectory.frame_size
        probabilities = torch.zeros((len(order), len(objects), size, size), dtype=torch.uint8)
        object_ids = [obj.object_id for obj in objects]
        for frame, ids, frame_probabilities in self.backend.propagate():
            columns = [object_ids.index(i) for i in ids]
            quantised = (frame_probabilities * 255.0).add_(0.5).clamp_(0.0, 255.0).to(torch.uint8)  # rounded
            probabilities[frame, columns] = quantised.cpu()
        return order, object_ids, probabilities

    def _fused(self, order: np.ndarray, probabilities: torch.Tensor) -> list[tuple[int, ErpWindow, torch.Tensor]]:
        """(column, window, fused float probability inside the window (its ``shape``)) for every object.

        An object is fused only from the views where it reaches the threshold: a view below the threshold cannot
        lift any pixel to it, so every pixel at or above the threshold gets exactly the all-view maximum (SAP
        eq. 5); pixels below it are never assigned, and their value is a lower bound. Each view is sampled once
        for all of its objects (through the cached P2E windows of its grid column), and each object is fused
        only inside the ERP window where it reaches the threshold; outside it the object is below it.
        """
        position = np.empty(len(order), dtype=np.int64)
        position[order] = np.arange(len(order))  # trajectory view index -> video frame
        reached = (probabilities.amax(dim=(-2, -1)).float() / 255.0 >= self.threshold).numpy()  # (frames, objects)
        fused = fuse_windows(probabilities, [self.trajectory.views[i] for i in order], self._erp_shape[0], reached,
                             self.threshold, groups=[position[list(column)] for column in self.trajectory.column_views],
                             device=self.device)
        return [(column, window, values) for column, (window, values) in enumerate(fused)]

    def _require_image(self) -> None:
        if self._frames is None:
            raise RuntimeError("no panorama yet: call set_image first")

    # ----- modes -----
    def segment(self, objects: Sequence[ObjectPrompts]) -> Segmentation:
        """Instance ids for prompted objects (ids = their ``object_id``); objects without a positive click or
        a box are skipped. The scan starts at the view where the first object's anchor is most central."""
        self._require_image()
        objects = [obj for obj in objects if not obj.is_empty]
        height, width = self._erp_shape
        if len({obj.object_id for obj in objects}) != len(objects):
            raise ValueError("object ids must be unique")
        if not objects:
            return Segmentation(np.zeros((height, width), np.uint16), {}, 0, 0, {"render": self._render_s})
        start = self.trajectory.most_central_view(objects[0].anchor_ray)
        tic = time.perf_counter()
        order, object_ids, probabilities = self._run(objects, start)
        backend_s = time.perf_counter() - tic
        tic = time.perf_counter()
        canvas = InstanceCanvas(height, width, self.threshold, self.device)
        for column, window, fused in self._fused(order, probabilities):
            canvas.add(object_ids[column], fused, window)
        instances = canvas.result(self.min_component_px)
        timings = {"render": self._render_s, "backend": backend_s, "fusion": time.perf_counter() - tic}
        return Segmentation(instances, canvas.mean_probabilities(instances), start, len(order), timings)

    def segment_everything(self, points: int = 64, iou_threshold: float = 0.7, min_area: float = 1e-4,
                           batch: int = 16) -> Segmentation:
        """Segment everything: one positive click per point of a spherical Fibonacci grid, ``batch`` objects per
        scan; masks under ``min_area`` (fraction of the sphere) are dropped, and a mask whose spherical IoU with
        a more confident kept mask exceeds ``iou_threshold`` is a duplicate. Ids 1..M by decreasing confidence."""
        self._require_image()
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1]; got {iou_threshold}")
        if batch < 1:
            raise ValueError(f"batch must be >= 1; got {batch}")
        height, width = self._erp_shape
        rays = fibonacci_rays(points)
        candidates = []  # (score, area, coarse mask, uint8 probability inside the mask in its window, window)
        backend_s = fusion_s = 0.0
        frames = 0
        for first in range(0, points, batch):
            objects = [ObjectPrompts(first + i + 1, [PointPrompt(ray)]) for i, ray in
                       enumerate(rays[first:first + batch])]
            tic = time.perf_counter()
            order, _, probabilities = self._run(objects, self.trajectory.most_central_view(objects[0].anchor_ray))
            backend_s += time.perf_counter() - tic
            frames += len(order)
            tic = time.perf_counter()
            for _, window, fused in self._fused(order, probabilities):
                mask = (fused >= self.threshold).cpu().numpy()
                if self.min_component_px > 0:
                    mask = drop_small_components(mask, self.min_component_px, window)
                area = float(mask.sum(axis=1, dtype=np.float64) @ window.row_weights())
                if area < min_area:
                    continue
                probability = fused.cpu().numpy()
                score = float(probability[mask].mean())
                quantised = np.where(mask, np.round(probability * 255.0), 0).astype(np.uint8)
                full = np.zeros((height, width), dtype=bool)
                window.paste(mask, full)
                candidates.append((score, area, coarse_mask(full), quantised, window))
            fusion_s += time.perf_counter() - tic
        tic = time.perf_counter()
        candidates.sort(key=lambda c: (-c[0], -c[1]))
        kept = []
        for candidate in candidates:
            if all(spherical_iou(candidate[2], other[2]) <= iou_threshold for other in kept):
                kept.append(candidate)
        canvas = InstanceCanvas(height, width, self.threshold, "cpu")
        for object_id, (_, _, _, quantised, window) in enumerate(kept, start=1):
            canvas.add(object_id, torch.from_numpy(quantised).float() / 255.0, window)
        instances = canvas.result()
        scores = {i: kept[i - 1][0] for i in canvas.mean_probabilities(instances)}
        fusion_s += time.perf_counter() - tic
        timings = {"render": self._render_s, "backend": backend_s, "fusion": fusion_s}
        return Segmentation(instances, scores, 0, frames, timings)

    def close(self) -> None:
        """Free the backend and the rendered frames."""
        self.backend.close()
        self._frames = None
        self._backend_order = None


class PromptSession:
    """Accumulating clicks and boxes for interactive use: objects, undo, reset (ids 1, 2, ...)."""

    def __init__(self):
        self.objects: list[ObjectPrompts] = []
        self._history: list[tuple[str, int]] = []  # ("point" | "new", object id); a box comes with its "new"
        self._next_id = 1
        self._current: int | None = None

    @property
    def current_id(self) -> int | None:
        return self._current

    def _object(self, object_id: int) -> ObjectPrompts:
        return next(obj for obj in self.objects if obj.object_id == object_id)

    def new_object(self) -> int:
        """Start a new object; later clicks go to it. Returns its id."""
        if self._next_id > 65535:
            raise ValueError("no instance ids left (65535 objects); reset first")
        obj = ObjectPrompts(self._next_id)
        self.objects.append(obj)
        self._history.append(("new", obj.object_id))
        self._current = self._next_id
        self._next_id += 1
        return obj.object_id

    def add_point(self, point: PointPrompt) -> int:
        """Add a click to the current object (a first click starts object 1). Returns the object id."""
        if self._current is None:
            self.new_object()
        self._object(self._current).points.append(point)
        self._history.append(("point", self._current))
        return self._current

    def add_box(self, box: BoxPrompt) -> int:
        """A box always starts a new object (SAM takes one box per object); one undo removes both. Returns its id."""
        object_id = self.new_object()
        self._object(object_id).box = box
        return object_id

    def undo(self) -> bool:
        """Take back the last click, box or new object; False when there is nothing to undo."""
        if not self._history:
            return False
        kind, object_id = self._history.pop()
        obj = self._object(object_id)
        if kind == "point":
            obj.points.pop()
        else:
            self.objects.remove(obj)
            self._next_id = object_id
            earlier = [oid for k, oid in self._history if k == "new"]
            self._current = earlier[-1] if earlier else None
        return True

    def reset(self) -> None:
        self.__init__()

    @property
    def has_prompts(self) -> bool:
        return any(not obj.is_empty for obj in self.objects)
