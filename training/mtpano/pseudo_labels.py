"""Patch-wise pseudo-labels (Sec. 3.1, A.2): random perspective crops of each panorama, labelled by a teacher and
re-projected to ERP patches with validity masks through the geometry core, stored in sharded, resumable caches.

Per panorama: N views with FoV ~ U[80°, 120°], yaw ~ U[0°, 360°), pitch ~ U[−90°, 90°] (defaults, paper Sec. 4.1),
crops of ``crop_size``² pixels sampled from the panorama (``geometry.e2p``), labelled by the teacher, and written back
crop by crop (never stitched) to the ERP at the training resolution:

* semantics: nearest neighbour (``geometry.p2e``);
* depth: z-depth -> radial, ``radial = z / cos α`` (eq. 5 inverted, ``geometry.p2e_depth``) interpolating inverse
  depth bilinearly, which is exact on planes at any slant; ERP pixels whose bilinear support in the view crosses an
  occlusion edge (inverse depth not locally affine, ``smooth_depth_mask``) are dropped instead of blended;
* normals: ``n_cam = R · n_view`` (eq. 6, ``geometry.p2e_normals``), bilinear; dropped where the support crosses a
  crease (``smooth_normals_mask``);
* metric point maps ``P = D · r`` (int16 millimetres on disk, appendix A.3).

Cache layout (``CACHE_FORMAT``)::

    CACHE/manifest.json        generation parameters, teacher, source, shard size and count
    CACHE/shard_SSSSS/         one per ``shard_size`` panoramas, written to ``shard_SSSSS.tmp`` and renamed
        rgb.npy                uint8 [P, H, W, 3] the panoramas at training resolution
        crops.npy              structured [M]: panorama, yaw, pitch, hfov (radians), window rows/cols, offset
        semantic.npy           uint8 [T] (255 = unlabelled)                 } every crop's ERP window, flattened
        depth.npy              float16 [T] radial metres (NaN = invalid)    } row-major and concatenated; a window
        normals.npy            float16 [T, 3] camera frame (NaN = invalid)  } is rows row0.. and the columns
        points_mm.npy          int16 [T, 3] camera frame ((0, 0, 0) = inv.) } col0.. wrapping around the seam
        keys.json              the panoramas' source keys

A shard directory exists only when complete, so an interrupted run resumes by skipping existing shards; ranks take
shards ``rank, rank + world_size, ...`` (``--rank/--world-size`` or torchrun's environment).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pano_perception.geometry import PerspectiveView, e2p, p2e, p2e_depth, p2e_normals
from pano_perception.labels import IGNORE_ID

from .aux_labels import decode_points_mm, encode_points_mm, points_from_depth
from .datasets import PanoramaSample, open_source
from .teachers import PerspectiveLabels, Teacher, build_teacher, ignore_invalid_semantics

CACHE_FORMAT = "pano_perception.mtpano_pseudo_labels"
CACHE_VERSION = 1
DEPTH_EDGE_TOLERANCE = 0.02  # second difference of inverse depth, relative to it
NORMAL_EDGE_TOLERANCE_DEG = 10.0  # between neighbouring view pixels
CROP_DTYPE = np.dtype([("panorama", "<i4"), ("yaw", "<f4"), ("pitch", "<f4"), ("hfov", "<f4"), ("row0", "<i4"),
                       ("rows", "<i4"), ("col0", "<i4"), ("cols", "<i4"), ("offset", "<i8")])


@dataclass(frozen=True)
class CropSampling:
    """How crops are drawn: ``num_crops`` views of ``crop_size``² pixels, uniform FoV/yaw/pitch ranges in degrees."""

    num_crops: int = 32
    crop_size: int = 512
    fov_deg: tuple[float, float] = (80.0, 120.0)
    yaw_deg: tuple[float, float] = (0.0, 360.0)
    pitch_deg: tuple[float, float] = (-90.0, 90.0)

    def sample_views(self, rng: np.random.Generator) -> list[PerspectiveView]:
        """``num_crops`` square views; yaw is wrapped to (−180°, 180°]."""
        fov = rng.uniform(*self.fov_deg, self.num_crops)
        yaw = rng.uniform(*self.yaw_deg, self.num_crops)
        pitch = rng.uniform(*self.pitch_deg, self.num_crops)
        return [PerspectiveView.from_degrees(self.crop_size, self.crop_size, float(f), float((y + 180) % 360 - 180),
                                             float(p))
                for f, y, p in zip(fov, yaw, pitch)]


@dataclass
class ErpPatch:
    """One crop's labels re-projected to the ERP (all [H, W] or [H, W, 3], our camera frame)."""

    semantic: np.ndarray  # uint8, 255 invalid
    depth: np.ndarray  # float32 radial metres, NaN invalid
    normals: np.ndarray  # float32 unit, NaN invalid

    @property
    def covered(self) -> np.ndarray:
        """Pixels with at least one valid label."""
        return (self.semantic != IGNORE_ID) | np.isfinite(self.depth) | np.isfinite(self.normals).all(-1)


