"""E2P of the SAP scan and P2E back: pano_perception vs py360convert vs pyequilib (torch), one process.

The scan: 24 views (FoV 90 deg, pitch -45/0/+45, yaw step 45 deg), 512x512 each, from a 2048x1024 panorama.
Prints seconds per scan, throughput, speed ratios and the mean absolute difference between the outputs
(conventions aligned: py360convert spans the FoV with edge pixel centres; pyequilib uses z_down=True).

Run: .venv/bin/python benchmarks/projection.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from timing import median_time

from pano_perception.geometry import PerspectiveView, e2p, erp_pixel_to_lonlat, fov_from_centre_convention, p2e

ERP_HEIGHT, VIEW_SIZE, FOV_DEG = 1024, 512, 90.0
YAWS = range(-180, 180, 45)
PITCHES = (-45, 0, 45)


def test_panorama(height: int) -> np.ndarray:
    """A smooth colour field with fine texture on top (float32 RGB in [0, 1])."""
    lon, lat = erp_pixel_to_lonlat(np.arange(2 * height)[None] + 0.5, np.arange(height)[:, None] + 0.5,
                                   height, 2 * height)
    lon, lat = np.broadcast_arrays(lon, lat)
    smooth = np.stack([np.cos(lon) * np.cos(lat), np.sin(2 * lon) * np.cos(lat), np.sin(3 * lat)], -1)
    texture = 0.1 * np.sin(40 * lon)[..., None] * np.cos(30 * lat)[..., None]
    return (0.45 * smooth + 0.5 + texture).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import py360convert
    from equilib import equi2pers, pers2equi

    erp = test_panorama(ERP_HEIGHT)
    erp_t = torch.from_numpy(erp).permute(2, 0, 1).contiguous()
    fov_edges = fov_from_centre_convention(VIEW_SIZE, math.radians(FOV_DEG))
    views = [PerspectiveView(VIEW_SIZE, VIEW_SIZE, fov_edges, math.radians(y), math.radians(p))
             for p in PITCHES for y in YAWS]
    rots = [{"roll": 0.0, "pitch": math.radians(p), "yaw": math.radians(y)} for p in PITCHES for y in YAWS]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; ERP {2 * ERP_HEIGHT}x{ERP_HEIGHT}, "
          f"{len(views)} views of {VIEW_SIZE}^2 at {FOV_DEG:.0f} deg")

    t_ours, ours = median_time(lambda: e2p(erp_t, views, antialias=False), args.repeats)
    t_py360, py360 = median_time(lambda: np.stack([
        py360convert.e2p(erp, FOV_DEG, y, p, (VIEW_SIZE, VIEW_SIZE), mode="bilinear")
        for p in PITCHES for y in YAWS]), args.repeats)
    equi_batch = erp_t[None].expand(len(rots), -1, -1, -1)
    t_equi, equi = median_time(lambda: equi2pers(equi_batch, rots, VIEW_SIZE, VIEW_SIZE, FOV_DEG, z_down=True),
                         args.repeats)
    ours_np = ours.permute(0, 2, 3, 1).numpy()
    print("\nE2P (24 views)        s/scan   views/s   ours faster by   mean |diff| vs ours")
    print(f"  pano_perception   {t_ours:8.3f} {len(views) / t_ours:9.1f}")
    print(f"  py360convert      {t_py360:8.3f} {len(views) / t_py360:9.1f}   {t_py360 / t_ours:10.1f}x"
          f"      {np.abs(py360 - ours_np).mean():.5f}")
    print(f"  pyequilib (torch) {t_equi:8.3f} {len(views) / t_equi:9.1f}   {t_equi / t_ours:10.1f}x"
          f"      {np.abs(equi.permute(0, 2, 3, 1).numpy() - ours_np).mean():.5f}")

    t_back, (back, valid) = median_time(lambda: p2e(ours, views, ERP_HEIGHT, reduce="mean"), args.repeats)

    def equilib_back():
        per_view = pers2equi(ours, rots, ERP_HEIGHT, 2 * ERP_HEIGHT, FOV_DEG, z_down=True)
        seen = (per_view.abs().sum(1, keepdim=True) > 0).to(per_view.dtype)
        return (per_view.sum(0) / seen.sum(0).clamp(min=1)), seen.sum(0)[0] > 0

    t_equi_back, (equi_back, equi_valid) = median_time(equilib_back, args.repeats)
    both = (valid & equi_valid).numpy()
    source = erp_t.permute(1, 2, 0).numpy()
    print("\nP2E (24 views -> ERP, mean of overlaps)   s/scan   ours faster by   mean |diff| to the source ERP")
    print(f"  pano_perception   {t_back:8.3f}                     {np.abs(back.permute(1, 2, 0).numpy() - source)[both].mean():.5f}")
    print(f"  pyequilib (torch) {t_equi_back:8.3f}   {t_equi_back / t_back:10.1f}x"
          f"          {np.abs(equi_back.permute(1, 2, 0).numpy() - source)[both].mean():.5f}")
    print("  py360convert has no perspective -> ERP function. pyequilib's pers2equi does not invert its own")
    print("  equi2pers when yaw and pitch are both non-zero (its rotation order differs), hence its larger error.")


if __name__ == "__main__":
    main()
