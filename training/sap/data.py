"""Scan-video training clips from instance-labelled panoramas, and perspective clips to mix in.

Panorama sources (``DataConfig.panoramas``):

- ``synthetic:PATH``: a dataset written by ``pano_perception.synthetic.dataset.write_dataset`` (docs/SYNTHETIC.md);
  ``scene.json`` says which instances are objects (``is_thing``) and which are stuff.
- ``folder:PATH``: external panoramas in this layout::

      PATH/rgb/NAME.png|.jpg       RGB equirectangular panorama (W = 2H), any size
      PATH/instance/NAME.png       uint16 instance ids, same size (0 = no instance: sky, unlabelled)
      PATH/stuff.json              optional: {"NAME": [ids of stuff regions such as walls or floor], ...}

Perspective sources (``DataConfig.perspective``, optional, mixed in at ``perspective_ratio``; SAP mixes SA-1B and
SA-V this way): ``PATH/SEQUENCE/rgb/*.png|.jpg`` with ``PATH/SEQUENCE/instance/*.png`` (same stems, uint16 ids);
an image dataset is one sequence per image, a video a sequence of frames in name order. Frames are centre-cropped
to a square.

A panorama clip (``ScanClipDataset``): the scan's N views (``ScanTrajectory``) rendered from the panorama after a
random yaw turn and mirror (both exact on an ERP), a window of ``clip_length`` frames starting at a random index of
the trajectory repeated twice (so a window of N frames shows every view once, SAP Sec. 5.1), K objects, each
prompted on the frame where it is most visible (points: the first positive near the mask's deepest point, further
ones positive inside or negative just outside; or a box), and with ``prompt_frames = visible`` the same clicks on
every frame where their ray is visible, as ``PanoSegmenter`` does at inference.

Each item is a dict: ``frames`` uint8 (T, 3, s, s), ``views`` (T,) trajectory view indices (-1: not a scan view),
``masks`` bool (K, T, s, s), ``prompts`` a list of K dicts ``{frame: (points (P, 2) or None, labels (P,) or None,
box (4,) or None)}`` in continuous frame pixels, ``loss_frames`` bool (T,), ``teacher_forcing`` bool (memory of
the truth; panorama clips only). Sample ``g`` of a run draws everything
from its own generator ``(seed, g)``, so the data position depends only on the step (exact resumes).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from scipy import ndimage
from torch.utils.data import Dataset

from pano_perception.geometry import e2p
from pano_perception.models.sap import ScanTrajectory, project_rays
from pano_perception.synthetic.dataset import read_frame

from .config import DataConfig

#: Fewest frame pixels (over the clip) an object needs to be tracked and prompted.
MIN_FRAME_PIXELS = 4


@dataclass
class Panorama:
    """An instance-labelled panorama: ``rgb`` uint8 (H, 2H, 3), ``instance`` int32 (H, 2H) (0 = none) and the ids
    that are stuff rather than objects."""

    rgb: np.ndarray
    instance: np.ndarray
    stuff: frozenset[int] = frozenset()


class PanoramaSource:
    """Panoramas of one source (see the module doc), loaded on demand."""

    def __init__(self, spec: str):
        kind, sep, path = spec.partition(":")
        if not sep or kind not in ("synthetic", "folder"):
            raise ValueError(f"a panorama source is synthetic:PATH or folder:PATH; got {spec!r}")
        self.kind, self.root = kind, Path(path)
        if kind == "synthetic":
            index = json.loads((self.root / "dataset.json").read_text())
            self.items = [tuple(f) for f in index["frames"]]
            self._stuff: dict[str, frozenset[int]] = {}
        else:
            names = sorted(p.stem for p in (self.root / "rgb").iterdir() if p.suffix in (".png", ".jpg"))
            if not names:
                raise ValueError(f"{self.root}/rgb holds no .png or .jpg panoramas")
            self.items = [(name,) for name in names]
            stuff_file = self.root / "stuff.json"
            stuff = json.loads(stuff_file.read_text()) if stuff_file.is_file() else {}
            self._stuff = {name: frozenset(int(i) for i in ids) for name, ids in stuff.items()}

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Panorama:
        if self.kind == "synthetic":
            scene, name = self.items[index]
            arrays = read_frame(self.root / scene, name)
            if scene not in self._stuff:
                meta = json.loads((self.root / scene / "scene.json").read_text())
                self._stuff[scene] = frozenset(o["instance_id"] for o in meta["objects"] if not o["is_thing"])
            return Panorama(arrays["rgb"], arrays["instance"].astype(np.int32), self._stuff[scene])
        (name,) = self.items[index]
        rgb_path = self.root / "rgb" / f"{name}.png"
        rgb = cv2.imread(str(rgb_path if rgb_path.exists() else rgb_path.with_suffix(".jpg")), cv2.IMREAD_COLOR)
        instance = cv2.imread(str(self.root / "instance" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        if rgb is None or instance is None or instance.shape != rgb.shape[:2]:
            raise ValueError(f"{self.root}: panorama {name} needs rgb/{name}.png|jpg and a same-size "
                             f"instance/{name}.png")
        return Panorama(np.ascontiguousarray(rgb[..., ::-1]), instance.astype(np.int32),
                        self._stuff.get(name, frozenset()))


class PanoramaCollection:
    """Several panorama sources as one indexable sequence."""

    def __init__(self, specs: Sequence[str]):
        self.sources = [PanoramaSource(s) for s in specs]
        self.offsets = np.cumsum([0] + [len(s) for s in self.sources])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int) -> Panorama:
        source = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return self.sources[source][index - int(self.offsets[source])]


# ----------------------------------------------------------------------------------------------------------------
# prompts
# ----------------------------------------------------------------------------------------------------------------
def _inside_distance(mask: np.ndarray) -> np.ndarray:
    """Distance (px) of each mask pixel to the nearest pixel outside it (the frame border counts as outside)."""
    return ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]


def sample_points(mask: np.ndarray, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` clicks on a frame mask (h, w) bool: continuous pixels (count, 2) and labels (count,).

    The first is positive, at the deepest pixel (half of the time) or a random pixel at least half as deep; the
    others positive (inside, away from the edge) or negative (in a band outside the mask) with equal chance,
    like the corrections of the 3-click protocol.
    """
    depth = _inside_distance(mask)
    deep = np.argwhere(depth >= 0.5 * depth.max())
    first = np.unravel_index(np.argmax(depth), depth.shape) if rng.random() < 0.5 else deep[rng.integers(len(deep))]
    points, labels = [first], [1]
    band = max(3, int(0.05 * mask.shape[0]))
    ring = np.argwhere(ndimage.binary_dilation(mask, iterations=band) & ~mask)
    interior = np.argwhere(depth >= min(2.0, depth.max()))
    for _ in range(count - 1):
        if len(ring) and rng.random() < 0.5:
            points.append(ring[rng.integers(len(ring))])
            labels.append(0)
        else:
            points.append(interior[rng.integers(len(interior))])
            labels.append(1)
    rows_cols = np.asarray(points, dtype=np.float64)
    return rows_cols[:, ::-1] + 0.5, np.asarray(labels, dtype=np.int64)


