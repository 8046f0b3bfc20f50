"""The built-in SAP backend: a small promptable video segmenter with a memory of earlier frames (CPU-trainable).

Design (docs/SAP_TRAINING.md has the reasoning and the measurements). Every frame is segmented at the network's
working size ``image_size`` (square; the backend resizes the scan's frames to it and its probabilities back):

- ``image_encoder``: a light conv net, features at strides 2, 4 and 8 (computed once per frame and cached).
- ``prompt_encoder``: clicks as Gaussian heat maps (positive, negative) and the box as a filled rectangle, three
  channels at full resolution, encoded at strides 2, 4 and 8.
- Memory of earlier frames, two kinds, each split into *conditioning* frames (the frames that carry prompts, kept
  for the whole video) and *recent* frames (the latest predictions), as in SAM2:
  - a **spherical mask memory**: each frame's predicted probability is written onto an equirectangular canvas
    through the frame's rays (``FrameGeometry``; a scan view knows its rays exactly), and read back into the
    current frame through its rays: channels (probability, seen) for the conditioning and the recent canvas. For
    a rotating scan this aligns earlier masks with the current frame exactly where the views overlap.
  - an **appearance memory**: keys from the stride-8 features (``memory_encoder``), values the frames' pooled
    probabilities; the current frame attends to the conditioning and to the recent memory frames (softmax
    readout, one channel each), which re-finds an object where no earlier frame overlaps.
- ``memory_attention``: encodes the four canvas channels at strides 2, 4, 8 and fuses them, the readouts, the
  prompt embedding and the image features at stride 8 with dilated residual blocks (the receptive field spans
  the frame).
- ``mask_decoder``: upsampling with skip connections to stride 2, one logit per pixel, bilinear to full size.

Propagation (``Tracker``): first the prompted frames in video order (each sees the memory of the earlier prompted
frames) fill the conditioning memory; then every frame from 0 to N-1 in order, prompted frames again with their
prompts, each reading both memories and writing the recent one. Objects are tracked together (batch dimension);
the image features are shared.

Without frame geometry (``views`` that are neither ``PerspectiveView`` nor ``FrameGeometry``, e.g. a single
resized ERP) the spherical memory is off and only the appearance memory remains.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections import OrderedDict, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...geometry import PerspectiveView, lonlat_to_erp_pixel, ray_to_lonlat
from ...geometry.projection import pad_erp
from ...geometry.sphere import erp_rays
from .backend import BackendSpec, SegmenterBackend

#: The weights that ship with the package (docs/SAP_TRAINING.md: how they were trained).
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[2] / "data" / "sap_builtin.safetensors"
#: Frames whose encoder features the backend keeps (keyed by content), so a re-ordered scan costs no encoding.
FEATURE_CACHE_FRAMES = 64
_IMAGE_MEAN = (0.485, 0.456, 0.406)
_IMAGE_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BuiltinConfig:
    """Network size. ``image_size``: working side (px); ``widths``: channels at strides 2, 4, 8; ``key_dim``:
    appearance-memory key size; ``canvas_height``: rows of the spherical memory canvas (ERP, width 2x; 192 rows
    hold about one canvas pixel per frame pixel for 90-degree frames of 128 px); ``recent_frames`` and
    ``cond_frames``: memory frames kept (most recent first dropped last); ``click_sigma``: heat-map radius (px at
    ``image_size``)."""

    image_size: int = 128
    widths: tuple[int, int, int] = (16, 32, 64)
    key_dim: int = 32
    canvas_height: int = 192
    recent_frames: int = 3
    cond_frames: int = 8
    click_sigma: float = 2.5

    def __post_init__(self):
        if self.image_size % 8 or self.image_size < 32:
            raise ValueError(f"image_size must be a multiple of 8 and at least 32; got {self.image_size}")
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> BuiltinConfig:
        return cls(**json.loads(text))


# ----------------------------------------------------------------------------------------------------------------
# network
# ----------------------------------------------------------------------------------------------------------------
def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(max(1, channels // 8), channels)


class ConvBlock(nn.Sequential):
    """3x3 convolution, group norm, ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1):
        super().__init__(nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
                         _norm(cout), nn.ReLU(inplace=True))


