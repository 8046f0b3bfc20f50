"""SAP evaluation protocol (SAP Sec. 5.2) on instance-labelled panoramas, with the paper's baselines.

    python -m training.eval.sap_eval --data synthetic:runs/data/sap_eval256 --backend builtin \\
        --frame-size 128 --out runs/eval/sap_builtin

Protocol, per object instance (``is_thing``; stuff such as walls and floor is not evaluated) of at least
``min_area`` of the panorama's pixels:

- **1 click**: a positive click at the pixel farthest from the mask's boundary (``farthest_from_boundary``:
  Euclidean distance in ERP pixels, the seam wrapped and the poles continued, ``pad_erp``; first pixel on ties).
- **3-click error correction**: from the 1-click prediction, twice: the largest connected error region (false
  negatives and false positives, components joined across the seam and the poles) gets a click at its pixel
  farthest from its boundary, positive for a false-negative region, negative for a false-positive one; the
  method re-segments with all clicks so far (``correction_click``).
- IoU on ERP pixels; mIoU over all instances and per size, COCO's area thresholds (32², 96² px at 640 x 480)
  scaled by the panorama's area: ``small < 32² · s``, ``medium < 96² · s``, ``large`` above, ``s = H·W / 640·480``
  (at 256 x 512: 437 and 3932 px). The **seam/pole subset**: instances that touch both the first and the last
  column, or reach within ``POLE_LATITUDE_DEG`` of a pole.

Methods, all with the same backend (a ``SegmenterBackend``):

- ``direct``: the whole ERP resized to the backend's square input (one frame; SAP's "SAM2" row);
- ``erp_patchify``: 90-degree windows cut straight from the ERP (no perspective transform; OmniSAM-style), the
  scan's grid and column-first order, max fusion (SAP Tab. 6);
- ``scan_no_overlap``: the perspective scan with overlap 0 (8 views at pitch ±45, SAP Tab. 5/8);
- ``scan``: the perspective scan with 50 % overlap (24 views): ours.
- ``oracle_scan`` (with ``--oracle``): the 24-view scan with ground-truth masks per view and positive clicks only:
  what the geometry alone reaches (the upper bound of ``scan``).
"""
from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from pano_perception.geometry import erp_connected_components, lonlat_to_ray, ray_to_lonlat
from pano_perception.geometry.projection import pad_erp
from pano_perception.geometry.sphere import erp_pixel_to_lonlat, erp_rays
from pano_perception.models.sap import (
    BackendSpec,
    ObjectPrompts,
    OracleBackend,
    PanoSegmenter,
    PointPrompt,
    ScanTrajectory,
    SegmenterBackend,
    create_backend,
    erp_instance_source,
)

from ..sap.data import Panorama, PanoramaCollection

COCO_IMAGE_AREA = 640 * 480
COCO_SMALL, COCO_MEDIUM = 32 ** 2, 96 ** 2
POLE_LATITUDE_DEG = 60.0
METHODS = ("direct", "erp_patchify", "scan_no_overlap", "scan")

#: A click: continuous ERP pixel (x, y) and whether it is positive.
Click = tuple[float, float, bool]


# ----------------------------------------------------------------------------------------------------------------
# clicks and strata
# ----------------------------------------------------------------------------------------------------------------
def erp_distance_inside(mask: np.ndarray) -> np.ndarray:
    """Distance (ERP px) of each pixel of ``mask`` (H, 2H) to the nearest pixel outside it, the seam wrapped and
    the rows continued across the poles (0 outside the mask)."""
    height = mask.shape[0]
    pad = height // 2
    padded = pad_erp(torch.from_numpy(mask.astype(np.uint8))[None, None], pad)[0, 0].numpy().astype(bool)
    distance = ndimage.distance_transform_edt(padded)
    return distance[pad:pad + height, pad:pad + mask.shape[1]]


def farthest_from_boundary(mask: np.ndarray) -> tuple[float, float]:
    """The continuous ERP pixel (x, y) (a pixel centre) farthest from the boundary of a non-empty mask."""
    distance = erp_distance_inside(mask)
    row, col = np.unravel_index(int(np.argmax(distance)), distance.shape)
    return col + 0.5, row + 0.5