def sample_box(mask: np.ndarray, rng: np.random.Generator, jitter: float = 0.05) -> np.ndarray:
    """The mask's bounding box (x0, y0, x1, y1) in continuous pixels, each side moved by up to ``jitter`` of
    the box size, clipped to the frame."""
    rows, cols = np.nonzero(mask)
    box = np.array([cols.min(), rows.min(), cols.max() + 1.0, rows.max() + 1.0])
    size = np.array([box[2] - box[0], box[3] - box[1]] * 2)
    box = box + rng.uniform(-jitter, jitter, 4) * size
    h, w = mask.shape
    return np.clip(box, 0.0, [w, h, w, h])


def frame_pixel_rays(view, points: np.ndarray) -> np.ndarray:
    """Continuous pixels (P, 2) of a perspective view -> unit rays (P, 3) in the camera frame."""
    local = np.stack([(points[:, 0] - view.width / 2.0) / view.focal, (points[:, 1] - view.height / 2.0) / view.focal,
                      np.ones(len(points))], axis=-1)
    rays = local @ view.rotation.T
    return rays / np.linalg.norm(rays, axis=-1, keepdims=True)


# ----------------------------------------------------------------------------------------------------------------
# datasets
# ----------------------------------------------------------------------------------------------------------------
def _choose_count(probabilities: Sequence[float], rng: np.random.Generator) -> int:
    p = np.asarray(probabilities, dtype=np.float64)
    return int(rng.choice(len(p), p=p / p.sum())) + 1


def _jitter_colors(frames: np.ndarray, amplitude: float, rng: np.random.Generator) -> np.ndarray:
    if amplitude <= 0:
        return frames
    gain, offset = 1.0 + rng.uniform(-amplitude, amplitude), 255.0 * rng.uniform(-amplitude, amplitude) / 2
    return np.clip(frames.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)


