"""Panorama sources: synthetic scenes, folders of ERP images, Structured3D and Stanford2D3D (their published layouts).

Every source is a sequence of ``PanoramaSample``: uint8 RGB ``[H, W, 3]`` (W = 2H, docs/CONVENTIONS.md) plus, where
the dataset has it, ground truth in our conventions for *evaluation* (label-free training never reads it):
``semantic`` uint8 ADE20K-150 ids (255 = no ADE counterpart or unlabelled), ``depth`` float32 radial metres (NaN
invalid), ``normals`` float32 ``[H, W, 3]`` unit, camera frame, towards the camera (NaN invalid).

Structured3D (``scene_XXXXX/2D_rendering/<room>/panorama/<full|simple|empty>/``): ``rgb_<raw|cold|warm>light.png``,
``depth.png`` uint16 mm (0 = no reading), ``semantic.png`` uint8 NYUv2-40 ids (0 = unlabelled), ``normal.png``.
Stanford2D3D (``area_*/pano/<rgb|depth|semantic|normal>/camera_*_domain_<kind>.png``): depth uint16 in 1/512 m
(65535 = missing), semantics as RGB-coded indices ``R·65536 + G·256 + B`` into ``assets/semantic_labels.json``
(names ``class_instance_room_area``). Both depths are taken as radial distances. Their normal images are in dataset
world frames whose orientation to the image is not documented well enough to convert with confidence, so the
readers derive normals from the depth (``geometry.normals_from_depth``, exact on planes); ``normals="none"`` skips
them. Semantic ids are mapped to ADE20K-150 where a class has a clear counterpart (tables below), else 255.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from pano_perception.geometry import normals_from_depth
from pano_perception.labels import IGNORE_ID, class_id

from .teachers import SceneContext

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")

#: NYUv2-40 (Structured3D ``metadata/labelids.txt``, 1-based) -> ADE20K-150 class name.
NYU40_TO_ADE = {
    1: "wall", 2: "floor", 3: "cabinet", 4: "bed", 5: "chair", 6: "sofa", 7: "table", 8: "door", 9: "windowpane",
    10: "bookcase", 11: "painting", 12: "counter", 13: "blind", 14: "desk", 15: "shelf", 16: "curtain",
    17: "chest of drawers", 18: "pillow", 19: "mirror", 20: "rug", 21: "apparel", 22: "ceiling", 23: "book",
    24: "refrigerator", 25: "television receiver", 27: "towel", 29: "box", 31: "person", 33: "toilet", 34: "sink",
    35: "lamp", 36: "bathtub", 37: "bag",
}
#: Stanford2D3D's 13 classes -> ADE20K-150 class name (beam and clutter have none).
S2D3D_TO_ADE = {
    "ceiling": "ceiling", "floor": "floor", "wall": "wall", "column": "column", "window": "windowpane",
    "door": "door", "table": "table", "chair": "chair", "sofa": "sofa", "bookcase": "bookcase",
    "board": "bulletin board",
}
S2D3D_DEPTH_SCALE = 512.0  # PNG units per metre
S2D3D_MISSING = 65535


@dataclass
class PanoramaSample:
    """One ERP panorama; ground-truth fields are None where the source has none (see the module docstring)."""

    key: str
    rgb: np.ndarray
    semantic: np.ndarray | None = None
    depth: np.ndarray | None = None
    normals: np.ndarray | None = None
    context: object = field(default=None, repr=False)


def read_rgb(path: Path | str) -> np.ndarray:
    """uint8 RGB [H, W, 3] of an image file."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return np.ascontiguousarray(image[..., ::-1])