def correction_click(prediction: np.ndarray, truth: np.ndarray) -> Click | None:
    """The next click of the error-correction protocol: at the deepest pixel of the largest connected error
    region, positive when it is a false negative; None when the prediction is exact."""
    best = None
    for positive, errors in ((True, truth & ~prediction), (False, prediction & ~truth)):
        labels, count = erp_connected_components(errors)
        if count == 0:
            continue
        sizes = np.bincount(labels.ravel(), minlength=count + 1)
        sizes[0] = 0
        largest = int(np.argmax(sizes))
        if best is None or sizes[largest] > best[0]:
            best = (sizes[largest], positive, labels == largest)
    if best is None:
        return None
    x, y = farthest_from_boundary(best[2])
    return x, y, best[1]


def size_class(area_px: int, height: int, width: int) -> str:
    """``small``, ``medium`` or ``large`` with COCO's thresholds scaled to the panorama's area (module doc)."""
    scale = height * width / COCO_IMAGE_AREA
    if area_px < COCO_SMALL * scale:
        return "small"
    return "medium" if area_px < COCO_MEDIUM * scale else "large"


def at_seam_or_pole(mask: np.ndarray) -> bool:
    """Whether an instance touches both ERP borders (it crosses the seam) or reaches within
    ``POLE_LATITUDE_DEG`` of a pole."""
    height = mask.shape[0]
    rows = int(round(height * (90.0 - POLE_LATITUDE_DEG) / 180.0))
    crosses_seam = bool(mask[:, 0].any() and mask[:, -1].any())
    return crosses_seam or bool(mask[:rows].any() or mask[height - rows:].any())


def iou(prediction: np.ndarray, truth: np.ndarray) -> float:
    union = np.logical_or(prediction, truth).sum()
    return float(np.logical_and(prediction, truth).sum() / union) if union else 1.0


# ----------------------------------------------------------------------------------------------------------------
# methods
# ----------------------------------------------------------------------------------------------------------------
class Method:
    """A way to segment one object of a panorama from clicks with a backend."""

    name = "method"

    def set_image(self, pano: Panorama) -> None:
        raise NotImplementedError

    def predict(self, clicks: Sequence[Click]) -> np.ndarray:
        """Boolean (H, W) mask of the object under ``clicks`` (continuous ERP pixels)."""
        raise NotImplementedError


class ScanMethod(Method):
    """SAP's perspective scan (``PanoSegmenter``) on a given trajectory."""

    def __init__(self, name: str, backend: SegmenterBackend, trajectory: ScanTrajectory):
        self.name = name
        self.segmenter = PanoSegmenter(backend, trajectory)

    def set_image(self, pano: Panorama) -> None:
        self.segmenter.set_image(pano.rgb)
        self._shape = pano.rgb.shape[:2]

    def predict(self, clicks: Sequence[Click]) -> np.ndarray:
        height, width = self._shape
        points = [PointPrompt.from_erp_pixel(x, y, height, width, positive) for x, y, positive in clicks]
        return self.segmenter.segment([ObjectPrompts(1, points)]).instances == 1


def _propagate_one(backend: SegmenterBackend, frames: torch.Tensor, views: list,
                   prompts: dict[int, tuple[np.ndarray, np.ndarray]]) -> torch.Tensor:
    """Run ``backend`` on frames with one object's point prompts per frame; probabilities (N, h, w)."""
    backend.init(frames, views)
    for frame, (points, labels) in prompts.items():
        backend.add_prompt(frame, 1, points, labels)
    out = torch.zeros((len(frames), *frames.shape[-2:]))
    for frame, _, probabilities in backend.propagate():
        out[frame] = probabilities[0].float().cpu()
    return out


