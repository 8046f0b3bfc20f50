"""Evaluate an MTPano checkpoint on panoramas with ground truth (synthetic, Structured3D, Stanford2D3D).

    python -m training.eval.evaluate --config micro-cpu-p8 --weights pano_perception/data/mtpano_micro_cpu_p8.safetensors \\
        --data synthetic-dataset:runs/data/synthetic128_eval --out runs/eval/builtin --figures 8

Predictions come from ``MTPanoPredictor.predict`` (the product the nodes publish: sky masked, seam fixed, our frame,
at the ground truth's resolution) and are scored with ``pano_perception.metrics.DenseEvaluation`` (each pixel once;
mIoU over the classes present in prediction or ground truth; depth where both are valid). Writes ``metrics.json``
(the totals and per-image results), ``table.md`` (the paper's layout) and ``figures/<n>.png``.
"""
from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from pano_perception.labels import ADE20K_CLASSES
from pano_perception.metrics import DenseEvaluation
from pano_perception.models.mtpano import MTPanoPredictor

from ..mtpano.datasets import PanoramaSample, open_source
from .figures import save_figure
from .tables import paper_table


def evaluate(predictor: MTPanoPredictor, samples: Sequence[PanoramaSample], *, figures_dir: Path | None = None,
             num_figures: int = 0, progress: bool = True) -> dict:
    """Dense metrics of ``predictor`` over ``samples``: ``{"total": result, "iou_per_class": {class: IoU %} (classes
    present, best first), "images": [{key, result}, ...]}``."""
    from tqdm import tqdm

    total = DenseEvaluation()
    images = []
    for index in tqdm(range(len(samples)), disable=not progress, desc="evaluate", unit="pano"):
        sample = samples[index]
        prediction = predictor.predict(sample.rgb)
        products = {"semantic": prediction.semantic, "semantic_gt": sample.semantic, "depth": prediction.depth,
                    "depth_gt": sample.depth, "normals": prediction.normals, "normals_gt": sample.normals}
        total.add(**products)
        single = DenseEvaluation()
        single.add(**products)
        images.append({"key": sample.key, "result": single.result()})
        if figures_dir is not None and index < num_figures:
            save_figure(figures_dir / f"{index:03d}.png", sample.rgb, prediction, sample.semantic, sample.depth,
                        sample.normals, title=sample.key, metrics=images[-1]["result"])
    iou = total.semantic.iou_per_class()
    per_class = {ADE20K_CLASSES[i]: round(float(iou[i]) * 100, 2) for i in np.argsort(-np.nan_to_num(iou, nan=-1))
                 if not np.isnan(iou[i])}
    return {"total": total.result(), "iou_per_class": per_class, "images": images}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Evaluate MTPano against ground-truth panoramas.")
    parser.add_argument("--config", required=True, help="MTPano config name (e.g. micro-cpu, large)")
    parser.add_argument("--weights", required=True, help=".safetensors or .pth checkpoint")
    parser.add_argument("--data", required=True, help="e.g. synthetic-dataset:DIR, structured3d:DIR (datasets.open_source)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--name", default=None, help="method name in the table (default: the weights' file name)")
    parser.add_argument("--figures", type=int, default=8, help="number of per-image figures")
    parser.add_argument("--limit", type=int, default=None, help="evaluate the first N panoramas only")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seam", default="official")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    samples = open_source(args.data)
    if args.limit is not None:
        samples = [samples[i] for i in range(min(args.limit, len(samples)))]
    predictor = MTPanoPredictor(args.config, checkpoint=args.weights, device=args.device, seam=args.seam)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    result = evaluate(predictor, samples, figures_dir=out / "figures", num_figures=args.figures)
    result.update(config=args.config, weights=str(args.weights), data=args.data, seconds=round(time.time() - start, 1))
    (out / "metrics.json").write_text(json.dumps(result, indent=1))
    table = paper_table([(args.name or Path(args.weights).stem, result["total"])])
    (out / "table.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
