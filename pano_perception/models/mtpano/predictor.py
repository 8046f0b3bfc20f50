"""MTPanoPredictor: ERP RGB in, semantics + radial depth + normals (our camera frame) out. No ROS here."""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from .config import MTPanoConfig, get_config
from .model import build_mtpano
from .postprocess import MTPanoPrediction, normalise_images, postprocess

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
BACKENDS = ("torch", "onnxruntime")


class MTPanoPredictor:
    """Runs MTPano on ERP images of any 2:1 size with the official pre- and post-processing.

    ``config``: a name of ``CONFIGS`` or an ``MTPanoConfig``; ``checkpoint``: official .pth or .safetensors (None
    gives random weights, for tests). ``device``: "cpu", "cuda", "cuda:1", … ``precision``: "fp32", or "bf16"/
    "fp16" via autocast (weights stay fp32; outputs are post-processed in fp32). fp16 needs CUDA: CPU autocast
    only supports bf16 well, so fp16 on CPU raises. ``backend="onnxruntime"`` runs an ONNX file from
    ``export.export_onnx`` (``onnx_path``) instead of the torch network, fp32 only.
    """

    def __init__(
        self,
        config: str | MTPanoConfig = "large",
        checkpoint: str | Path | None = None,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        *,
        seam: str = "official",
        backend: str = "torch",
        onnx_path: str | Path | None = None,
    ):
        self.config = get_config(config)
        self.device = _resolve_device(device)
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        if precision == "fp16" and self.device.type != "cuda":
            raise ValueError("fp16 runs on CUDA only; on CPU use precision='bf16' or 'fp32'")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.precision = precision
        self.backend = backend
        if backend == "onnxruntime":
            from .export import OnnxRuntimeMTPano

            if onnx_path is None:
                raise ValueError("backend='onnxruntime' needs onnx_path (see export.export_onnx)")
            if precision != "fp32":
                raise ValueError("the ONNX Runtime backend runs fp32 models only")
            self.network = OnnxRuntimeMTPano(onnx_path, device=self.device)
        else:
            if checkpoint is None:
                warnings.warn("MTPanoPredictor without a checkpoint: the network has random weights", stacklevel=2)
            self.network = build_mtpano(self.config, seam=seam, checkpoint=checkpoint).to(self.device).eval()

    @torch.inference_mode()
    def raw_outputs(self, images: np.ndarray | Sequence[np.ndarray], *, with_aux: bool = False) -> dict:
        """Network outputs for one [H, W, 3] uint8 ERP image or a batch ([B, H, W, 3] or a sequence).

        Float32 tensors on the device at model resolution, official frame, no masking: ``semseg`` logits
        [B, classes, h, w], ``depth`` [B, 1, h, w] metres, ``normals`` [B, 3, h, w] unnormalised; with ``with_aux``
        also ``aux_preds``/``ext_preds`` (torch backend only). For evaluation and distillation.
        """
        return self._forward(self.preprocess(images), with_aux=with_aux)

    def preprocess(self, images: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
        """Validated uint8 ERP images → [B, 3, h, w] normalised network input on the device."""
        return self._normalise(_stack_images(images))

    @torch.inference_mode()
    def predict_batch(self, images: np.ndarray | Sequence[np.ndarray], size: tuple[int, int] | None = None,
                      out: Sequence[Mapping[str, np.ndarray]] | None = None) -> list[MTPanoPrediction]:
        """Predictions for a batch of same-size ERP images ([B, H, W, 3] array or a sequence of [H, W, 3]), at
        the images' resolution or at ``size`` = (h, w) with w = 2·h (an ERP of the same sphere: any size works).
        ``out``: per image, destination arrays for products (see ``postprocess``)."""
        batch = _stack_images(images)
        if size is None:
            size = batch.shape[1:3]
        elif len(size) != 2 or size[0] < 2 or size[1] != 2 * size[0]:
            raise ValueError(f"output size must be (h, 2h) with h >= 2, got {size}")
        return postprocess(self._forward(self._normalise(batch)), tuple(size), out)

    def predict(self, rgb: np.ndarray, size: tuple[int, int] | None = None,
                out: Mapping[str, np.ndarray] | None = None) -> MTPanoPrediction:
        """Prediction for one ERP image (uint8 [H, W, 3] RGB with W = 2·H), at H×W or at ``size`` = (h, 2h).
        ``out``: destination arrays for any of ``semantic``, ``depth``, ``normals`` (e.g. message buffers)."""
        _validate_image(rgb)
        return self.predict_batch(rgb[None], size, None if out is None else [out])[0]

    def _normalise(self, batch: np.ndarray) -> torch.Tensor:
        # resized on the CPU's uint8 path; a GPU then receives the network-size image, not the camera's 4K frame
        return normalise_images(torch.from_numpy(batch), self.config.image_size).to(self.device)

    def _forward(self, pixel_values: torch.Tensor, *, with_aux: bool = False) -> dict:
        if self.backend == "onnxruntime":
            return self.network(pixel_values)
        dtype = PRECISIONS[self.precision]
        with torch.autocast(self.device.type, dtype=dtype) if dtype != torch.float32 else nullcontext():
            outputs = self.network(pixel_values, with_aux=with_aux)
        return _to_float32(outputs)


def _resolve_device(device: str | torch.device) -> torch.device:
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device} requested but CUDA is not available (torch {torch.__version__})")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu or cuda, got {device}")
    return device


def _validate_image(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray):
        raise ValueError(f"expected a numpy array, got {type(rgb).__name__}")
    if rgb.dtype != np.uint8:
        raise ValueError(f"expected uint8 RGB, got dtype {rgb.dtype}")
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an [H, W, 3] RGB image, got shape {rgb.shape}")
    height, width = rgb.shape[:2]
    if height < 2 or width != 2 * height:
        raise ValueError(f"expected an equirectangular image with width = 2 x height, got {width}x{height}")


def _stack_images(images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    if isinstance(images, np.ndarray):
        if images.ndim not in (3, 4):
            raise ValueError(f"expected [H, W, 3], [B, H, W, 3] or a sequence of [H, W, 3], got shape {images.shape}")
        images = list(images) if images.ndim == 4 else [images]
    if not images:
        raise ValueError("no images given")
    for rgb in images:
        _validate_image(rgb)
    if len({rgb.shape for rgb in images}) != 1:
        raise ValueError("all images of a batch must have the same size")
    return np.ascontiguousarray(np.stack(images))


def _to_float32(outputs: dict) -> dict:
    return {key: _to_float32(value) if isinstance(value, dict) else value.float() for key, value in outputs.items()}
