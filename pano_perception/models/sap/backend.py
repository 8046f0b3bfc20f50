"""The promptable video-segmenter interface that SAP drives, and the registry of its implementations.

A backend sees the scan as a short video: ``init`` with the frames (one per view, in video order), prompts per
object on some frames, ``propagate`` through the whole video, ``reset`` to start over on the same frames.
Backends are created by name from a ``BackendSpec``; ``register_backend`` adds one (the project's own trained
backend registers as ``builtin``). Factories are named as ``"module:function"`` strings so that heavy imports
(sam2, hydra) happen only when that backend is created.
"""
from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ...geometry import PerspectiveView

PRECISIONS = ("fp32", "bf16", "fp16")


class SegmenterBackend(ABC):
    """A promptable video segmenter (SAM2-like). Pixels are continuous frame coordinates (centres at +0.5)."""

    @abstractmethod
    def init(self, frames: torch.Tensor, views: Sequence[PerspectiveView]) -> None:
        """Start a video: ``frames`` (N, 3, h, w) uint8 RGB, ``views`` the N views they show (video order)."""

    @abstractmethod
    def add_prompt(self, frame: int, object_id: int, points: np.ndarray | None = None,
                   labels: np.ndarray | None = None, box: np.ndarray | None = None) -> None:
        """Set ``object_id``'s prompts on ``frame``, replacing earlier ones there.

        ``points`` (K, 2) pixel (x, y) with ``labels`` (K,) 1 = positive, 0 = negative; ``box`` (4,) pixel
        ``(x0, y0, x1, y1)``. At least one of the two is given.
        """

    @abstractmethod
    def propagate(self) -> Iterator[tuple[int, list[int], torch.Tensor]]:
        """Track every prompted object through the video from frame 0.

        Yields ``(frame, object_ids, probabilities)`` once per frame, ``probabilities`` (K, h, w) in [0, 1]
        in the order of ``object_ids``.
        """

    @abstractmethod
    def reset(self) -> None:
        """Forget every object and prompt; keep the frames."""

    def close(self) -> None:
        """Free the video state and the model (the backend is unusable afterwards)."""

    def describe(self) -> str:
        """A short human-readable name for logs and diagnostics."""
        return type(self).__name__


@dataclass(frozen=True)
class BackendSpec:
    """What a factory needs: backend ``name``, model ``config`` and ``checkpoint`` (backend-specific meaning),
    torch ``device``, ``precision`` and the square ``image_size`` (pixels) of the frames it will receive."""

    name: str = "sam2"
    config: str = ""
    checkpoint: str = ""
    device: str = "cpu"
    precision: str = "fp32"
    image_size: int = 1024


@dataclass(frozen=True)
class _Entry:
    factory: str | Callable[[BackendSpec], SegmenterBackend]
    description: str


_REGISTRY: dict[str, _Entry] = {}


def register_backend(name: str, factory: str | Callable[[BackendSpec], SegmenterBackend],
                     description: str) -> None:
    """Make ``name`` creatable: ``factory`` is a callable or a ``"module:function"`` string imported on use."""
    _REGISTRY[name] = _Entry(factory, description)


def available_backends() -> dict[str, str]:
    """Registered backend names and their descriptions."""
    return {name: entry.description for name, entry in _REGISTRY.items()}


def create_backend(spec: BackendSpec) -> SegmenterBackend:
    """Build the backend ``spec.name``; ValueError for an unknown name or precision."""
    if spec.name not in _REGISTRY:
        raise ValueError(f"unknown SAP backend {spec.name!r}; available: {sorted(_REGISTRY)}")
    if spec.precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}; got {spec.precision!r}")
    factory = _REGISTRY[spec.name].factory
    if isinstance(factory, str):
        module, function = factory.split(":")
        factory = getattr(importlib.import_module(module), function)
    return factory(spec)


register_backend("sam2", f"{__package__}.sam2_backend:create",
                 "the official sam2 package's video predictor (sam2.1 tiny/small/base+/large and its .pt)")
register_backend("builtin", f"{__package__}.builtin_backend:create",
                 "pano_perception's own small promptable video segmenter with a spherical memory (weights ship "
                 "with the package; checkpoint = another .safetensors)")
register_backend("oracle", f"{__package__}.oracle:create",
                 "ground-truth masks from an instance-id ERP (checkpoint = its .npy/.png); tests and evaluation")
