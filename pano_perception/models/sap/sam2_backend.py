"""SAP backend on the official ``sam2`` package's video predictor, with frames handed over from memory.

Configs: the sam2.1 Hiera models ``tiny``, ``small``, ``base+`` (alias ``base_plus``) and ``large``, with the
official ``.pt`` checkpoints (``{"model": state_dict}``; sam2.1_hiera_tiny.pt, ...). The frames are the scan's
views; SAM2 works at ``image_size`` (1024 for the official weights; smaller sizes are for tests and quick CPU
runs). ``init_state`` only reads JPEG folders or MP4 files, so ``load_video_frames`` is wrapped once: a
``_FramesInMemory`` "path" returns the prepared tensor; every other path goes to the original function.
"""
from __future__ import annotations

import contextlib
import gc
import importlib.util
import pickle
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...geometry import PerspectiveView
from ..torchvision_compat import make_torchvision_importable
from .backend import BackendSpec, SegmenterBackend

CONFIGS = {
    "tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "small": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "base+": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "base_plus": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "large": "configs/sam2.1/sam2.1_hiera_l.yaml",
}
OFFICIAL_FILES = {"tiny": "sam2.1_hiera_tiny.pt", "small": "sam2.1_hiera_small.pt",
                  "base+": "sam2.1_hiera_base_plus.pt", "base_plus": "sam2.1_hiera_base_plus.pt",
                  "large": "sam2.1_hiera_large.pt"}
#: (Hiera blocks, embedding width) -> config name, to name the model a mismatched checkpoint belongs to.
_SIGNATURES = {(12, 96): "tiny", (16, 96): "small", (24, 112): "base+", (48, 144): "large"}
_IMAGE_MEAN = (0.485, 0.456, 0.406)
_IMAGE_STD = (0.229, 0.224, 0.225)


class Sam2CheckpointError(RuntimeError):
    """A SAM2 checkpoint that cannot be read or does not fit the chosen config."""


def _has_sam2_extension() -> bool:
    return importlib.util.find_spec("sam2._C") is not None


def build_sam2_predictor(config: str, checkpoint: str | None, device: str = "cpu", image_size: int = 1024):
    """The sam2 video predictor for ``config`` with official weights from ``checkpoint`` (None: random weights).

    Post-processing as in ``sam2.build_sam`` (dynamic multimask, binarised memory masks); small-hole filling
    only where sam2's compiled extension exists (it is CUDA-only).
    """
    if config not in CONFIGS:
        raise ValueError(f"unknown sam2 config {config!r}; choose one of {sorted(CONFIGS)}")
    if image_size % 32 != 0 or image_size < 64:
        raise ValueError(f"sam2 image size must be a multiple of 32 and at least 64; got {image_size}")
    make_torchvision_importable()
    from sam2.build_sam import build_sam2_video_predictor

    overrides = [
        "++model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=true",
        "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta=0.05",
        "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.98",
        "++model.binarize_mask_from_pts_for_mem_enc=true",
        f"++model.fill_hole_area={8 if _has_sam2_extension() else 0}",
    ]
    if image_size != 1024:
        overrides.append(f"++model.image_size={image_size}")
    model = build_sam2_video_predictor(CONFIGS[config], None, device="cpu", hydra_overrides_extra=overrides,
                                       apply_postprocessing=False)
    if checkpoint:
        load_sam2_checkpoint(model, checkpoint, config)
    model.memory_attention.register_forward_pre_hook(_memory_in_weight_dtype, with_kwargs=True)
    return model.to(device).eval()


def _memory_in_weight_dtype(module, args, kwargs):
    """The predictor stores mask memories in bfloat16 and relies on CUDA autocast to mix them with float
    weights; without autocast (CPU, fp32) a memory made only of those features fails in the first linear layer
    (facebookresearch/sam2 issues #308, #577). Cast the memory to the weights' dtype when autocast is off."""
    memory = kwargs.get("memory")
    if memory is None or torch.is_autocast_enabled(memory.device.type):
        return None
    dtype = next(module.parameters()).dtype
    return args, {**kwargs, "memory": memory.to(dtype), "memory_pos": kwargs["memory_pos"].to(dtype)}