def smooth_depth_mask(z_depth: np.ndarray, tolerance: float = DEPTH_EDGE_TOLERANCE) -> np.ndarray:
    """View pixels [h, w] whose inverse depth is locally affine (as on a plane, at any slant): the second
    differences along x and y stay within ``tolerance`` of the pixel's inverse depth. Occlusion edges fail it."""
    inverse = np.pad(1.0 / z_depth.astype(np.float64), 1, mode="reflect", reflect_type="odd")
    centre = inverse[1:-1, 1:-1]
    with np.errstate(invalid="ignore"):
        d2x = np.abs(inverse[1:-1, :-2] - 2 * centre + inverse[1:-1, 2:])
        d2y = np.abs(inverse[:-2, 1:-1] - 2 * centre + inverse[2:, 1:-1])
        return (d2x <= tolerance * centre) & (d2y <= tolerance * centre)


def smooth_normals_mask(normals: np.ndarray, tolerance_deg: float = NORMAL_EDGE_TOLERANCE_DEG) -> np.ndarray:
    """View pixels [h, w] whose normal is within ``tolerance_deg`` of all 8 neighbours' (creases fail it)."""
    padded = np.pad(normals.astype(np.float64), ((1, 1), (1, 1), (0, 0)), mode="edge")
    centre = padded[1:-1, 1:-1]
    height, width = normals.shape[:2]
    ok = np.isfinite(centre).all(-1)
    limit = math.cos(math.radians(tolerance_deg))
    with np.errstate(invalid="ignore"):
        for dy in (0, 1, 2):
            for dx in (0, 1, 2):
                ok &= np.sum(padded[dy:dy + height, dx:dx + width] * centre, -1) >= limit
    return ok


def _support_is(mask: np.ndarray, view: PerspectiveView, erp_height: int) -> np.ndarray:
    """ERP pixels whose whole bilinear support in the view is inside ``mask`` (a bool [h, w] view image)."""
    values, valid = p2e(mask[None].astype(np.float32), [view], erp_height, mode="bilinear")
    return valid & (values >= 1.0 - 1e-6)


def reproject_crop(labels: PerspectiveLabels, index: int, view: PerspectiveView, erp_height: int) -> ErpPatch:
    """Crop ``index`` of ``labels`` seen through ``view`` -> its ERP patch at ``erp_height`` x ``2*erp_height``.

    Depth and normals are bilinear where the 2x2 view pixels around the ERP ray lie on one smooth surface
    (``smooth_depth_mask``, ``smooth_normals_mask``), and invalid across occlusion edges and creases.
    """
    width = 2 * erp_height
    semantic = np.full((erp_height, width), IGNORE_ID, np.uint8)
    depth = np.full((erp_height, width), np.nan, np.float32)
    normals = np.full((erp_height, width, 3), np.nan, np.float32)
    if labels.semantic is not None:
        values, valid = p2e(ignore_invalid_semantics(labels.semantic[index : index + 1]), [view], erp_height,
                            mode="nearest", fill=IGNORE_ID)
        semantic = np.where(valid, values, IGNORE_ID).astype(np.uint8)
    if labels.z_depth is not None:
        z = labels.z_depth[index].astype(np.float32)
        values, valid = p2e_depth(z[None], [view], erp_height, mode="bilinear")
        ok = valid & np.isfinite(values) & _support_is(smooth_depth_mask(z), view, erp_height)
        depth = np.where(ok, values, np.nan).astype(np.float32)
    if labels.normals is not None:
        n = labels.normals[index].astype(np.float32)
        values, valid = p2e_normals(n[None], [view], erp_height, mode="bilinear")
        ok = valid & _support_is(smooth_normals_mask(n), view, erp_height)
        normals = np.where(ok[..., None], values, np.nan).astype(np.float32)
    return ErpPatch(semantic, depth, normals)