def _read_unchanged(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return np.ascontiguousarray(image[..., ::-1]) if image.ndim == 3 else image


def _lookup_table(mapping: dict[int, str], size: int) -> np.ndarray:
    table = np.full(size, IGNORE_ID, dtype=np.uint8)
    for source_id, name in mapping.items():
        table[source_id] = class_id(name)
    return table


def _normals(depth: np.ndarray, mode: str) -> np.ndarray | None:
    if mode == "none":
        return None
    if mode != "from_depth":
        raise ValueError(f"normals must be 'from_depth' or 'none'; got {mode!r}")
    return normals_from_depth(depth)


class SyntheticPanoramas(Sequence):
    """Panoramas of synthetic scenes ``seeds`` (``views_per_scene`` free poses each) rendered at ``height`` on demand,
    with exact ground truth and the ``SceneContext`` the oracle teacher renders crops from."""

    def __init__(self, seeds: Sequence[int], height: int, views_per_scene: int = 1):
        self.seeds, self.height, self.views_per_scene = list(seeds), height, views_per_scene

    def __len__(self) -> int:
        return len(self.seeds) * self.views_per_scene

    def __getitem__(self, index: int) -> PanoramaSample:
        from pano_perception.synthetic import generate_scene, render_erp, sample_camera_poses

        if not 0 <= index < len(self):
            raise IndexError(index)
        seed, view = divmod(index, self.views_per_scene)
        scene = generate_scene(self.seeds[seed])
        pose = sample_camera_poses(scene, self.views_per_scene)[view]
        frame = render_erp(scene, pose, self.height)
        return PanoramaSample(key=f"synthetic/scene_{self.seeds[seed]:06d}/{view:03d}", rgb=frame.rgb,
                              semantic=frame.semantic, depth=frame.depth, normals=frame.normals,
                              context=SceneContext(scene, pose))


class SyntheticDatasetFolder(Sequence):
    """A dataset written by ``pano_perception.synthetic.dataset.write_dataset`` (exact ground truth)."""

    def __init__(self, root: Path | str):
        from pano_perception.synthetic.dataset import FORMAT

        self.root = Path(root)
        index = json.loads((self.root / "dataset.json").read_text())
        if index.get("format") != FORMAT:
            raise ValueError(f"{self.root} is not a {FORMAT} dataset")
        self.frames = [tuple(f) for f in index["frames"]]

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> PanoramaSample:
        from pano_perception.synthetic.dataset import read_frame

        scene, name = self.frames[index]
        arrays = read_frame(self.root / scene, name)
        return PanoramaSample(key=f"{scene}/{name}", rgb=arrays["rgb"], semantic=arrays["semantic"],
                              depth=arrays["depth"], normals=arrays["normals"])


class ErpFolder(Sequence):
    """Every ERP image under ``root`` (recursively, sorted; no labels): real captures, SUN360, DiT360 output ..."""

    def __init__(self, root: Path | str, suffixes: Sequence[str] = IMAGE_SUFFIXES):
        self.root = Path(root)
        self.paths = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in suffixes and p.is_file())

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> PanoramaSample:
        path = self.paths[index]
        return PanoramaSample(key=str(path.relative_to(self.root)), rgb=read_rgb(path))


class Structured3D(Sequence):
    """Structured3D panoramas (``config``: full, simple or empty furniture; ``lighting``: raw, cold or warm).

    ``scenes``: an optional list of scene ids (e.g. a split); else every ``scene_*`` folder under ``root``.
    """

    def __init__(self, root: Path | str, config: str = "full", lighting: str = "raw",
                 scenes: Sequence[int] | None = None, normals: str = "from_depth"):
        self.root, self.config, self.lighting, self.normals = Path(root), config, lighting, normals
        folders = ([self.root / f"scene_{s:05d}" for s in scenes] if scenes is not None
                   else sorted(self.root.glob("scene_*")))
        self.items = sorted(p for folder in folders for p in (folder / "2D_rendering").glob(f"*/panorama/{config}")
                            if (p / f"rgb_{lighting}light.png").is_file())
        self._nyu_to_ade = _lookup_table(NYU40_TO_ADE, 256)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> PanoramaSample:
        folder = self.items[index]
        depth_mm = _read_unchanged(folder / "depth.png")
        depth = np.where(depth_mm > 0, depth_mm.astype(np.float32) / 1000.0, np.nan).astype(np.float32)
        semantic = self._nyu_to_ade[_read_unchanged(folder / "semantic.png")]
        scene, room = folder.parts[-5], folder.parts[-3]
        return PanoramaSample(key=f"{scene}/{room}/{self.config}", rgb=read_rgb(folder / f"rgb_{self.lighting}light.png"),
                              semantic=semantic, depth=depth, normals=_normals(depth, self.normals))


