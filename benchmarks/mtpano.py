"""Parameters, MACs and CPU latency of MTPano configurations, torch eager vs ONNX Runtime.

Run: ``.venv/bin/python benchmarks/mtpano.py micro-cpu small-cpu [--runs 5] [--threads 2]``.
Prints a markdown table (latency = median of ``--runs`` forward passes at batch 1 after one warm-up, fp32).
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from timing import median_time

from pano_perception.models.mtpano.export import OnnxRuntimeMTPano, export_onnx
from pano_perception.models.mtpano.model import build_mtpano


def count_macs(model, pixel_values: torch.Tensor) -> int:
    """Multiply-accumulates of one inference forward (torch's FLOP counter / 2; matmuls and convolutions)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(pixel_values, with_aux=False)
    return counter.get_total_flops() // 2


def benchmark(config_name: str, runs: int, threads: int) -> dict:
    model = build_mtpano(config_name).eval()
    pixel_values = torch.randn(1, 3, *model.config.image_size)
    with torch.no_grad():
        torch_seconds = median_time(lambda: model(pixel_values, with_aux=False), runs)[0]
    with tempfile.TemporaryDirectory() as folder:
        runner = OnnxRuntimeMTPano(export_onnx(model, Path(folder) / f"{config_name}.onnx"), threads=threads)
        onnx_seconds = median_time(lambda: runner(pixel_values), runs)[0]
    return {
        "config": config_name,
        "input": "x".join(map(str, model.config.image_size)),
        "parameters": sum(p.numel() for p in model.parameters()),
        "backbone": sum(p.numel() for p in model.backbone.parameters()),
        "macs": count_macs(model, pixel_values),
        "torch_ms": 1000 * torch_seconds,
        "onnxruntime_ms": 1000 * onnx_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="+")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, fp32, batch 1, median of {args.runs} runs\n")
    print("| config | input | parameters (backbone) | GMACs | torch eager ms | ONNX Runtime ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in args.configs:
        row = benchmark(name, args.runs, args.threads)
        print(f"| {row['config']} | {row['input']} | {row['parameters'] / 1e6:.2f} M ({row['backbone'] / 1e6:.2f} M) "
              f"| {row['macs'] / 1e9:.2f} | {row['torch_ms']:.0f} | {row['onnxruntime_ms']:.0f} |")


if __name__ == "__main__":
    main()