def circular_span(occupied: np.ndarray) -> tuple[int, int]:
    """(first column, count) of a window covering the True entries of a circular 1-D mask (wraps the seam)."""
    width = len(occupied)
    if occupied.all() or not occupied.any():
        return 0, width if occupied.all() else 0
    free = int(np.argmin(occupied))  # a free column: the window starts after it
    taken = np.flatnonzero(np.roll(occupied, -free))
    return (int(taken[0]) + free) % width, int(taken[-1] - taken[0] + 1)


def crop_views_rgb(rgb: np.ndarray, views: Sequence[PerspectiveView]) -> np.ndarray:
    """uint8 crops [N, h, w, 3] of a uint8 ERP [H, W, 3] (bilinear, antialiased)."""
    erp = torch.from_numpy(rgb).permute(2, 0, 1).float()
    crops = e2p(erp, views, mode="bilinear")  # (N, 3, h, w)
    return crops.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def resize_rgb(rgb: np.ndarray, height: int) -> np.ndarray:
    """uint8 ERP -> ``height`` x ``2*height`` (antialiased bilinear, half-pixel centres, rounded), as the predictor."""
    if rgb.shape[0] == height:
        return rgb
    image = torch.from_numpy(rgb).permute(2, 0, 1)[None].float()
    image = F.interpolate(image, size=(height, 2 * height), mode="bilinear", align_corners=False, antialias=True)
    return image[0].round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


