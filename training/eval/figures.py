"""Per-image evaluation figures (PNG): input, ground truth, prediction and error for each task.

Layout, 3 rows x 4 columns: input | semantic GT | semantic prediction | wrong labels (red; grey = not evaluated);
metrics | depth GT | depth prediction | |d̂ − d| / d; legend | normals GT | normals prediction | angular error (°).
Depth maps share one colour scale (the GT's 2nd–98th percentile), normals are shown as ``(n + 1) / 2`` in our
camera frame, NaN / invalid pixels are black.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from pano_perception.labels import IGNORE_ID, colorize_semantic
from pano_perception.metrics import angular_error_deg


def _normals_rgb(normals: np.ndarray) -> np.ndarray:
    valid = np.isfinite(normals).all(-1, keepdims=True)
    return np.where(valid, np.clip((np.nan_to_num(normals) + 1.0) / 2.0, 0, 1), 0.0)


def _masked(image: np.ndarray) -> np.ma.MaskedArray:
    return np.ma.masked_invalid(image)


def save_figure(path: Path | str, rgb: np.ndarray, prediction, semantic_gt: np.ndarray | None,
                depth_gt: np.ndarray | None, normals_gt: np.ndarray | None, title: str = "",
                metrics: dict | None = None) -> None:
    """Write the figure of one panorama. ``prediction``: an ``MTPanoPrediction`` at the GT's resolution."""
    figure, axes = plt.subplots(3, 4, figsize=(16, 6.2), constrained_layout=True)
    for ax in axes.flat:
        ax.set_axis_off()
    cmap_depth = matplotlib.colormaps["Spectral"].with_extremes(bad="black")
    cmap_error = matplotlib.colormaps["magma"].with_extremes(bad="black")

    axes[0, 0].imshow(rgb)
    axes[0, 0].set_title(title or "input", fontsize=9)
    axes[0, 2].imshow(colorize_semantic(prediction.semantic))
    axes[0, 2].set_title("semantics: prediction", fontsize=9)
    if semantic_gt is not None:
        axes[0, 1].imshow(colorize_semantic(semantic_gt))
        axes[0, 1].set_title("semantics: ground truth", fontsize=9)
        wrong = np.zeros(semantic_gt.shape + (3,))
        wrong[semantic_gt == IGNORE_ID] = 0.5
        wrong[(semantic_gt != IGNORE_ID) & (prediction.semantic != semantic_gt)] = (1.0, 0.0, 0.0)
        axes[0, 3].imshow(wrong)
        axes[0, 3].set_title("wrong labels", fontsize=9)

    if depth_gt is not None and np.isfinite(depth_gt).any():
        low, high = np.nanpercentile(depth_gt, [2, 98])
        axes[1, 1].imshow(_masked(depth_gt), cmap=cmap_depth, vmin=low, vmax=high)
        axes[1, 1].set_title("depth: ground truth (m)", fontsize=9)
        shown = axes[1, 2].imshow(_masked(prediction.depth), cmap=cmap_depth, vmin=low, vmax=high)
        figure.colorbar(shown, ax=axes[1, 2], fraction=0.025)
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.abs(prediction.depth - depth_gt) / depth_gt
        shown = axes[1, 3].imshow(_masked(rel), cmap=cmap_error, vmin=0, vmax=0.3)
        figure.colorbar(shown, ax=axes[1, 3], fraction=0.025)
        axes[1, 3].set_title("|d̂ − d| / d", fontsize=9)
    else:
        axes[1, 2].imshow(_masked(prediction.depth), cmap=cmap_depth)
    axes[1, 2].set_title("depth: prediction (m)", fontsize=9)

    axes[2, 2].imshow(_normals_rgb(prediction.normals))
    axes[2, 2].set_title("normals: prediction", fontsize=9)
    if normals_gt is not None:
        axes[2, 1].imshow(_normals_rgb(normals_gt))
        axes[2, 1].set_title("normals: ground truth", fontsize=9)
        shown = axes[2, 3].imshow(_masked(angular_error_deg(prediction.normals, normals_gt)), cmap=cmap_error,
                                  vmin=0, vmax=45)
        figure.colorbar(shown, ax=axes[2, 3], fraction=0.025)
        axes[2, 3].set_title("angular error (°)", fontsize=9)

    if metrics:
        text = "\n".join(f"{task}: " + ", ".join(f"{k} {v:.3g}" for k, v in values.items())
                         for task, values in metrics.items())
        axes[1, 0].text(0, 0.5, text, fontsize=7, va="center", family="monospace", wrap=True)
    axes[2, 0].text(0, 0.5, "normals (n+1)/2, camera frame\nx forward, y left, z up\nblack: invalid / sky",
                    fontsize=7, va="center")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)
    plt.close(figure)