def save_sam2_checkpoint(model: torch.nn.Module, path: str | Path) -> None:
    """Write ``model``'s weights in the official layout (``{"model": state_dict}``)."""
    torch.save({"model": model.state_dict()}, path)


def _signature(state: dict) -> str | None:
    blocks = {int(k.split(".")[3]) for k in state if k.startswith("image_encoder.trunk.blocks.")}
    embed = state.get("image_encoder.trunk.patch_embed.proj.weight")
    if not blocks or embed is None:
        return None
    return _SIGNATURES.get((max(blocks) + 1, int(embed.shape[0])))


def load_sam2_checkpoint(model: torch.nn.Module, path: str | Path, config: str) -> None:
    """Load an official SAM2 ``.pt`` into ``model`` (built from ``config``); Sam2CheckpointError on a mismatch."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SAM2 checkpoint not found: {path} (the official file for {config!r} is "
                                f"{OFFICIAL_FILES.get(config, '?')}, from the facebookresearch/sam2 release)")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise Sam2CheckpointError(f"refusing to unpickle {path}: it holds more than tensors ({error})") from error
    except Exception as error:  # torch.load raises many kinds on a file that is no checkpoint at all
        raise Sam2CheckpointError(f"{path} is not a torch checkpoint: {error!r}") from error
    state = content.get("model", content) if isinstance(content, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise Sam2CheckpointError(f"{path} holds no state dict (expected {{'model': state_dict}})")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or mismatched:
        guess = _signature(state)
        hint = f"; it looks like a sam2.1 {guess!r} checkpoint" if guess and guess != config else ""
        examples = "; ".join(
            part for part in (
                f"{len(missing)} missing (e.g. {missing[0]})" if missing else "",
                f"{len(unexpected)} unexpected (e.g. {unexpected[0]})" if unexpected else "",
                f"{len(mismatched)} with another shape (e.g. {mismatched[0]}: {list(state[mismatched[0]].shape)} "
                f"vs {list(expected[mismatched[0]].shape)})" if mismatched else "",
            ) if part)
        raise Sam2CheckpointError(f"{path} does not fit the sam2.1 {config!r} model: {examples}{hint}")
    model.load_state_dict(state, strict=True)


class _FramesInMemory:
    """Stands in for a video path in ``init_state``: the prepared (N, 3, S, S) tensor and the frame size."""

    def __init__(self, images: torch.Tensor, height: int, width: int):
        self.images, self.height, self.width = images, height, width


_adapter_lock = threading.Lock()
_adapter_installed = False


def _install_frame_adapter() -> None:
    """Wrap ``sam2.sam2_video_predictor.load_video_frames`` once so it accepts ``_FramesInMemory``."""
    global _adapter_installed
    with _adapter_lock:
        if _adapter_installed:
            return
        import sam2.sam2_video_predictor as video_predictor

        original = video_predictor.load_video_frames

        def load_video_frames(video_path, *args, **kwargs):
            if isinstance(video_path, _FramesInMemory):
                return video_path.images, video_path.height, video_path.width
            return original(video_path, *args, **kwargs)

        video_predictor.load_video_frames = load_video_frames
        _adapter_installed = True


class Sam2Backend(SegmenterBackend):
    """The sam2 video predictor on the scan's frames. Points and boxes are continuous frame pixels."""

    def __init__(self, predictor, device: str = "cpu", precision: str = "fp32", name: str = "sam2"):
        if precision == "fp16" and not str(device).startswith("cuda"):
            raise ValueError("fp16 needs a CUDA device; use fp32 or bf16 on the CPU")
        _install_frame_adapter()
        self._predictor = predictor
        self._device = torch.device(device)
        self._dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        self._state = None
        self._frame_size: tuple[int, int] = (0, 0)
        self._name = name

    def describe(self) -> str:
        return self._name

    def _autocast(self):
        if self._dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self._device.type, dtype=self._dtype)

    def _prepare(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, h, w) -> SAM2 input (N, 3, S, S): [0, 1], resized to S when needed, mean/std normalised."""
        size = self._predictor.image_size
        images = frames.to(self._device, torch.float32) / 255.0
        if images.shape[-2:] != (size, size):
            images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        mean = torch.tensor(_IMAGE_MEAN, device=self._device)[:, None, None]
        std = torch.tensor(_IMAGE_STD, device=self._device)[:, None, None]
        return (images - mean) / std

    def init(self, frames: torch.Tensor, views: Sequence[PerspectiveView]) -> None:
        if frames.ndim != 4 or frames.shape[1] != 3 or frames.dtype != torch.uint8:
            raise ValueError(f"frames must be uint8 (N, 3, h, w); got {frames.dtype} {tuple(frames.shape)}")
        self._state = None
        height, width = frames.shape[-2:]
        video = _FramesInMemory(self._prepare(frames), height, width)
        with torch.inference_mode(), self._autocast():
            self._state = self._predictor.init_state(video)
        self._frame_size = (height, width)

    def _to_model_pixels(self, xy: np.ndarray) -> torch.Tensor:
        """Continuous frame pixels -> SAM's model-input coordinates (its prompt encoder adds half a pixel)."""
        height, width = self._frame_size
        size = self._predictor.image_size
        scale = np.array([size / width, size / height])
        return torch.as_tensor(np.asarray(xy, dtype=np.float64).reshape(-1, 2) * scale - 0.5, dtype=torch.float32)

    def add_prompt(self, frame: int, object_id: int, points: np.ndarray | None = None,
                   labels: np.ndarray | None = None, box: np.ndarray | None = None) -> None:
        if self._state is None:
            raise RuntimeError("init the backend with frames before adding prompts")
        if points is None and box is None:
            raise ValueError("a prompt needs points or a box")
        kwargs = {}
        if points is not None:
            kwargs["points"] = self._to_model_pixels(points)
            kwargs["labels"] = torch.as_tensor(np.asarray(labels), dtype=torch.int32)
        if box is not None:
            kwargs["box"] = self._to_model_pixels(np.asarray(box).reshape(2, 2)).reshape(4)
        with torch.inference_mode(), self._autocast():
            self._predictor.add_new_points_or_box(self._state, frame, object_id, clear_old_points=True,
                                                  normalize_coords=False, **kwargs)

    def propagate(self) -> Iterator[tuple[int, list[int], torch.Tensor]]:
        if self._state is None:
            raise RuntimeError("init the backend with frames before propagating")
        with torch.inference_mode(), self._autocast():
            for frame, object_ids, logits in self._predictor.propagate_in_video(self._state, start_frame_idx=0):
                yield frame, list(object_ids), torch.sigmoid(logits[:, 0].float())

    def reset(self) -> None:
        if self._state is not None:
            self._predictor.reset_state(self._state)

    def close(self) -> None:
        self._state = None
        self._predictor = None
        gc.collect()
        if self._device.type == "cuda":
            torch.cuda.empty_cache()


def create(spec: BackendSpec) -> Sam2Backend:
    """Factory for ``BackendSpec(name="sam2", config=<size, empty = tiny>, checkpoint=<official .pt>)``; a
    checkpoint is required (random weights are only for tests, through ``build_sam2_predictor``)."""
    config = spec.config or "tiny"
    if config not in CONFIGS:
        raise ValueError(f"unknown sam2 config {config!r}; choose one of {sorted(CONFIGS)}")
    if not spec.checkpoint:
        raise ValueError(f"the sam2 backend needs a checkpoint: download {OFFICIAL_FILES[config]} (sam2.1 "
                         f"{config}) from the facebookresearch/sam2 release and pass its path")
    predictor = build_sam2_predictor(config, spec.checkpoint, spec.device, spec.image_size)
    return Sam2Backend(predictor, spec.device, spec.precision, name=f"sam2.1 {config}")