def _loss_frames(num_frames: int, prompted: set[int], visible: np.ndarray, count: int,
                 rng: np.random.Generator) -> np.ndarray:
    """Prompted frames plus ``count`` more: half among frames showing an object, the rest any (0: all frames)."""
    chosen = np.zeros(num_frames, dtype=bool)
    if count <= 0 or count >= num_frames:
        chosen[:] = True
        return chosen
    chosen[list(prompted)] = True
    showing = np.flatnonzero(visible & ~chosen)
    take = rng.permutation(showing)[:count // 2]
    chosen[take] = True
    rest = np.flatnonzero(~chosen)
    chosen[rng.permutation(rest)[:count - len(take)]] = True
    return chosen


class ScanClipDataset(Dataset):
    """Training clips along the SAP scanning trajectory (module doc); items are addressed by ``(panorama index,
    sample id)`` as produced by ``training.runtime.ResumableSampler``."""

    def __init__(self, config: DataConfig, seed: int = 0, panoramas: PanoramaCollection | None = None):
        self.config, self.seed = config, seed
        self.panoramas = panoramas if panoramas is not None else PanoramaCollection(config.panoramas)
        self.trajectory = ScanTrajectory(config.fov_deg, config.overlap, config.pitch_deg, config.frame_size)
        self.length = config.clip_length or len(self.trajectory)
        if not 1 <= self.length <= len(self.trajectory):
            raise ValueError(f"clip_length must be in [1, {len(self.trajectory)}]; got {self.length}")
        self.perspective = PerspectiveClipDataset(config, seed) if config.perspective else None

    def __len__(self) -> int:
        return len(self.panoramas)

    def window(self, start: int) -> np.ndarray:
        """View indices of the window of ``clip_length`` frames at ``start`` of the trajectory repeated twice."""
        order = np.arange(len(self.trajectory))
        return np.concatenate([order, order])[start:start + self.length]

    def __getitem__(self, address: tuple[int, int]) -> dict:
        index, sample = address
        rng = np.random.default_rng([self.seed, sample, 17])
        if self.perspective is not None and rng.random() < self.config.perspective_ratio:
            return self.perspective.clip(int(rng.integers(len(self.perspective))), rng)
        pano = self.panoramas[index]
        rgb, instance = pano.rgb, pano.instance
        if self.config.flip_augment and rng.random() < 0.5:
            rgb, instance = rgb[:, ::-1], instance[:, ::-1]  # lon -> -lon, exact for pixel centres
        if self.config.yaw_augment:
            shift = int(rng.integers(rgb.shape[1]))
            rgb, instance = np.roll(rgb, shift, axis=1), np.roll(instance, shift, axis=1)
        views = self.trajectory.views
        window = self.window(int(rng.integers(len(self.trajectory))))
        chosen_views = [views[i] for i in window]
        frames = e2p(np.ascontiguousarray(rgb), chosen_views)  # (T, s, s, 3)
        ids = e2p(np.ascontiguousarray(instance), chosen_views, mode="nearest")  # (T, s, s)
        frames = _jitter_colors(frames, self.config.color_jitter, rng)
        objects = self._choose_objects(instance, ids, pano.stuff, rng)
        masks = np.stack([ids == obj for obj in objects]) if objects else np.zeros((0, *ids.shape), bool)
        prompts = [self._prompts(m, chosen_views, rng) for m in masks]
        prompted = {f for p in prompts for f in p}
        return {
            "frames": torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2))),
            "views": torch.as_tensor(window),
            "masks": torch.from_numpy(masks),
            "prompts": prompts,
            "loss_frames": torch.from_numpy(_loss_frames(len(window), prompted, masks.any(axis=(0, 2, 3)),
                                                         self.config.loss_frames, rng)),
            "teacher_forcing": bool(rng.random() < self.config.teacher_forcing),
        }

    def _choose_objects(self, instance: np.ndarray, window_ids: np.ndarray, stuff: frozenset[int],
                        rng: np.random.Generator) -> list[int]:
        """Up to ``objects_per_clip`` ids large enough in the ERP and seen by the window's frames."""
        counts = np.bincount(instance.ravel())
        seen = np.bincount(window_ids.ravel(), minlength=len(counts))[:len(counts)]
        ids = np.flatnonzero((counts >= self.config.min_object_area * instance.size) & (seen >= MIN_FRAME_PIXELS))
        ids = ids[ids > 0]
        if len(ids) == 0:
            return []
        weights = np.array([1.0 if i in stuff else self.config.thing_weight for i in ids])
        count = min(self.config.objects_per_clip, len(ids))
        return [int(i) for i in rng.choice(ids, size=count, replace=False, p=weights / weights.sum())]

    def _prompts(self, masks: np.ndarray, views, rng: np.random.Generator) -> dict[int, tuple]:
        """One object's prompts per frame from its masks (T, s, s) (see the module doc)."""
        best = int(np.argmax(masks.sum(axis=(1, 2))))
        if rng.random() < self.config.box_probability:
            return {best: (None, None, sample_box(masks[best], rng))}
        points, labels = sample_points(masks[best], _choose_count(self.config.points_probabilities, rng), rng)
        prompts = {best: (points, labels, None)}
        if self.config.prompt_frames == "visible":
            pixels, visible = project_rays(frame_pixel_rays(views[best], points), views)
            size = np.array([views[0].width, views[0].height], dtype=np.float64)
            for frame in np.flatnonzero((visible & (labels == 1)).any(axis=1)):
                if frame != best:
                    shown = visible[frame]
                    prompts[int(frame)] = (np.clip(pixels[frame, shown], 0.0, size - 1e-3), labels[shown], None)
        return prompts


