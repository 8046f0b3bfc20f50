"""Result tables in the paper's layouts (markdown).

``paper_table``: Tables 1/2 — mIoU; AbsRel, RMSE, δ1/δ2/δ3; normal mean and median error and % under 11.25°,
22.5° and 30° (the paper prints "11.5°" in the header; the protocol's threshold is 11.25°).
``ablation_table``: Table 3 — mIoU, RMSE, mean normal error and Δ_MTL (%) against the single-task (STL) row, with
``pano_perception.metrics.delta_mtl`` over those three metrics.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from pano_perception.metrics import delta_mtl

#: Table 3's metrics and their directions (+1 higher is better).
ABLATION_METRICS = {("semantic", "mIoU"): 1, ("depth", "RMSE"): -1, ("normals", "mean"): -1}

_PAPER_COLUMNS = (
    ("mIoU ↑", "semantic", "mIoU", "{:.2f}"),
    ("AbsRel ↓", "depth", "AbsRel", "{:.4f}"),
    ("RMSE ↓", "depth", "RMSE", "{:.4f}"),
    ("δ1 ↑", "depth", "delta1", "{:.2f}"),
    ("δ2 ↑", "depth", "delta2", "{:.2f}"),
    ("δ3 ↑", "depth", "delta3", "{:.2f}"),
    ("Mean ↓", "normals", "mean", "{:.3f}"),
    ("Median ↓", "normals", "median", "{:.3f}"),
    ("< 11.25° ↑", "normals", "11.25", "{:.2f}"),
    ("< 22.5° ↑", "normals", "22.5", "{:.2f}"),
    ("< 30° ↑", "normals", "30", "{:.2f}"),
)


def _cell(result: dict, task: str, name: str, fmt: str) -> str:
    value = result.get(task, {}).get(name, math.nan)
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else fmt.format(value)


def paper_table(rows: Sequence[tuple[str, dict]]) -> str:
    """Markdown table of ``(method, DenseEvaluation.result())`` rows in the layout of the paper's Tables 1/2
    (semantics, then depth, then normals columns)."""
    lines = ["| Method | " + " | ".join(c[0] for c in _PAPER_COLUMNS) + " |",
             "| --- " * (len(_PAPER_COLUMNS) + 1) + "|"]
    for method, result in rows:
        lines.append(f"| {method} | " + " | ".join(_cell(result, t, n, f) for _, t, n, f in _PAPER_COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def stl_result(single_task: dict[str, dict]) -> dict:
    """The STL row: each task's metrics from the run trained on that task alone (keys semseg, depth, normals)."""
    return {"semantic": single_task["semseg"]["semantic"], "depth": single_task["depth"]["depth"],
            "normals": single_task["normals"]["normals"]}


def ablation_table(rows: Sequence[tuple[str, dict]], stl: dict) -> str:
    """Markdown table in the layout of Table 3; ``stl`` (see ``stl_result``) is the first row and the baseline."""
    lines = ["| Method | mIoU ↑ | RMSE ↓ | Mean ↓ | Δ_MTL (%) |", "| --- | --- | --- | --- | --- |"]
    for method, result in [("STL", stl), *rows]:
        delta = delta_mtl(result, stl, ABLATION_METRICS)
        lines.append(f"| {method} | {_cell(result, 'semantic', 'mIoU', '{:.2f}')} | "
                     f"{_cell(result, 'depth', 'RMSE', '{:.4f}')} | {_cell(result, 'normals', 'mean', '{:.3f}')} | "
                     f"{delta:+.2f} |")
    return "\n".join(lines) + "\n"