class ResBlock(nn.Module):
    """Two 3x3 convolutions with a skip connection (``dilation`` widens the receptive field)."""

    def __init__(self, channels: int, dilation: int = 1):
        super().__init__()
        self.body = nn.Sequential(ConvBlock(channels, channels, dilation=dilation),
                                  nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False),
                                  _norm(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class Pyramid(nn.Module):
    """A few guidance channels at full resolution -> embeddings at strides 2, 4 and 8."""

    def __init__(self, cin: int, widths: tuple[int, int, int]):
        super().__init__()
        self.s2 = ConvBlock(cin, widths[0], stride=2)
        self.s4 = ConvBlock(widths[0], widths[1], stride=2)
        self.s8 = ConvBlock(widths[1], widths[2], stride=2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x2 = self.s2(x)
        x4 = self.s4(x2)
        return x2, x4, self.s8(x4)


class ImageEncoder(nn.Module):
    """RGB (B, 3, S, S) ImageNet-normalised -> features at strides 2, 4, 8."""

    def __init__(self, widths: tuple[int, int, int]):
        super().__init__()
        c2, c4, c8 = widths
        self.s2 = ConvBlock(3, c2, stride=2)
        self.s4 = nn.Sequential(ConvBlock(c2, c4, stride=2), ResBlock(c4))
        self.s8 = nn.Sequential(ConvBlock(c4, c8, stride=2), ResBlock(c8), ResBlock(c8, dilation=2))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f2 = self.s2(images)
        f4 = self.s4(f2)
        return f2, f4, self.s8(f4)


class MemoryEncoder(nn.Module):
    """Appearance keys: unit vectors (B, key_dim, S/8, S/8) from the stride-8 features."""

    def __init__(self, channels: int, key_dim: int):
        super().__init__()
        self.key = nn.Conv2d(channels, key_dim, 1)

    def forward(self, f8: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.key(f8), dim=1)


class MemoryAttention(nn.Module):
    """Fuses the image features with the prompt embedding, the spherical-memory priors and the appearance readouts
    at stride 8; ``priors`` also gives the skip embeddings at strides 2 and 4."""

    PRIOR_CHANNELS = 4  # conditioning (probability, seen), recent (probability, seen)
    READOUT_CHANNELS = 2  # conditioning, recent

    def __init__(self, widths: tuple[int, int, int]):
        super().__init__()
        half = tuple(w // 2 for w in widths)
        c8 = widths[2]
        self.priors = Pyramid(self.PRIOR_CHANNELS, half)
        self.log_temperature = nn.Parameter(torch.tensor(math.log(0.05)))
        self.merge = nn.Conv2d(c8 + 2 * half[2] + self.READOUT_CHANNELS, c8, 1)
        self.fuse = nn.Sequential(ResBlock(c8, dilation=2), ResBlock(c8, dilation=4))

    def readout(self, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Softmax attention of query tokens (D, Q) over memory tokens ``keys`` (D, M) with per-object ``values``
        (K, M) -> (K, Q); zeros when the memory is empty."""
        if keys.shape[1] == 0:
            return values.new_zeros((values.shape[0], query.shape[1]))
        weights = torch.softmax((keys.T @ query) / self.log_temperature.exp(), dim=0)  # (M, Q)
        return values @ weights

    def forward(self, f8, prompt8, prior8, readouts):
        x = self.merge(torch.cat([f8.expand(prompt8.shape[0], -1, -1, -1), prompt8, prior8, readouts], dim=1))
        return self.fuse(x)


class MaskDecoder(nn.Module):
    """Stride-8 fused features + skips (image, prompt, prior) -> one logit per pixel at full size."""

    def __init__(self, widths: tuple[int, int, int]):
        super().__init__()
        c2, c4, c8 = widths
        self.up4 = ConvBlock(c8 + c4 + c4, c4)  # fused, image, prompt + prior halves
        self.up2 = ConvBlock(c4 + c2 + c2, c2)
        self.head = nn.Conv2d(c2, 1, 1)
        nn.init.constant_(self.head.bias, -2.0)  # most pixels are not the object

    def forward(self, x, f4, g4, f2, g2) -> torch.Tensor:
        k = x.shape[0]
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        x = self.up4(torch.cat([x, f4.expand(k, -1, -1, -1), g4], dim=1))
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        x = self.up2(torch.cat([x, f2.expand(k, -1, -1, -1), g2], dim=1))
        return F.interpolate(self.head(x), scale_factor=2.0, mode="bilinear", align_corners=False)


class BuiltinSegmenterNet(nn.Module):
    """The network; the module names are the training groups (image_encoder, prompt_encoder, memory_encoder,
    memory_attention, mask_decoder)."""

    def __init__(self, config: BuiltinConfig = BuiltinConfig()):
        super().__init__()
        self.config = config
        half = tuple(w // 2 for w in config.widths)
        self.image_encoder = ImageEncoder(config.widths)
        self.prompt_encoder = Pyramid(3, half)
        self.memory_encoder = MemoryEncoder(config.widths[2], config.key_dim)
        self.memory_attention = MemoryAttention(config.widths)
        self.mask_decoder = MaskDecoder(config.widths)
        self.register_buffer("mean", torch.tensor(_IMAGE_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGE_STD).view(1, 3, 1, 1), persistent=False)

    def encode_images(self, frames: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """uint8 or [0, 1] float frames (B, 3, S, S) -> (f2, f4, f8, keys)."""
        images = frames.float() / 255.0 if frames.dtype == torch.uint8 else frames
        f2, f4, f8 = self.image_encoder((images - self.mean) / self.std)
        return f2, f4, f8, self.memory_encoder(f8)

    def decode(self, features, clicks: torch.Tensor, priors: torch.Tensor, readouts: torch.Tensor) -> torch.Tensor:
        """One frame's features (f2, f4, f8) with batch 1, K objects' click maps (K, 3, S, S), canvas priors
        (K, 4, S, S) and appearance readouts (K, 2, S/8, S/8) -> mask logits (K, 1, S, S)."""
        f2, f4, f8 = features
        p2, p4, p8 = self.prompt_encoder(clicks)
        m2, m4, m8 = self.memory_attention.priors(priors)
        x = self.memory_attention(f8, p8, m8, readouts)
        return self.mask_decoder(x, f4, torch.cat([p4, m4], 1), f2, torch.cat([p2, m2], 1))


def click_maps(size: int, points: np.ndarray | None, labels: np.ndarray | None, box: np.ndarray | None,
               sigma: float) -> torch.Tensor:
    """(3, size, size) float: positive and negative click heat maps (Gaussians of ``sigma`` px, max over clicks)
    and the box as a filled rectangle; coordinates are continuous pixels of a ``size`` frame."""
    maps = torch.zeros((3, size, size))
    centres = torch.arange(size, dtype=torch.float32) + 0.5
    if points is not None:
        for (x, y), label in zip(np.asarray(points, np.float32).reshape(-1, 2), np.asarray(labels).reshape(-1)):
            gx = torch.exp(-(centres - float(x)) ** 2 / (2 * sigma ** 2))
            gy = torch.exp(-(centres - float(y)) ** 2 / (2 * sigma ** 2))
            channel = 0 if int(label) == 1 else 1
            maps[channel] = torch.maximum(maps[channel], gy[:, None] * gx[None, :])
    if box is not None:
        x0, y0, x1, y1 = (float(v) for v in box)
        inside_x = (centres >= x0) & (centres <= x1)
        inside_y = (centres >= y0) & (centres <= y1)
        maps[2] = (inside_y[:, None] & inside_x[None, :]).float()
    return maps


# ----------------------------------------------------------------------------------------------------------------
# geometry of the frames for the spherical memory
# ----------------------------------------------------------------------------------------------------------------
@runtime_checkable
class FrameGeometry(Protocol):
    """Where a frame looks: enough for the spherical memory (camera frame, docs/CONVENTIONS.md)."""

    def rays(self, size: int) -> np.ndarray:
        """Rays (size, size, 3) through the pixel centres of the frame resampled to ``size`` x ``size``."""

    def locate(self, rays: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rays (..., 3) -> normalised frame coordinates u, v in [0, 1] (left/top edge 0) and a seen mask."""


@dataclass(frozen=True)
class ViewGeometry:
    """``FrameGeometry`` of a perspective view (any size; it only fixes the FoV and orientation)."""

    view: PerspectiveView

    def rays(self, size: int) -> np.ndarray:
        view = dataclasses.replace(self.view, width=size, height=round(size * self.view.height / self.view.width))
        return view.pixel_rays() @ view.rotation.T

    def locate(self, rays: np.ndarray):
        x, y, inside = self.view.project(rays @ self.view.rotation)
        return x / self.view.width, y / self.view.height, inside


def frame_geometry(view) -> FrameGeometry | None:
    """The geometry of a backend ``views`` entry: a ``PerspectiveView``, a ``FrameGeometry`` or None."""
    if isinstance(view, PerspectiveView):
        return ViewGeometry(view)
    return view if isinstance(view, FrameGeometry) else None


@dataclass
class CanvasMaps:
    """Sampling between one frame at the working size and the memory canvas: ``read`` (1, S, S, 2) grid into the
    padded canvas; ``cells`` (M,) flat canvas indices the frame sees and ``write`` (1, 1, M, 2) their positions
    in the frame (grid_sample coordinates)."""

    read: torch.Tensor
    cells: torch.Tensor
    write: torch.Tensor


def canvas_maps(geometry: FrameGeometry, size: int, canvas_height: int) -> CanvasMaps:
    """The ``CanvasMaps`` of a frame; the canvas is padded by one pixel (seam and poles wrapped, ``pad_erp``)."""
    height, width = canvas_height, 2 * canvas_height
    lon, lat = ray_to_lonlat(np.asarray(geometry.rays(size), dtype=np.float64))
    x, y = lonlat_to_erp_pixel(lon, lat, height, width)
    read = np.stack([2.0 * (x + 1.0) / (width + 2) - 1.0, 2.0 * (y + 1.0) / (height + 2) - 1.0], axis=-1)
    u, v, seen = geometry.locate(erp_rays(height, width, numpy=True).astype(np.float64))
    cells = np.flatnonzero(seen.ravel())
    write = np.stack([2.0 * u.ravel()[cells] - 1.0, 2.0 * v.ravel()[cells] - 1.0], axis=-1)
    return CanvasMaps(torch.from_numpy(read[None]).float(), torch.from_numpy(cells),
                      torch.from_numpy(write[None, None]).float())


# ----------------------------------------------------------------------------------------------------------------
# tracking through a video
# ----------------------------------------------------------------------------------------------------------------
class Tracker:
    """The memory of one video for K objects; ``step`` segments one frame and writes it into the memory.

    ``maps`` holds each frame's ``CanvasMaps`` (None entries, or None: no spherical memory).
    """

    def __init__(self, net: BuiltinSegmenterNet, num_objects: int, maps: Sequence[CanvasMaps | None] | None,
                 device: torch.device):
        config = net.config
        self.net, self.k = net, num_objects
        self.maps = maps
        self.size = config.image_size
        height = config.canvas_height
        # (K, 2, H, W): probability and seen, for the conditioning and the recent predictions
        self.canvas = {kind: torch.zeros((num_objects, 2, height, 2 * height), device=device)
                       for kind in ("cond", "recent")}
        self.memory = {"cond": deque(maxlen=config.cond_frames), "recent": deque(maxlen=config.recent_frames)}

    def _priors(self, frame: int) -> torch.Tensor:
        maps = self.maps[frame] if self.maps is not None else None
        if maps is None:
            return torch.zeros((self.k, 4, self.size, self.size), device=self.canvas["cond"].device)
        read = maps.read.to(self.canvas["cond"].device)
        grids = read.expand(self.k, -1, -1, -1)
        return torch.cat([F.grid_sample(pad_erp(self.canvas[kind], 1), grids, mode="bilinear",
                                        align_corners=False) for kind in ("cond", "recent")], dim=1)

    def _readouts(self, keys: torch.Tensor) -> torch.Tensor:
        query = keys[0].flatten(1)  # (D, Q)
        out = []
        for kind in ("cond", "recent"):
            entries = list(self.memory[kind])
            if entries:
                mem_keys = torch.cat([k for k, _ in entries], dim=1)
                mem_values = torch.cat([v for _, v in entries], dim=1)
            else:
                mem_keys, mem_values = query.new_zeros((query.shape[0], 0)), query.new_zeros((self.k, 0))
            out.append(self.net.memory_attention.readout(query, mem_keys, mem_values))
        side = keys.shape[-1]
        return torch.stack(out, dim=1).view(self.k, 2, side, side)

    def _write(self, frame: int, keys: torch.Tensor, probabilities: torch.Tensor, kind: str) -> None:
        """Remember a frame's detached probabilities (K, 1, S, S) in the ``kind`` memory."""
        probabilities = probabilities.detach()
        values = F.avg_pool2d(probabilities, self.size // keys.shape[-1]).flatten(1)  # (K, Q)
        self.memory[kind].append((keys[0].detach().flatten(1), values))
        maps = self.maps[frame] if self.maps is not None else None
        if maps is None:
            return
        sampled = F.grid_sample(probabilities, maps.write.to(probabilities.device).expand(self.k, -1, -1, -1),
                                mode="bilinear", align_corners=False)[:, 0, 0]  # (K, M)
        flat = self.canvas[kind].view(self.k, 2, -1)
        cells = maps.cells.to(flat.device)
        flat[:, 0, cells] = sampled
        flat[:, 1, cells] = 1.0

    def step(self, frame: int, features, clicks: torch.Tensor, memory: str,
             remember: torch.Tensor | None = None) -> torch.Tensor:
        """Segment ``frame`` from its features (f2, f4, f8, keys) and clicks (K, 3, S, S); write the prediction
        (or ``remember`` (K, 1, S, S), e.g. the truth when training with teacher forcing) into the ``memory``
        ("cond" or "recent"). Returns the logits (K, 1, S, S)."""
        f2, f4, f8, keys = features
        logits = self.net.decode((f2, f4, f8), clicks, self._priors(frame), self._readouts(keys))
        self._write(frame, keys, torch.sigmoid(logits) if remember is None else remember, memory)
        return logits


def propagation_order(num_frames: int, prompted: Sequence[int]) -> list[tuple[int, str]]:
    """(frame, memory) in processing order: the prompted frames into the conditioning memory, then every frame
    from 0 to N-1 into the recent memory (only these are outputs)."""
    return [(f, "cond") for f in sorted(set(prompted))] + [(f, "recent") for f in range(num_frames)]


# ----------------------------------------------------------------------------------------------------------------
# weights
# ----------------------------------------------------------------------------------------------------------------
def save_builtin_weights(net: BuiltinSegmenterNet, path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """The network's state dict as safetensors with its ``BuiltinConfig`` in the metadata."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().float().contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(path), metadata={**(metadata or {}), "builtin_config": net.config.to_json()})


def load_builtin_net(path: str | Path = DEFAULT_WEIGHTS) -> BuiltinSegmenterNet:
    """The network from a safetensors file written by ``save_builtin_weights``; errors name the problem."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"built-in SAP weights not found: {path}")
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
        state = {k: f.get_tensor(k) for k in f.keys()}
    if "builtin_config" not in metadata:
        raise ValueError(f"{path} has no builtin_config metadata: not a built-in SAP segmenter")
    net = BuiltinSegmenterNet(BuiltinConfig.from_json(metadata["builtin_config"]))
    net.load_state_dict(state, strict=True)
    return net.eval()


# ----------------------------------------------------------------------------------------------------------------
# the backend
# ----------------------------------------------------------------------------------------------------------------
class BuiltinBackend(SegmenterBackend):
    """``SegmenterBackend`` on a ``BuiltinSegmenterNet``. Frames of any square size are resized to the network's
    working size; probabilities come back at the frames' size. ``precision`` bf16 runs under autocast."""

    def __init__(self, net: BuiltinSegmenterNet, device: str = "cpu", precision: str = "fp32",
                 name: str = "builtin"):
        if precision == "fp16" and not str(device).startswith("cuda"):
            raise ValueError("fp16 needs a CUDA device; use fp32 or bf16 on the CPU")
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self._dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        self._name = name
        self._features: OrderedDict[bytes, tuple[torch.Tensor, ...]] = OrderedDict()
        self._maps: dict[object, CanvasMaps] = {}
        self._frames: list[tuple[torch.Tensor, ...]] | None = None
        self._frame_maps: list[CanvasMaps | None] | None = None
        self._frame_size: tuple[int, int] = (0, 0)
        self._prompts: dict[int, dict[int, tuple]] = {}

    def describe(self) -> str:
        return self._name

    def _autocast(self):
        if self._dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self._dtype)

    def _encode(self, frames: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
        """Features of each frame (uint8 (N, 3, h, w)), from the cache where the same pixels were seen before."""
        size = self.net.config.image_size
        keys = [hashlib.blake2b(f.numpy().tobytes(), digest_size=16).digest() for f in frames.cpu()]
        todo = [i for i, key in enumerate(keys) if key not in self._features]
        if todo:
            images = frames[todo].to(self.device, torch.float32) / 255.0
            if images.shape[-2:] != (size, size):
                images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True,
                                       align_corners=False)
            with torch.inference_mode(), self._autocast():
                encoded = self.net.encode_images(images)
            for j, i in enumerate(todo):
                self._features[keys[i]] = tuple(t[j:j + 1].float() for t in encoded)
        out = []
        for key in keys:
            self._features.move_to_end(key)
            out.append(self._features[key])
        while len(self._features) > max(FEATURE_CACHE_FRAMES, len(keys)):
            self._features.popitem(last=False)
        return out

    def _canvas_maps(self, view) -> CanvasMaps | None:
        geometry = frame_geometry(view)
        if geometry is None:
            return None
        if geometry not in self._maps:
            config = self.net.config
            self._maps[geometry] = canvas_maps(geometry, config.image_size, config.canvas_height)
        return self._maps[geometry]

    def init(self, frames: torch.Tensor, views: Sequence[PerspectiveView]) -> None:
        if frames.ndim != 4 or frames.shape[1] != 3 or frames.dtype != torch.uint8:
            raise ValueError(f"frames must be uint8 (N, 3, h, w); got {frames.dtype} {tuple(frames.shape)}")
        if len(views) != len(frames):
            raise ValueError(f"got {len(frames)} frames for {len(views)} views")
        self._frames = self._encode(frames)
        self._frame_maps = [self._canvas_maps(v) for v in views]
        self._frame_size = tuple(frames.shape[-2:])
        self._prompts = {}

    def add_prompt(self, frame: int, object_id: int, points: np.ndarray | None = None,
                   labels: np.ndarray | None = None, box: np.ndarray | None = None) -> None:
        if self._frames is None:
            raise RuntimeError("init the backend with frames before adding prompts")
        if points is None and box is None:
            raise ValueError("a prompt needs points or a box")
        if not 0 <= frame < len(self._frames):
            raise ValueError(f"frame {frame} is not in the video of {len(self._frames)} frames")
        if points is not None and labels is None:
            raise ValueError("points need labels (1 positive, 0 negative)")
        height, width = self._frame_size
        size = self.net.config.image_size
        scale = np.array([size / width, size / height])
        points = None if points is None else np.asarray(points, np.float64).reshape(-1, 2) * scale
        box = None if box is None else np.asarray(box, np.float64).reshape(2, 2) * scale
        labels = None if labels is None else np.asarray(labels).reshape(-1)
        self._prompts.setdefault(object_id, {})[frame] = (points, labels, None if box is None else box.reshape(4))

    def propagate(self) -> Iterator[tuple[int, list[int], torch.Tensor]]:
        if self._frames is None:
            raise RuntimeError("init the backend with frames before propagating")
        object_ids = list(self._prompts)
        if not object_ids:
            return
        config = self.net.config
        size = config.image_size
        prompted = sorted({f for per_object in self._prompts.values() for f in per_object})
        clicks = {}
        for frame in prompted:
            clicks[frame] = torch.stack([
                click_maps(size, *self._prompts[obj].get(frame, (None, None, None)), config.click_sigma)
                for obj in object_ids]).to(self.device)
        empty = torch.zeros((len(object_ids), 3, size, size), device=self.device)
        tracker = Tracker(self.net, len(object_ids), self._frame_maps, self.device)
        with torch.inference_mode(), self._autocast():
            for frame, memory in propagation_order(len(self._frames), prompted):
                logits = tracker.step(frame, self._frames[frame], clicks.get(frame, empty), memory)
                if memory == "recent":
                    probabilities = torch.sigmoid(logits.float())
                    if probabilities.shape[-2:] != self._frame_size:
                        probabilities = F.interpolate(probabilities, size=self._frame_size, mode="bilinear",
                                                      align_corners=False)
                    yield frame, object_ids, probabilities[:, 0]

    def reset(self) -> None:
        self._prompts = {}

    def close(self) -> None:
        self._features.clear()
        self._maps.clear()
        self._frames = None
        self._frame_maps = None
        self._prompts = {}


def create(spec: BackendSpec) -> BuiltinBackend:
    """Factory for ``BackendSpec(name="builtin", checkpoint=<.safetensors or empty for the shipped weights>)``;
    ``config`` must be empty or ``builtin`` (the network's size comes with the weights)."""
    if spec.config not in ("", "builtin"):
        raise ValueError(f"the builtin backend takes no model config (its size comes with the weights); got "
                         f"{spec.config!r}")
    path = spec.checkpoint or DEFAULT_WEIGHTS
    if not Path(path).is_file() and not spec.checkpoint:
        raise FileNotFoundError(f"the built-in SAP weights are missing ({DEFAULT_WEIGHTS}); reinstall the package "
                                "or pass a checkpoint")
    net = load_builtin_net(path)
    return BuiltinBackend(net, spec.device, spec.precision, name=f"builtin {net.config.image_size} px")
