"""Training items from a pseudo-label cache, addressed by ``(panorama index, sample id)`` as
``training.runtime.ResumableSampler`` draws them: sample ``g`` has its own generator ``(seed, g)`` for the crop
choice and augmentation, so a resumed run continues the data exactly.

Each item: ``image`` float32 [3, H, W] ImageNet-normalised and ``rgb`` [3, H, W] in [0, 1] (for the image-derived
auxiliary labels), and ``K = crops_per_sample`` patches: ``semantic`` int64 [K, H, W] (255 = none), ``depth``
float32 [K, H, W] radial metres (NaN = none), ``normals`` and ``points`` float32 [K, 3, H, W] **in the release's
output frames** (frames.py; NaN = none). Augmentation (in our frame, before the frame change): a mirror
(``lon → −lon``: y → −y) and a yaw turn by a whole number of columns ``s`` (``lon → lon + 2πs/W``: vectors turned by
``Rz(−2πs/W)``), both exact for every label.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import Dataset

from pano_perception.models.mtpano.config import IMAGENET_MEAN, IMAGENET_STD

from .frames import to_official_frame
from .pseudo_labels import PseudoLabelCache


def yaw_rotation(delta_lon: float) -> np.ndarray:
    """3x3 rotation of our camera-frame vectors when the panorama turns so that longitudes grow by ``delta_lon``."""
    c, s = math.cos(-delta_lon), math.sin(-delta_lon)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)


def augment_erp(arrays: dict[str, np.ndarray], channel_last: tuple[str, ...], vectors: tuple[str, ...], flip: bool,
                shift: int) -> dict[str, np.ndarray]:
    """Mirror (if ``flip``) then roll by ``shift`` columns every ERP array of ``arrays``: [..., H, W], or
    [..., H, W, C] for the keys in ``channel_last``. The keys in ``vectors`` (channel-last camera-frame vectors) are
    turned with the image."""
    out = {}
    for key, value in arrays.items():
        axis = -2 if key in channel_last else -1
        if flip:
            value = np.flip(value, axis=axis)
            if key in vectors:
                value = value * np.array([1.0, -1.0, 1.0], dtype=np.float32)
        if key in vectors:
            value = value @ yaw_rotation(2.0 * math.pi * shift / value.shape[axis]).T
        out[key] = np.ascontiguousarray(np.roll(value, shift, axis=axis))
    return out


class PseudoLabelDataset(Dataset):
    """Items of a pseudo-label cache, addressed by ``(panorama index, sample id)`` (see module doc)."""

    def __init__(self, cache: PseudoLabelCache | str, crops_per_sample: int = 1, *, seed: int = 0,
                 yaw_augment: bool = True, flip_augment: bool = True):
        self.cache = cache if isinstance(cache, PseudoLabelCache) else PseudoLabelCache(cache)
        self.crops_per_sample, self.seed = crops_per_sample, seed
        self.yaw_augment, self.flip_augment = yaw_augment, flip_augment
        self.mean = np.array(IMAGENET_MEAN, dtype=np.float32)[:, None, None]
        self.std = np.array(IMAGENET_STD, dtype=np.float32)[:, None, None]

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, address: tuple[int, int]) -> dict[str, torch.Tensor]:
        index, sample = address
        rng = np.random.default_rng([self.seed, sample, 13])
        available = self.cache.num_crops(index)
        chosen = rng.choice(available, size=min(self.crops_per_sample, available), replace=False)
        crops = [self.cache.crop(index, int(c)) for c in sorted(chosen)]
        arrays = {
            "rgb": self.cache.rgb(index),
            "semantic": np.stack([c.semantic for c in crops]),
            "depth": np.stack([c.depth for c in crops]),
            "normals": np.stack([c.normals for c in crops]),
            "points": np.stack([c.points for c in crops]),
        }
        width = arrays["rgb"].shape[1]
        flip = bool(self.flip_augment and rng.random() < 0.5)
        shift = int(rng.integers(width)) if self.yaw_augment else 0
        arrays = augment_erp(arrays, ("rgb", "normals", "points"), ("normals", "points"), flip, shift)
        rgb = arrays["rgb"].transpose(2, 0, 1).astype(np.float32) / 255.0
        return {
            "rgb": torch.from_numpy(rgb),
            "image": torch.from_numpy((rgb - self.mean) / self.std),
            "semantic": torch.from_numpy(arrays["semantic"].astype(np.int64)),
            "depth": torch.from_numpy(arrays["depth"]),
            "normals": to_official_frame(torch.from_numpy(arrays["normals"]).permute(0, 3, 1, 2), "normals"),
            "points": to_official_frame(torch.from_numpy(arrays["points"]).permute(0, 3, 1, 2), "points"),
        }