class ShardWriter:
    """Collects the crops of up to ``shard_size`` panoramas and writes them as one shard, atomically."""

    def __init__(self, erp_height: int):
        self.erp_height = erp_height
        self.rgb, self.keys, self.crops = [], [], []
        self.semantic, self.depth, self.normals, self.points = [], [], [], []
        self.offset = 0

    def add(self, key: str, rgb: np.ndarray, views: Sequence[PerspectiveView], patches: Sequence[ErpPatch]) -> None:
        panorama = len(self.rgb)
        self.rgb.append(rgb)
        self.keys.append(key)
        width = 2 * self.erp_height
        for view, patch in zip(views, patches):
            covered = patch.covered
            rows = np.flatnonzero(covered.any(1))
            row0, n_rows = (int(rows[0]), int(rows[-1] - rows[0] + 1)) if len(rows) else (0, 0)
            col0, n_cols = circular_span(covered.any(0))
            window = (slice(row0, row0 + n_rows), (col0 + np.arange(n_cols)) % width)
            depth = patch.depth[window[0]][:, window[1]]
            normals = patch.normals[window[0]][:, window[1]]
            points = points_from_depth(torch.from_numpy(patch.depth)).permute(1, 2, 0).numpy()
            points = points[window[0]][:, window[1]]
            self.semantic.append(patch.semantic[window[0]][:, window[1]].ravel())
            self.depth.append(depth.astype(np.float16).ravel())
            self.normals.append(normals.astype(np.float16).reshape(-1, 3))
            self.points.append(encode_points_mm(points).reshape(-1, 3))
            self.crops.append((panorama, view.yaw, view.pitch, view.hfov, row0, n_rows, col0, n_cols, self.offset))
            self.offset += n_rows * n_cols

    def write(self, directory: Path) -> None:
        """Write the shard to ``directory`` (via ``<directory>.tmp`` and a rename)."""
        tmp = directory.with_name(directory.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        np.save(tmp / "rgb.npy", np.stack(self.rgb))
        np.save(tmp / "crops.npy", np.array(self.crops, dtype=CROP_DTYPE))
        np.save(tmp / "semantic.npy", np.concatenate(self.semantic))
        np.save(tmp / "depth.npy", np.concatenate(self.depth))
        np.save(tmp / "normals.npy", np.concatenate(self.normals))
        np.save(tmp / "points_mm.npy", np.concatenate(self.points))
        (tmp / "keys.json").write_text(json.dumps(self.keys))
        os.replace(tmp, directory)


def shard_name(index: int) -> str:
    return f"shard_{index:05d}"


def panorama_rng(seed: int, index: int) -> np.random.Generator:
    """The crop-sampling generator of panorama ``index``: independent of sharding, ranks and restarts."""
    return np.random.default_rng([seed, index, 7])


def generate_cache(out: Path | str, source: Sequence[PanoramaSample], teacher: Teacher, *, erp_height: int,
                   sampling: CropSampling, shard_size: int = 16, seed: int = 0, rank: int = 0, world_size: int = 1,
                   source_spec: str = "", progress: bool = True) -> Path:
    """Label ``source`` with ``teacher`` into the cache ``out`` (see the module docstring); returns its path.

    Resumable: complete shards are skipped. Refuses to mix parameters with an existing manifest.
    """
    from tqdm import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    num_shards = math.ceil(len(source) / shard_size)
    manifest = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "erp_height": erp_height,
                "sampling": asdict(sampling), "teacher": teacher.name, "teacher_tasks": list(teacher.tasks),
                "source": source_spec, "num_panoramas": len(source), "shard_size": shard_size,
                "num_shards": num_shards, "seed": seed}
    manifest = json.loads(json.dumps(manifest))  # as it reads back (tuples become lists)
    path = out / "manifest.json"
    if path.exists():
        existing = json.loads(path.read_text())
        if existing != manifest:
            raise ValueError(f"{path} was made with other parameters:\n{existing}\nvs\n{manifest}")
    elif rank == 0:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest, indent=1))
        os.replace(tmp, path)
    mine = [s for s in range(rank, num_shards, world_size) if not (out / shard_name(s)).is_dir()]
    bar = tqdm(total=sum(min(shard_size, len(source) - s * shard_size) for s in mine), disable=not progress,
               desc=f"pseudo-labels rank {rank}", unit="pano")
    for shard in mine:
        writer = ShardWriter(erp_height)
        for index in range(shard * shard_size, min((shard + 1) * shard_size, len(source))):
            sample = source[index]
            views = sampling.sample_views(panorama_rng(seed, index))
            crops = crop_views_rgb(sample.rgb, views)
            labels = teacher.predict(crops, views, sample.context)
            patches = [reproject_crop(labels, i, view, erp_height) for i, view in enumerate(views)]
            writer.add(sample.key, resize_rgb(sample.rgb, erp_height), views, patches)
            bar.update()
        writer.write(out / shard_name(shard))
    bar.close()
    return out


@dataclass
class CropLabels:
    """A crop's labels as full ERP maps: semantic uint8 [H, W]; depth float32 [H, W]; normals and points float32
    [H, W, 3] (our camera frame; NaN / 255 invalid)."""

    semantic: np.ndarray
    depth: np.ndarray
    normals: np.ndarray
    points: np.ndarray


