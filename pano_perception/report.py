"""Replay reports: metrics.json, latency plot, example figures and a one-page report.md / report.html."""
from __future__ import annotations

import html
import json
import math
from pathlib import Path

import cv2
import numpy as np

from .dense import normals_to_color
from .labels import colorize_semantic
from .metrics import angular_error_deg
from .replay import STAGES, ReplayResult


def colorize_depth(depth: np.ndarray, max_depth: float | None = None) -> np.ndarray:
    """RGB uint8 of a depth map (turbo colour map, near = blue; NaN = black)."""
    finite = np.isfinite(depth)
    top = max_depth or (float(np.percentile(depth[finite], 99)) if finite.any() else 1.0)
    scaled = np.clip(np.nan_to_num(depth / max(top, 1e-6), nan=0.0), 0, 1)
    rgb = cv2.applyColorMap((scaled * 255).astype(np.uint8), cv2.COLORMAP_TURBO)[..., ::-1]
    return np.where(finite[..., None], rgb, 0).astype(np.uint8)


def _save(path: Path, rgb: np.ndarray) -> str:
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1])):
        raise OSError(f"could not write {path}")
    return path.name


def _example_figure(example: dict, folder: Path) -> dict[str, str]:
    """PNG tiles of one frame: input, predictions, and error maps where ground truth exists."""
    i, rgb, pred, gt = example["index"], example["rgb"], example["prediction"], example["gt"]
    top = float(np.nanpercentile(gt["depth"], 99)) if "depth" in gt and np.isfinite(gt["depth"]).any() else None
    tiles = {"input": rgb, "depth": colorize_depth(pred.depth, top), "semantic": colorize_semantic(pred.semantic),
             "normals": normals_to_color(pred.normals)}
    if "depth" in gt:
        tiles["depth (ground truth)"] = colorize_depth(gt["depth"], top)
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.abs(pred.depth - gt["depth"]) / gt["depth"]
        tiles["depth error (AbsRel 0..0.3)"] = colorize_depth(np.where(np.isfinite(rel), rel, np.nan), 0.3)
    if "semantic" in gt:
        tiles["semantic (ground truth)"] = colorize_semantic(gt["semantic"])
    if "normals" in gt:
        tiles["normal error (0..45 deg)"] = colorize_depth(angular_error_deg(pred.normals, gt["normals"]), 45.0)
    for topic, (array, encoding) in example.get("extra", {}).items():
        if encoding == "rgb8":
            tiles[topic] = array
    def file_name(name: str) -> str:
        stem = name.split(" ")[0].replace("/", "_")
        return f"frame{i:05d}_{stem}{'_gt' if 'truth' in name else ''}{'_err' if 'error' in name else ''}.png"

    return {name: _save(folder / file_name(name), tile) for name, tile in tiles.items()}


def _latency_plot(result: ReplayResult, path: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = result.processed
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    x = [r.index for r in records]
    bottom = np.zeros(len(records))
    for stage in STAGES:
        values = np.array([r.stages_s.get(stage, 0.0) * 1000 for r in records])
        axes[0].bar(x, values, bottom=bottom, label=stage, width=1.0)
        bottom += values
    axes[0].set(xlabel="frame", ylabel="ms", title="time per stage")
    axes[0].legend(fontsize=8)
    axes[1].plot(x, [r.latency_s * 1000 for r in records], marker=".")
    axes[1].set(xlabel="frame", ylabel="ms", title=f"latency ({result.mode}), dropped {result.dropped}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path.name


def _fmt(value) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def write_report(result: ReplayResult, folder: str | Path) -> Path:
    """Write the report folder; returns the path of report.html (report.md and metrics.json sit beside it)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    processed = result.processed
    throughput = len(processed) / result.wall_s if result.wall_s > 0 else math.nan
    summary = {
        "bag": result.bag, "mode": result.mode, "frames_in_bag": result.frames_in_bag,
        "frames_processed": len(processed), "frames_rejected": len(result.records) - len(processed),
        "frames_dropped": result.dropped, "wall_s": result.wall_s, "throughput_fps": throughput,
        "bag_duration_s": result.bag_duration_s, "latency_ms": result.stage_percentiles(),
        "metrics": result.metrics, "bag_error": result.bag_error, "output_bag": result.output_bag,
        "rejected": [{"index": r.index, "error": r.error} for r in result.records if r.error],
    }
    (folder / "metrics.json").write_text(json.dumps(summary, indent=2, allow_nan=True))
    figures = [(ex["index"], _example_figure(ex, folder)) for ex in result.examples]
    plot = _latency_plot(result, folder / "latency.png") if processed else None

    lines = [f"# Replay of `{result.bag}`", "",
             f"Mode **{result.mode}**: {len(processed)} of {result.frames_in_bag} frames processed, "
             f"{result.dropped} dropped, {summary['frames_rejected']} rejected, {throughput:.2f} frames/s "
             f"over {result.wall_s:.1f} s (bag span {result.bag_duration_s:.1f} s).", ""]
    if result.bag_error:
        lines += [f"**Bag error:** {result.bag_error} — the results cover the part read before it.", ""]
    if figures:  # the report opens with pictures of the first frame
        index, tiles = figures[0]
        lines += [f"## Frame {index}", ""] + [f"![{name}]({file})" for name, file in tiles.items()] + [""]
    lines += ["## Accuracy against the bag's ground truth", "", "| task | metric | value |", "|---|---|---|"]
    for task, values in result.metrics.items():
        for name, value in values.items():
            lines.append(f"| {task} | {name} | {_fmt(value)} |")
    lines += ["", "## Latency (ms)", "", "| stage | p50 | p95 | max |", "|---|---|---|---|"]
    for stage, q in summary["latency_ms"].items():
        lines.append(f"| {stage} | {q['p50']:.1f} | {q['p95']:.1f} | {q['max']:.1f} |")
    if plot:
        lines += ["", f"![latency]({plot})"]
    for index, tiles in figures[1:]:
        lines += ["", f"## Frame {index}", ""] + [f"![{name}]({file})" for name, file in tiles.items()]
    (folder / "report.md").write_text("\n".join(lines) + "\n")

    body = []
    for line in lines:
        if line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("!["):
            name, file = line[2:].split("](")
            body.append(f'<figure><img src="{html.escape(file[:-1])}" alt="{html.escape(name)}">'
                        f"<figcaption>{html.escape(name)}</figcaption></figure>")
        elif line.startswith("|---"):
            continue
        elif line.startswith("|"):
            cells = [html.escape(c.strip()) for c in line.strip("|").split("|")]
            body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        elif line:
            body.append(f"<p>{html.escape(line).replace('**', '')}</p>")
    page = ("<!doctype html><meta charset='utf-8'><title>pano_perception replay</title><style>"
            "body{font-family:sans-serif;max-width:1200px;margin:auto}figure{display:inline-block;margin:4px}"
            "img{max-width:380px}td{padding:2px 10px;border-bottom:1px solid #ddd}</style>"
            + "\n".join(_wrap_tables(body)))
    report = folder / "report.html"
    report.write_text(page)
    return report


def _wrap_tables(body: list[str]) -> list[str]:
    out, in_table = [], False
    for item in body:
        if item.startswith("<tr>") and not in_table:
            out.append("<table>")
            in_table = True
        elif not item.startswith("<tr>") and in_table:
            out.append("</table>")
            in_table = False
        out.append(item)
    if in_table:
        out.append("</table>")
    return out
