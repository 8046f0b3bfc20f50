"""SAP's own work (scan rendering, prompt projection, fusion, instance ids) against the backend's, at 4K.

Our part is timed with a replay backend that hands back ready-made probabilities instantly, so only the
segmenter's work is measured: rendering the scan (one batched E2P), projecting prompts, storing the per-frame
probabilities, fusing them back into the ERP (P2E max) and assembling the instance ids. Each object is a blob
about a third of a view wide on the frames its click is visible in (fusion visits only the views where an
object reaches the threshold). The backend is the sam2 video predictor (tiny config; random weights cost the same compute as real ones) on the same frames: init,
one click, propagation over ``--backend-frames`` frames, extrapolated to the whole scan. Peak memory is the
process's resident high-water mark after each phase (our part runs first).

Run: .venv/bin/python benchmarks/sap_scan.py [--height 2048] [--frame-size 1024] [--objects 1 8]
         [--backend-frames 2] [--repeats 3] [--threads 1]
"""
from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Iterator, Sequence

import cv2
import numpy as np
import torch

from timing import median_time

from pano_perception.geometry import PerspectiveView
from pano_perception.models.sap import (
    ObjectPrompts,
    PanoSegmenter,
    PointPrompt,
    ScanTrajectory,
    SegmenterBackend,
    fibonacci_rays,
)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def panorama(height: int) -> np.ndarray:
    """A textured 2:1 RGB uint8 panorama."""
    y, x = np.mgrid[0:height, 0:2 * height].astype(np.float32) / height
    rgb = np.stack([np.sin(9 * x) * np.cos(7 * y), np.sin(31 * x + 5 * y), np.cos(13 * y * x)], -1)
    return ((rgb * 0.5 + 0.5) * 255).astype(np.uint8)


class ReplayBackend(SegmenterBackend):
    """At no cost: a smooth blob (an object about a third of a view wide) on every frame an object was prompted
    on, zero elsewhere."""

    def __init__(self, size: int):
        yy, xx = np.mgrid[0:size, 0:size] / size
        blob = np.exp(-((xx - 0.5) ** 2 + (yy - 0.5) ** 2) / 0.02)
        self._blob = torch.from_numpy(blob.astype(np.float32))
        self._prompted: dict[int, set[int]] = {}
        self._frames = 0

    def init(self, frames: torch.Tensor, views: Sequence[PerspectiveView]) -> None:
        self._frames, self._prompted = len(frames), {}

    def add_prompt(self, frame, object_id, points=None, labels=None, box=None) -> None:
        self._prompted.setdefault(object_id, set()).add(frame)

    def propagate(self) -> Iterator[tuple[int, list[int], torch.Tensor]]:
        ids = list(self._prompted)
        for frame in range(self._frames):
            present = torch.tensor([frame in self._prompted[i] for i in ids], dtype=torch.float32)
            yield frame, ids, self._blob[None] * present[:, None, None]

    def reset(self) -> None:
        self._prompted = {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=2048, help="ERP height (width = 2 x height)")
    parser.add_argument("--frame-size", type=int, default=1024)
    parser.add_argument("--objects", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--backend-frames", type=int, default=2, help="frames of sam2 propagation to time")
    parser.add_argument("--config", default="tiny", help="sam2.1 config for the backend timing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch and OpenCV threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)

    trajectory = ScanTrajectory(frame_size=args.frame_size)
    erp = panorama(args.height)
    n = len(trajectory)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; ERP {2 * args.height}x{args.height}; "
          f"scan {n} views of {args.frame_size}^2 (FoV {trajectory.fov_deg:.0f}, pitch "
          f"{'/'.join(f'{p:+.0f}' for p in trajectory.pitches_deg)}, {trajectory.n_columns} columns)")
    print(f"frames per panorama: {n} (clicks/boxes, any number of objects); segment everything with 64 prompts "
          f"in batches of 16: {4 * n}")
    baseline = peak_rss_mb()

    segmenter = PanoSegmenter(ReplayBackend(args.frame_size), trajectory)
    segmenter.set_image(erp)  # warm-up: sampling grids
    render_s, _ = median_time(lambda: segmenter.set_image(erp), args.repeats, warmup=False)
    print(f"\nour part (median of {args.repeats})")
    print(f"  scan rendering (batched E2P, {n} frames): {render_s * 1000:8.1f} ms")
    ours = {}
    for count in args.objects:
        objects = [ObjectPrompts(i + 1, [PointPrompt(ray)]) for i, ray in enumerate(fibonacci_rays(count))]
        segmenter.segment(objects)  # warm-up: P2E windows
        total_s, result = median_time(lambda: segmenter.segment(objects), args.repeats, warmup=False)
        fusion_s = result.timings["fusion"]
        ours[count] = render_s + total_s
        print(f"  {count:2d} object(s): prompts + probability store {(total_s - fusion_s) * 1000:7.1f} ms, "
              f"fusion + ids {fusion_s * 1000:7.1f} ms; with rendering {ours[count] * 1000:8.1f} ms")
    ours_peak = peak_rss_mb()
    frames_mb = n * 3 * args.frame_size ** 2 / 2 ** 20
    probabilities_mb = n * args.frame_size ** 2 / 2 ** 20
    erp_mb = args.height * 2 * args.height / 2 ** 20
    print(f"  memory: frames {frames_mb:.0f} MB (uint8), probabilities {probabilities_mb:.0f} MB per object "
          f"(uint8), fused crop <= {4 * erp_mb:.0f} MB per object (float32, its window), ids {2 * erp_mb:.0f} MB; "
          f"peak RSS +{ours_peak - baseline:.0f} MB over {baseline:.0f} MB")

    from pano_perception.models.sap.sam2_backend import Sam2Backend, build_sam2_predictor

    predictor = build_sam2_predictor(args.config, None, "cpu", args.frame_size)
    backend = Sam2Backend(predictor)
    frames = segmenter._frames[: args.backend_frames]
    views = trajectory.views[: args.backend_frames]
    start = time.perf_counter()
    backend.init(frames, views)
    init_s = time.perf_counter() - start
    start = time.perf_counter()
    centre = args.frame_size / 2
    backend.add_prompt(0, 1, np.array([[centre, centre]]), np.array([1]))
    prompt_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in backend.propagate():
        pass
    per_frame_s = (time.perf_counter() - start) / args.backend_frames
    backend_s = init_s + prompt_s + per_frame_s * n
    print(f"\nbackend: sam2.1 {args.config} at {args.frame_size}^2 on {args.backend_frames} frames: init "
          f"{init_s:.2f} s, click {prompt_s * 1000:.0f} ms, {per_frame_s:.2f} s per frame and object")
    print(f"  whole scan, 1 object: {backend_s:.1f} s (extrapolated to {n} frames); peak RSS "
          f"{peak_rss_mb():.0f} MB")
    for count, seconds in ours.items():  # the backend only grows with more objects: an upper bound
        print(f"  our part / backend, {count} object(s): {seconds:.2f} s / >= {backend_s:.1f} s = "
              f"<= {100 * seconds / backend_s:.1f} %")


if __name__ == "__main__":
    main()