class Stanford2D3D(Sequence):
    """Stanford2D3D equirectangular panoramas of ``areas`` (e.g. ``("area_5a", "area_5b")``; default: all)."""

    def __init__(self, root: Path | str, areas: Sequence[str] | None = None, normals: str = "from_depth"):
        self.root, self.normals = Path(root), normals
        areas = areas if areas is not None else sorted(p.name for p in self.root.glob("area_*"))
        self.items = sorted(p for area in areas for p in (self.root / area / "pano" / "rgb").glob("*_domain_rgb.png"))
        names = json.loads((self.root / "assets" / "semantic_labels.json").read_text())
        ids = [S2D3D_TO_ADE.get(name.split("_")[0]) for name in names]
        self._index_to_ade = np.array([class_id(n) if n else IGNORE_ID for n in ids], dtype=np.uint8)

    def __len__(self) -> int:
        return len(self.items)

    def _sibling(self, rgb_path: Path, kind: str, suffix: str) -> Path:
        stem = rgb_path.name[: -len("_domain_rgb.png")]
        return rgb_path.parents[1] / kind / f"{stem}_domain_{suffix}.png"

    def __getitem__(self, index: int) -> PanoramaSample:
        rgb_path = self.items[index]
        raw_depth = _read_unchanged(self._sibling(rgb_path, "depth", "depth"))
        depth = np.where((raw_depth > 0) & (raw_depth != S2D3D_MISSING), raw_depth / S2D3D_DEPTH_SCALE, np.nan)
        depth = depth.astype(np.float32)
        coded = _read_unchanged(self._sibling(rgb_path, "semantic", "semantic")).astype(np.int64)
        label_index = coded[..., 0] * 65536 + coded[..., 1] * 256 + coded[..., 2]
        in_table = label_index < len(self._index_to_ade)
        semantic = np.where(in_table, self._index_to_ade[np.where(in_table, label_index, 0)], IGNORE_ID)
        area = rgb_path.parents[2].name
        return PanoramaSample(key=f"{area}/{rgb_path.name[: -len('_domain_rgb.png')]}", rgb=read_rgb(rgb_path),
                              semantic=semantic.astype(np.uint8), depth=depth, normals=_normals(depth, self.normals))


def open_source(spec: str) -> Sequence[PanoramaSample]:
    """A source from ``kind:argument``: ``synthetic:FIRST-LAST@HEIGHT`` (seeds FIRST..LAST inclusive, rendered at
    HEIGHT), ``synthetic-dataset:DIR``, ``folder:DIR``, ``structured3d:DIR``, ``stanford2d3d:DIR[:area_5a+area_5b]``."""
    kind, _, argument = spec.partition(":")
    if kind == "synthetic":
        seeds, _, height = argument.partition("@")
        first, _, last = seeds.partition("-")
        return SyntheticPanoramas(range(int(first), int(last or first) + 1), int(height or 128))
    if kind == "synthetic-dataset":
        return SyntheticDatasetFolder(argument)
    if kind == "folder":
        return ErpFolder(argument)
    if kind == "structured3d":
        return Structured3D(argument)
    if kind == "stanford2d3d":
        root, _, areas = argument.partition(":")
        return Stanford2D3D(root, areas.split("+") if areas else None)
    raise ValueError(f"unknown source kind {kind!r} in {spec!r}")