class PseudoLabelCache:
    """Read access to a cache (memory-mapped shards): panoramas by global index and their crops as ERP maps."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.manifest = json.loads((self.root / "manifest.json").read_text())
        if self.manifest.get("format") != CACHE_FORMAT:
            raise ValueError(f"{self.root} is not a {CACHE_FORMAT} cache")
        self.erp_height = int(self.manifest["erp_height"])
        missing = [s for s in range(self.manifest["num_shards"]) if not (self.root / shard_name(s)).is_dir()]
        if missing:
            raise ValueError(f"{self.root} is incomplete: shards {missing[:5]}... missing (run the generator again)")
        self._shards = [self._open(self.root / shard_name(s)) for s in range(self.manifest["num_shards"])]
        self._index = [(s, p) for s, shard in enumerate(self._shards) for p in range(len(shard["rgb"]))]

    @staticmethod
    def _open(directory: Path) -> dict:
        shard = {name: np.load(directory / f"{name}.npy", mmap_mode="r")
                 for name in ("rgb", "crops", "semantic", "depth", "normals", "points_mm")}
        crops = np.asarray(shard["crops"])
        shard["by_panorama"] = [np.flatnonzero(crops["panorama"] == p) for p in range(len(shard["rgb"]))]
        shard["crops"] = crops
        shard["keys"] = json.loads((directory / "keys.json").read_text())
        return shard

    def __len__(self) -> int:
        return len(self._index)

    def class_counts(self, num_classes: int) -> np.ndarray:
        """Labelled ERP pixels per semantic class over every crop of the cache (int64 [num_classes])."""
        counts = np.zeros(256, np.int64)
        for shard in self._shards:
            counts += np.bincount(np.asarray(shard["semantic"]), minlength=256)
        return counts[:num_classes]

    def key(self, index: int) -> str:
        shard, local = self._index[index]
        return self._shards[shard]["keys"][local]

    def rgb(self, index: int) -> np.ndarray:
        shard, local = self._index[index]
        return np.array(self._shards[shard]["rgb"][local])

    def num_crops(self, index: int) -> int:
        shard, local = self._index[index]
        return len(self._shards[shard]["by_panorama"][local])

    def crop(self, index: int, crop: int) -> CropLabels:
        """Crop number ``crop`` of panorama ``index`` as full ERP maps."""
        shard_index, local = self._index[index]
        shard = self._shards[shard_index]
        meta = shard["crops"][shard["by_panorama"][local][crop]]
        height, width = self.erp_height, 2 * self.erp_height
        rows, cols, start = int(meta["rows"]), int(meta["cols"]), int(meta["offset"])
        stop = start + rows * cols
        window = (slice(int(meta["row0"]), int(meta["row0"]) + rows), (int(meta["col0"]) + np.arange(cols)) % width)
        semantic = np.full((height, width), IGNORE_ID, np.uint8)
        depth = np.full((height, width), np.nan, np.float32)
        normals = np.full((height, width, 3), np.nan, np.float32)
        points = np.full((height, width, 3), np.nan, np.float32)
        rows_of = np.arange(window[0].start, window[0].stop)[:, None]
        semantic[rows_of, window[1]] = shard["semantic"][start:stop].reshape(rows, cols)
        depth[rows_of, window[1]] = shard["depth"][start:stop].reshape(rows, cols)
        normals[rows_of, window[1]] = shard["normals"][start:stop].reshape(rows, cols, 3)
        points[rows_of, window[1]] = decode_points_mm(np.asarray(shard["points_mm"][start:stop])).reshape(rows, cols, 3)
        return CropLabels(semantic, depth, normals, points)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Generate a sharded, resumable MTPano pseudo-label cache.")
    parser.add_argument("--source", required=True, help="e.g. synthetic:1000-1399@128, folder:DIR (datasets.open_source)")
    parser.add_argument("--out", required=True, help="cache directory")
    parser.add_argument("--teacher", default="oracle", help="oracle, or e.g. segmenter=ID,moge2=ID (teachers.build_teacher)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--erp-height", type=int, required=True, help="training resolution (rows of the ERP)")
    parser.add_argument("--num-crops", type=int, default=32)
    parser.add_argument("--crop-size", type=int, default=512)
    parser.add_argument("--fov", type=float, nargs=2, default=(80.0, 120.0), metavar=("MIN", "MAX"))
    parser.add_argument("--shard-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rank", type=int, default=int(os.environ.get("RANK", "0")))
    parser.add_argument("--world-size", type=int, default=int(os.environ.get("WORLD_SIZE", "1")))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 on a shared machine)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.time()
    sampling = CropSampling(num_crops=args.num_crops, crop_size=args.crop_size, fov_deg=tuple(args.fov))
    out = generate_cache(args.out, open_source(args.source), build_teacher(args.teacher, args.device),
                         erp_height=args.erp_height, sampling=sampling, shard_size=args.shard_size, seed=args.seed,
                         rank=args.rank, world_size=args.world_size, source_spec=args.source)
    print(f"{out}: rank {args.rank}/{args.world_size} done in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