class DirectMethod(Method):
    """The ERP resized to the backend's square input, one frame; the mask resized back (SAP's "SAM2" row)."""

    name = "direct"

    def __init__(self, backend: SegmenterBackend, size: int):
        self.backend, self.size = backend, size

    def set_image(self, pano: Panorama) -> None:
        self._shape = pano.rgb.shape[:2]
        frame = cv2.resize(pano.rgb, (self.size, self.size), interpolation=cv2.INTER_AREA)
        self._frames = torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1)))[None]

    def predict(self, clicks: Sequence[Click]) -> np.ndarray:
        height, width = self._shape
        points = np.array([(x * self.size / width, y * self.size / height) for x, y, _ in clicks])
        labels = np.array([int(positive) for _, _, positive in clicks])
        probabilities = _propagate_one(self.backend, self._frames, [None], {0: (points, labels)})[0].numpy()
        return cv2.resize(probabilities, (width, height), interpolation=cv2.INTER_LINEAR) >= 0.5


@dataclass(frozen=True)
class ErpWindow:
    """A square window cut straight from the ERP: longitudes ``lon_left`` to ``lon_left + span`` (wrapping),
    latitudes ``lat_top`` down to ``lat_top - span`` (radians). Implements the builtin backend's
    ``FrameGeometry`` (its pixels' rays and where a ray falls in it), so the backend's memory works on it."""

    lon_left: float
    lat_top: float
    span: float

    def _lonlat(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.lon_left + u * self.span, self.lat_top - v * self.span

    def rays(self, size: int) -> np.ndarray:
        t = (np.arange(size) + 0.5) / size
        u, v = np.meshgrid(t, t)
        return np.asarray(lonlat_to_ray(*self._lonlat(u, v)))

    def locate(self, rays: np.ndarray):
        lon, lat = ray_to_lonlat(np.asarray(rays, dtype=np.float64))
        u = np.mod(lon - self.lon_left, 2 * math.pi) / self.span
        v = (self.lat_top - lat) / self.span
        return u, v, (u >= 0) & (u < 1) & (v >= 0) & (v < 1)

    def cut(self, erp: np.ndarray, size: int) -> np.ndarray:
        """The window's pixels (size, size, 3), sampled bilinearly from the ERP (seam wrapped)."""
        height, width = erp.shape[:2]
        t = (np.arange(size) + 0.5) / size
        lon, lat = self._lonlat(*np.meshgrid(t, t))
        x = (lon + math.pi) / (2 * math.pi) * width - 0.5
        y = (math.pi / 2 - lat) / math.pi * height - 0.5
        wrapped = np.concatenate([erp, erp[:, :1]], axis=1)  # column W = column 0 for interpolation at the seam
        return cv2.remap(wrapped, np.mod(x, width).astype(np.float32), np.clip(y, 0, height - 1).astype(np.float32),
                         cv2.INTER_LINEAR)


class ErpPatchifyMethod(Method):
    """Windows cut straight from the ERP on the scan's grid (90-degree windows, centres at the trajectory's yaws and
    pitches), in the scan's order from the window where the first click is most central; max fusion."""

    name = "erp_patchify"

    def __init__(self, backend: SegmenterBackend, trajectory: ScanTrajectory):
        self.backend, self.trajectory = backend, trajectory
        span = math.radians(trajectory.fov_deg)
        self.windows = [ErpWindow(v.yaw - span / 2, v.pitch + span / 2, span) for v in trajectory.views]

    def set_image(self, pano: Panorama) -> None:
        self._shape = pano.rgb.shape[:2]
        size = self.trajectory.frame_size
        self._frames = torch.from_numpy(np.stack([w.cut(pano.rgb, size).transpose(2, 0, 1) for w in self.windows]))
        rays = erp_rays(*self._shape, numpy=True).astype(np.float64)
        self._erp_grids = []
        for window in self.windows:
            u, v, inside = window.locate(rays)
            grid = np.stack([2 * u - 1, 2 * v - 1], axis=-1).astype(np.float32)
            self._erp_grids.append((torch.from_numpy(grid)[None], torch.from_numpy(inside)))

    def predict(self, clicks: Sequence[Click]) -> np.ndarray:
        height, width = self._shape
        size = self.trajectory.frame_size
        rays = np.stack([np.asarray(lonlat_to_ray(*erp_pixel_to_lonlat(x, y, height, width))) for x, y, _ in clicks])
        labels = np.array([int(positive) for _, _, positive in clicks])
        start = self.trajectory.most_central_view(rays[0])
        order = self.trajectory.window(start)
        windows = [self.windows[i] for i in order]
        located = [w.locate(rays) for w in windows]
        prompts = {}
        for frame, (u, v, inside) in enumerate(located):
            if (inside & (labels == 1)).any():  # frame 0, the first click's most central window, is one
                points = np.stack([u[inside], v[inside]], -1) * size
                prompts[frame] = (points, labels[inside])
        probabilities = _propagate_one(self.backend, self._frames[torch.as_tensor(order)], windows, prompts)
        fused = torch.zeros((height, width))
        for frame, index in enumerate(order):
            grid, inside = self._erp_grids[index]
            sampled = F.grid_sample(probabilities[frame][None, None], grid, mode="bilinear", align_corners=False)
            fused = torch.maximum(fused, torch.where(inside, sampled[0, 0], torch.zeros(())))
        return (fused >= 0.5).numpy()


# ----------------------------------------------------------------------------------------------------------------
# evaluation
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class InstanceResult:
    panorama: int
    instance: int
    area_px: int
    size: str
    seam_or_pole: bool
    iou_1: float
    iou_3: float


def evaluate_method(method: Method, panoramas, *, min_area: float = 2e-4, clicks: int = 3,
                    progress: Callable[[str], None] | None = None) -> list[InstanceResult]:
    """Per-instance IoUs of ``method`` after 1 and after ``clicks`` clicks on every object instance."""
    results = []
    for index in range(len(panoramas)):
        pano = panoramas[index]
        method.set_image(pano)
        height, width = pano.instance.shape
        counts = np.bincount(pano.instance.ravel())
        for instance in np.flatnonzero(counts >= min_area * pano.instance.size):
            if instance == 0 or instance in pano.stuff:
                continue
            truth = pano.instance == instance
            history: list[Click] = [(*farthest_from_boundary(truth), True)]
            prediction = method.predict(history)
            first = iou(prediction, truth)
            for _ in range(clicks - 1):
                click = correction_click(prediction, truth)
                if click is None:
                    break
                history.append(click)
                prediction = method.predict(history)
            results.append(InstanceResult(index, int(instance), int(counts[instance]),
                                          size_class(int(counts[instance]), height, width), at_seam_or_pole(truth),
                                          first, iou(prediction, truth)))
        if progress is not None:
            progress(f"{method.name}: panorama {index + 1}/{len(panoramas)}, {len(results)} instances")
    return results


def summarise(results: Sequence[InstanceResult]) -> dict:
    """mIoU (in %) after 1 and 3 clicks: overall, per size, seam/pole subset; instance counts."""
    def mean(values):
        return round(100.0 * float(np.mean(values)), 1) if values else None

    groups = {"overall": list(results), "small": [r for r in results if r.size == "small"],
              "medium": [r for r in results if r.size == "medium"], "large": [r for r in results if r.size == "large"],
              "seam_pole": [r for r in results if r.seam_or_pole]}
    return {name: {"count": len(group), "miou_1": mean([r.iou_1 for r in group]),
                   "miou_3": mean([r.iou_3 for r in group])} for name, group in groups.items()}


def markdown_table(summaries: dict[str, dict]) -> str:
    """The SAP Tab. 1 layout (+ seam/pole) for the methods evaluated."""
    columns = ("overall", "small", "medium", "large", "seam_pole")
    lines = ["| Method | 1-click overall | small | medium | large | seam/pole | 3-click overall | small | medium | "
             "large | seam/pole |", "|---|" + "---:|" * 10]
    for name, summary in summaries.items():
        cells = [summary[c]["miou_1"] for c in columns] + [summary[c]["miou_3"] for c in columns]
        lines.append(f"| {name} | " + " | ".join("–" if v is None else f"{v:.1f}" for v in cells) + " |")
    counts = next(iter(summaries.values()))
    lines.append("")
    lines.append("Instances: " + ", ".join(f"{c} {counts[c]['count']}" for c in columns) + ".")
    return "\n".join(lines)


def build_methods(backend: SegmenterBackend, frame_size: int, names: Sequence[str]) -> list[Method]:
    """The named methods (``METHODS``) sharing ``backend``."""
    factories = {
        "direct": lambda: DirectMethod(backend, frame_size),
        "erp_patchify": lambda: ErpPatchifyMethod(backend, ScanTrajectory(90.0, 0.5, None, frame_size)),
        "scan_no_overlap": lambda: ScanMethod("scan_no_overlap", backend, ScanTrajectory(90.0, 0.0, None, frame_size)),
        "scan": lambda: ScanMethod("scan", backend, ScanTrajectory(90.0, 0.5, None, frame_size)),
    }
    unknown = set(names) - set(factories)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; choose from {METHODS}")
    return [factories[n]() for n in names]


class OracleScanMethod(ScanMethod):
    """The 24-view scan with ground-truth view masks (an ``OracleBackend`` on each panorama's instance ids): what
    the geometry alone reaches. Negative clicks are ignored (the oracle would drop a whole instance under one,
    and a correction click at a thin false-positive rim often lands on the object itself in some view)."""

    def __init__(self, frame_size: int):
        super().__init__("oracle_scan", OracleBackend(erp_instance_source(np.zeros((2, 4), np.int32))),
                         ScanTrajectory(90.0, 0.5, None, frame_size))

    def set_image(self, pano: Panorama) -> None:
        self.segmenter = PanoSegmenter(OracleBackend(erp_instance_source(pano.instance)), self.segmenter.trajectory)
        super().set_image(pano)

    def predict(self, clicks: Sequence[Click]) -> np.ndarray:
        return super().predict([c for c in clicks if c[2]])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="SAP 1-click / 3-click evaluation with the paper's baselines.")
    parser.add_argument("--data", action="append", required=True, help="synthetic:PATH or folder:PATH (repeatable)")
    parser.add_argument("--backend", default="builtin", help="a registered SAP backend (builtin, sam2)")
    parser.add_argument("--config", default="", help="backend config (sam2: tiny, small, base+, large)")
    parser.add_argument("--checkpoint", default="", help="backend weights (builtin: empty = the shipped ones)")
    parser.add_argument("--frame-size", type=int, default=128, help="scan frame side = direct input side (px)")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {METHODS}")
    parser.add_argument("--oracle", action="store_true", help="also the ground-truth scan (geometry upper bound)")
    parser.add_argument("--limit", type=int, default=0, help="first N panoramas only (0 = all)")
    parser.add_argument("--min-area", type=float, default=2e-4, help="smallest instance, fraction of ERP pixels")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", required=True, help="output folder: metrics.json, table.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    panoramas = PanoramaCollection(args.data)
    if args.limit:
        panoramas = [panoramas[i] for i in range(min(args.limit, len(panoramas)))]
    backend = create_backend(BackendSpec(args.backend, args.config, args.checkpoint, args.device, "fp32",
                                         args.frame_size))
    methods = build_methods(backend, args.frame_size, [m for m in args.methods.split(",") if m])
    if args.oracle:
        methods.append(OracleScanMethod(args.frame_size))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summaries, seconds = {}, {}
    for method in methods:
        tic = time.time()
        results = evaluate_method(method, panoramas, min_area=args.min_area, progress=print)
        seconds[method.name] = round(time.time() - tic, 1)
        summaries[method.name] = summarise(results)
        (out / f"{method.name}_instances.json").write_text(json.dumps([r.__dict__ for r in results]))
    (out / "metrics.json").write_text(json.dumps({"summaries": summaries, "seconds": seconds,
                                                  "backend": backend.describe(), "args": vars(args)}, indent=1))
    table = markdown_table(summaries)
    (out / "table.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