class PerspectiveClipDataset:
    """Clips of perspective image or video data (module doc): ``clip_length`` consecutive frames (fewer when the
    sequence is shorter), centre-cropped and resized to ``frame_size``, prompted on the most visible frame."""

    def __init__(self, config: DataConfig, seed: int = 0):
        self.config, self.seed = config, seed
        self.sequences = []
        for root in config.perspective:
            for sequence in sorted(p for p in Path(root).iterdir() if (p / "rgb").is_dir()):
                names = sorted(p.stem for p in (sequence / "rgb").iterdir() if p.suffix in (".png", ".jpg"))
                if names:
                    self.sequences.append((sequence, names))
        if not self.sequences:
            raise ValueError(f"no perspective sequences (SEQUENCE/rgb, SEQUENCE/instance) under {config.perspective}")

    def __len__(self) -> int:
        return len(self.sequences)

    def _read(self, sequence: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
        rgb_path = sequence / "rgb" / f"{name}.png"
        rgb = cv2.imread(str(rgb_path if rgb_path.exists() else rgb_path.with_suffix(".jpg")), cv2.IMREAD_COLOR)
        ids = cv2.imread(str(sequence / "instance" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        h, w = ids.shape
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        size = self.config.frame_size
        rgb = cv2.resize(rgb[top:top + side, left:left + side, ::-1], (size, size), interpolation=cv2.INTER_AREA)
        ids = cv2.resize(ids[top:top + side, left:left + side], (size, size), interpolation=cv2.INTER_NEAREST)
        return rgb, ids.astype(np.int32)

    def clip(self, index: int, rng: np.random.Generator) -> dict:
        sequence, names = self.sequences[index]
        length = min(self.config.clip_length or len(names), len(names))
        start = int(rng.integers(len(names) - length + 1))
        pairs = [self._read(sequence, n) for n in names[start:start + length]]
        frames = np.stack([p[0] for p in pairs])
        ids = np.stack([p[1] for p in pairs])
        counts = np.bincount(ids.ravel())
        candidates = np.flatnonzero(counts >= self.config.min_object_area * ids.size)
        candidates = candidates[candidates > 0]
        count = min(self.config.objects_per_clip, len(candidates))
        objects = rng.choice(candidates, size=count, replace=False) if count else []
        masks = np.stack([ids == o for o in objects]) if count else np.zeros((0, *ids.shape), bool)
        masks = masks[masks.sum(axis=(1, 2, 3)) >= MIN_FRAME_PIXELS]
        prompts = []
        for m in masks:
            best = int(np.argmax(m.sum(axis=(1, 2))))
            if rng.random() < self.config.box_probability:
                prompts.append({best: (None, None, sample_box(m[best], rng))})
            else:
                count = _choose_count(self.config.points_probabilities, rng)
                prompts.append({best: (*sample_points(m[best], count, rng), None)})
        prompted = {f for p in prompts for f in p}
        return {
            "frames": torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2))),
            "views": torch.full((length,), -1),
            "masks": torch.from_numpy(masks),
            "prompts": prompts,
            "loss_frames": torch.from_numpy(_loss_frames(length, prompted, masks.any(axis=(0, 2, 3)),
                                                         self.config.loss_frames, rng)),
            "teacher_forcing": False,
        }


def collate_clips(items: list[dict]) -> list[dict]:
    """Clips differ in length and object count: a batch is the list of them."""
    return items
