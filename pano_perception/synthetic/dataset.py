"""Synthetic panorama datasets on disk: writer, reader and a torch Dataset (layout: docs/SYNTHETIC.md).

::

    OUT/dataset.json                  format, version, size, seed, list of scenes and frames
    OUT/scene_SSSSSS/scene.json       the scene (kind, light, materials, objects, primitives) and its views' poses
    OUT/scene_SSSSSS/rgb/VVV.png      uint8 RGB (or .jpg)
    OUT/scene_SSSSSS/depth/VVV.png    uint16 radial depth in millimetres, 0 = invalid (sky, or beyond 65.535 m)
    OUT/scene_SSSSSS/depth/VVV.npy    float32 radial depth in metres, NaN = invalid
    OUT/scene_SSSSSS/normal/VVV.png   uint16 RGB = round((n + 1) / 2 * 65535), camera frame; (0, 0, 0) = invalid
    OUT/scene_SSSSSS/semantic/VVV.png uint8 ADE20K-150 ids (sky 2)
    OUT/scene_SSSSSS/instance/VVV.png uint16 instance ids (0 = none), see scene.json "objects"

All images are ERP panoramas (docs/CONVENTIONS.md); poses are world_from_camera in the scene's ``map`` frame.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from .generator import generate_scene, sample_camera_poses
from .render import Frame, RenderOptions, render_erp
from .scene import CameraPose, Scene

FORMAT = "pano_perception.synthetic"
VERSION = 1
DEPTH_PNG_SCALE = 1000.0  # PNG units per metre (millimetres)
NORMAL_PNG_MAX = 65535
_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 6]


def scene_dir_name(seed: int) -> str:
    return f"scene_{seed:06d}"


def encode_depth_mm(depth: np.ndarray) -> np.ndarray:
    """Radial depth (H, W) in metres (NaN invalid) -> uint16 millimetres (0 invalid, also beyond 65.535 m)."""
    mm = np.round(np.nan_to_num(depth, nan=0.0) * DEPTH_PNG_SCALE)
    return np.where((mm >= 1) & (mm <= 65535), mm, 0).astype(np.uint16)


def decode_depth_mm(png: np.ndarray) -> np.ndarray:
    """uint16 millimetres -> float32 metres with NaN where 0."""
    return np.where(png > 0, png.astype(np.float32) / DEPTH_PNG_SCALE, np.nan).astype(np.float32)


def encode_normals(normals: np.ndarray) -> np.ndarray:
    """Unit normals (H, W, 3) (NaN invalid) -> uint16 (H, W, 3) ``round((n + 1) / 2 * 65535)``, (0, 0, 0) invalid."""
    valid = np.isfinite(normals).all(axis=-1, keepdims=True)
    coded = np.round((np.nan_to_num(normals) + 1.0) * (NORMAL_PNG_MAX / 2.0))
    return np.where(valid, np.clip(coded, 0, NORMAL_PNG_MAX), 0).astype(np.uint16)


def decode_normals(png: np.ndarray) -> np.ndarray:
    """uint16 (H, W, 3) -> float32 unit normals, NaN where the pixel is (0, 0, 0)."""
    n = png.astype(np.float64) * (2.0 / NORMAL_PNG_MAX) - 1.0
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    return np.where((png == 0).all(axis=-1, keepdims=True), np.nan, n).astype(np.float32)


def _write_png(path: Path, image: np.ndarray) -> None:
    if image.ndim == 3:
        image = image[..., ::-1]  # OpenCV writes BGR
    if not cv2.imwrite(str(path), np.ascontiguousarray(image), _PNG):
        raise OSError(f"could not write {path}")


def _read_image(path: Path, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    image = cv2.imread(str(path), flags)
    if image is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return np.ascontiguousarray(image[..., ::-1]) if image.ndim == 3 else image


def write_frame(scene_dir: Path, name: str, frame: Frame, jpeg_quality: int | None = None) -> None:
    """Write one ERP frame's images under ``scene_dir`` (RGB as JPEG at ``jpeg_quality`` if given)."""
    for sub in ("rgb", "depth", "normal", "semantic", "instance"):
        (scene_dir / sub).mkdir(parents=True, exist_ok=True)
    if jpeg_quality is None:
        _write_png(scene_dir / "rgb" / f"{name}.png", frame.rgb)
    elif not cv2.imwrite(str(scene_dir / "rgb" / f"{name}.jpg"), frame.rgb[..., ::-1],
                         [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]):
        raise OSError(f"could not write {scene_dir / 'rgb' / name}.jpg")
    _write_png(scene_dir / "depth" / f"{name}.png", encode_depth_mm(frame.depth))
    np.save(scene_dir / "depth" / f"{name}.npy", frame.depth.astype(np.float32))
    _write_png(scene_dir / "normal" / f"{name}.png", encode_normals(frame.normals))
    _write_png(scene_dir / "semantic" / f"{name}.png", frame.semantic)
    _write_png(scene_dir / "instance" / f"{name}.png", frame.instance)


