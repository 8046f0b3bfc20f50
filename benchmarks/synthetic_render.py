"""Synthetic world render cost: one ERP frame with all ground truth (RGB, radial depth, normals, semantic and
instance ids) on ONE core, for indoor and outdoor scenes, with and without shadow rays.

Wall and CPU time per frame are the median over ``--repeats`` renders of each scene (after one warm-up); the
target (issue 3) is <= 1 s per 512x1024 frame with everything on.

Run: .venv/bin/python benchmarks/synthetic_render.py [--height 512] [--repeats 3]
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one core, set before numpy loads
    os.environ[_var] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from pano_perception.synthetic import RenderOptions, generate_scene, render_erp, sample_camera_poses  # noqa: E402

SEEDS = (0, 3, 5, 7, 8, 10)  # four rooms, two streets


def time_render(scene, pose, height: int, options: RenderOptions, repeats: int) -> tuple[float, float]:
    """Median (wall, cpu) seconds of one render."""
    render_erp(scene, pose, height, options)
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        render_erp(scene, pose, height, options)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"ERP {args.height}x{2 * args.height}, 1 thread, median of {args.repeats}")
    print(f"{'seed':>4} {'kind':8} {'prims':>5} | {'shadows: wall':>13} {'cpu':>6} |"
          f" {'no shadows: wall':>16} {'cpu':>6}")
    rows = []
    for seed in SEEDS:
        scene = generate_scene(seed)
        pose = sample_camera_poses(scene, 1)[0]
        full = time_render(scene, pose, args.height, RenderOptions(), args.repeats)
        fast = time_render(scene, pose, args.height, RenderOptions(shadows=False), args.repeats)
        rows.append((full, fast))
        print(f"{seed:>4} {scene.kind:8} {len(scene.primitives):>5} | {full[0]:>12.3f}s {full[1]:>5.3f}s |"
              f" {fast[0]:>15.3f}s {fast[1]:>5.3f}s")
    (wall, cpu), (fast_wall, fast_cpu) = ([statistics.median(r[k][i] for r in rows) for i in (0, 1)] for k in (0, 1))
    print(f"median per frame: shadows {wall:.3f} s wall ({cpu:.3f} s cpu); "
          f"no shadows {fast_wall:.3f} s wall ({fast_cpu:.3f} s cpu)")


if __name__ == "__main__":
    main()
