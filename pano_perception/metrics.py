"""Dense-prediction metrics (the MTPano protocol), accumulated over frames. numpy only, no ROS.

Semantics: mIoU over the classes present in prediction or ground truth, pixel accuracy; ``ignore_id`` pixels skipped.
Depth (metres, radial): AbsRel, RMSE, delta < 1.25^k for k = 1, 2, 3, on pixels where both are finite and > 0.
Normals: angle between unit vectors in degrees: mean, median, % under 11.25, 22.5 and 30 degrees.
Each pixel counts once (no latitude weighting), as in the papers' evaluation code.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .labels import IGNORE_ID, NUM_CLASSES

ANGLE_BIN_DEG = 0.01  # resolution of the normal-error histogram behind the median


@dataclass
class SemanticMetrics:
    """Confusion-matrix accumulator for semantic ids in [0, num_classes)."""

    num_classes: int = NUM_CLASSES
    ignore_id: int = IGNORE_ID
    confusion: np.ndarray = field(init=False)

    def __post_init__(self):
        self.confusion = np.zeros((self.num_classes, self.num_classes), np.int64)

    def add(self, prediction: np.ndarray, target: np.ndarray) -> None:
        if prediction.shape != target.shape:
            raise ValueError(f"prediction {prediction.shape} and target {target.shape} differ in shape")
        valid = (target != self.ignore_id) & (target < self.num_classes) & (prediction < self.num_classes)
        index = target[valid].astype(np.int64) * self.num_classes + prediction[valid].astype(np.int64)
        self.confusion += np.bincount(index, minlength=self.num_classes ** 2).reshape(self.confusion.shape)

    def iou_per_class(self) -> np.ndarray:
        """IoU of each class; NaN for classes absent from both prediction and ground truth."""
        tp = np.diag(self.confusion).astype(np.float64)
        union = self.confusion.sum(0) + self.confusion.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, tp / union, np.nan)

    def result(self) -> dict[str, float]:
        total = self.confusion.sum()
        return {"mIoU": float(np.nanmean(self.iou_per_class()) * 100) if total else math.nan,
                "pixel_acc": float(np.trace(self.confusion) / total * 100) if total else math.nan}


@dataclass
class DepthMetrics:
    """Sums behind AbsRel, RMSE and the delta accuracies over all valid pixels seen so far."""

    count: int = 0
    abs_rel: float = 0.0
    squared: float = 0.0
    within: list = field(default_factory=lambda: [0, 0, 0])

    def add(self, prediction: np.ndarray, target: np.ndarray) -> None:
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(prediction) & np.isfinite(target) & (target > 0) & (prediction > 0)
        p = prediction[valid].astype(np.float64)
        t = target[valid].astype(np.float64)
        self.count += p.size
        self.abs_rel += float(np.sum(np.abs(p - t) / t))
        self.squared += float(np.sum((p - t) ** 2))
        ratio = np.maximum(p / t, t / p)
        for k in range(3):
            self.within[k] += int(np.sum(ratio < 1.25 ** (k + 1)))

    def result(self) -> dict[str, float]:
        if self.count == 0:
            return {key: math.nan for key in ("AbsRel", "RMSE", "delta1", "delta2", "delta3")}
        return {"AbsRel": self.abs_rel / self.count, "RMSE": math.sqrt(self.squared / self.count),
                **{f"delta{k + 1}": self.within[k] / self.count * 100 for k in range(3)}}


@dataclass
class NormalMetrics:
    """Angular-error histogram (0.01 degree bins) giving mean, median and threshold percentages."""

    histogram: np.ndarray = field(default_factory=lambda: np.zeros(int(180 / ANGLE_BIN_DEG) + 1, np.int64))
    total_deg: float = 0.0

    def add(self, prediction: np.ndarray, target: np.ndarray) -> None:
        angles = angular_error_deg(prediction, target)
        angles = angles[np.isfinite(angles)]
        self.total_deg += float(angles.sum())
        self.histogram += np.bincount(np.round(angles / ANGLE_BIN_DEG).astype(np.int64),
                                      minlength=self.histogram.size)[: self.histogram.size]

    def result(self) -> dict[str, float]:
        count = int(self.histogram.sum())
        if count == 0:
            return {key: math.nan for key in ("mean", "median", "11.25", "22.5", "30")}
        cumulative = np.cumsum(self.histogram)

        def order_statistic(k: int) -> int:  # histogram bin of the k-th smallest angle (0-based)
            return int(np.searchsorted(cumulative, k + 1))

        median = float((order_statistic((count - 1) // 2) + order_statistic(count // 2)) / 2 * ANGLE_BIN_DEG)
        share = {f"{t:g}": float(cumulative[int(round(t / ANGLE_BIN_DEG))] / count * 100) for t in (11.25, 22.5, 30)}
        return {"mean": self.total_deg / count, "median": median, **share}


def angular_error_deg(prediction: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-pixel angle in degrees between (..., 3) normal fields; NaN where either is invalid (NaN or zero)."""
    p = prediction / np.linalg.norm(prediction, axis=-1, keepdims=True)
    t = target / np.linalg.norm(target, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):
        return np.degrees(np.arccos(np.clip(np.sum(p * t, axis=-1), -1.0, 1.0)))


@dataclass
class DenseEvaluation:
    """All three tasks together, fed one frame at a time (any of the products may be missing)."""

    semantic: SemanticMetrics = field(default_factory=SemanticMetrics)
    depth: DepthMetrics = field(default_factory=DepthMetrics)
    normals: NormalMetrics = field(default_factory=NormalMetrics)

    def add(self, *, semantic=None, semantic_gt=None, depth=None, depth_gt=None, normals=None, normals_gt=None):
        if semantic is not None and semantic_gt is not None:
            self.semantic.add(semantic, semantic_gt)
        if depth is not None and depth_gt is not None:
            self.depth.add(depth, depth_gt)
        if normals is not None and normals_gt is not None:
            self.normals.add(normals, normals_gt)

    def result(self) -> dict[str, dict[str, float]]:
        return {"semantic": self.semantic.result(), "depth": self.depth.result(), "normals": self.normals.result()}


# Direction of each headline metric: +1 higher is better, -1 lower is better (for delta_mtl).
HEADLINE_METRICS = {("semantic", "mIoU"): 1, ("depth", "RMSE"): -1, ("depth", "AbsRel"): -1,
                    ("normals", "mean"): -1}


def delta_mtl(multi_task: dict, single_task: dict, metrics=HEADLINE_METRICS) -> float:
    """Delta_MTL in %: mean over metrics of (-1)^l (M_mtl - M_single) / M_single, l = 1 when lower is better."""
    terms = []
    for (task, name), sign in metrics.items():
        baseline = single_task[task][name]
        terms.append(sign * (multi_task[task][name] - baseline) / baseline)
    return float(np.mean(terms) * 100)