def read_frame(scene_dir: Path | str, name: str, depth_from: str = "npy") -> dict:
    """One frame as numpy arrays: rgb uint8 (H, W, 3), depth float32 (NaN invalid; from the .npy or the mm
    PNG), normals float32 (H, W, 3), semantic uint8, instance uint16."""
    scene_dir = Path(scene_dir)
    rgb_path = scene_dir / "rgb" / f"{name}.png"
    if not rgb_path.exists():
        rgb_path = rgb_path.with_suffix(".jpg")
    if depth_from == "npy":
        depth = np.load(scene_dir / "depth" / f"{name}.npy")
    elif depth_from == "png":
        depth = decode_depth_mm(_read_image(scene_dir / "depth" / f"{name}.png"))
    else:
        raise ValueError(f"depth_from must be 'npy' or 'png'; got {depth_from!r}")
    return {
        "rgb": _read_image(rgb_path, cv2.IMREAD_COLOR),
        "depth": depth,
        "normals": decode_normals(_read_image(scene_dir / "normal" / f"{name}.png")),
        "semantic": _read_image(scene_dir / "semantic" / f"{name}.png"),
        "instance": _read_image(scene_dir / "instance" / f"{name}.png"),
    }


def write_scene(out_dir: Path | str, scene: Scene, poses: list[CameraPose], height: int,
                options: RenderOptions | None = None, jpeg_quality: int | None = None,
                on_frame: Callable[[], None] | None = None) -> list[str]:
    """Render ERP frames of ``height`` x ``2*height`` at ``poses`` and write them with ``scene.json``.

    Frame k's sensor noise uses seed ``options.seed + k``. Returns the frame names.
    """
    options = options or RenderOptions()
    scene_dir = Path(out_dir) / scene_dir_name(scene.seed)
    scene_dir.mkdir(parents=True, exist_ok=True)
    names = []
    for k, pose in enumerate(poses):
        name = f"{k:03d}"
        frame = render_erp(scene, pose, height, dataclasses.replace(options, seed=options.seed + k))
        write_frame(scene_dir, name, frame, jpeg_quality)
        names.append(name)
        if on_frame is not None:
            on_frame()
    meta = scene.to_json()
    meta["views"] = [{"name": name, "height": height, "width": 2 * height, "pose": pose.to_json()}
                     for name, pose in zip(names, poses)]
    (scene_dir / "scene.json").write_text(json.dumps(meta, indent=1))
    return names


def write_dataset(out_dir: Path | str, n_scenes: int, height: int, *, seed: int = 0, views_per_scene: int = 1,
                  options: RenderOptions | None = None, jpeg_quality: int | None = None,
                  on_frame: Callable[[], None] | None = None) -> Path:
    """Generate scenes ``seed, seed + 1, ..., seed + n_scenes - 1`` with ``views_per_scene`` random free poses
    each and write them under ``out_dir``; returns the path of ``dataset.json``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = []
    for scene_seed in range(seed, seed + n_scenes):
        scene = generate_scene(scene_seed)
        poses = sample_camera_poses(scene, views_per_scene)
        names = write_scene(out_dir, scene, poses, height, options, jpeg_quality, on_frame)
        frames += [[scene_dir_name(scene_seed), name] for name in names]
    index = {"format": FORMAT, "version": VERSION, "height": height, "width": 2 * height, "seed": seed,
             "scenes": sorted({scene for scene, _ in frames}), "frames": frames,
             "rgb": "jpg" if jpeg_quality is not None else "png", "label_space": "ADE20K-150 (0-based)",
             "depth": "radial metres", "normals": "camera frame (REP-103), facing the camera"}
    path = out_dir / "dataset.json"
    path.write_text(json.dumps(index, indent=1))
    return path


class SyntheticPanoramaDataset(Dataset):
    """Frames of a dataset written by ``write_dataset``, as torch tensors.

    Each item: ``rgb`` float32 (3, H, W) in [0, 1]; ``depth`` float32 (1, H, W) radial metres, NaN invalid;
    ``normals`` float32 (3, H, W) camera frame, NaN invalid; ``semantic`` int64 (H, W) ADE20K-150 ids;
    ``instance`` int64 (H, W); ``pose`` float64 (4, 4) world_from_camera; ``scene`` and ``name`` strings.
    """

    def __init__(self, root: Path | str, depth_from: str = "npy", transform: Callable[[dict], dict] | None = None):
        self.root = Path(root)
        index = json.loads((self.root / "dataset.json").read_text())
        if index.get("format") != FORMAT:
            raise ValueError(f"{self.root} is not a {FORMAT} dataset")
        self.frames = [tuple(f) for f in index["frames"]]
        self.depth_from, self.transform = depth_from, transform
        self._poses: dict[str, dict[str, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.frames)

    def pose(self, scene: str, name: str) -> np.ndarray:
        if scene not in self._poses:
            meta = json.loads((self.root / scene / "scene.json").read_text())
            self._poses[scene] = {v["name"]: CameraPose.from_json(v["pose"]).matrix() for v in meta["views"]}
        return self._poses[scene][name]

    def __getitem__(self, index: int) -> dict:
        scene, name = self.frames[index]
        arrays = read_frame(self.root / scene, name, self.depth_from)
        item = {
            "rgb": torch.from_numpy(arrays["rgb"]).permute(2, 0, 1).float() / 255.0,
            "depth": torch.from_numpy(arrays["depth"])[None],
            "normals": torch.from_numpy(arrays["normals"]).permute(2, 0, 1).contiguous(),
            "semantic": torch.from_numpy(arrays["semantic"].astype(np.int64)),
            "instance": torch.from_numpy(arrays["instance"].astype(np.int64)),
            "pose": torch.from_numpy(self.pose(scene, name)),
            "scene": scene,
            "name": name,
        }
        return self.transform(item) if self.transform is not None else item
