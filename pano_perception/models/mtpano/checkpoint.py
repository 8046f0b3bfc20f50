"""Safe checkpoint loading for MTPano: .safetensors or a tensors-only pickle (``torch.load(weights_only=True)``)."""
from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

#: Keys under which training scripts nest the weights (``{"model": ...}``, ``{"state_dict": ...}``).
NESTING_KEYS = ("model", "state_dict")
DATA_PARALLEL_PREFIX = "module."


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read safely or has no state dict."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint whose keys or shapes do not match the network; ``.report`` lists every difference."""

    def __init__(self, report: LoadReport):
        super().__init__(f"checkpoint does not match the network:\n{report}")
        self.report = report


@dataclass
class LoadReport:
    """Differences between a checkpoint and a network's ``state_dict()``."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    loaded: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def __str__(self) -> str:
        summary = (f"loaded {self.loaded} tensors; {len(self.missing)} missing, {len(self.unexpected)} unexpected, "
                   f"{len(self.mismatched)} with a different shape")
        lines = [summary]
        lines += [f"  missing: {key}" for key in self.missing]
        lines += [f"  unexpected: {key}" for key in self.unexpected]
        lines += [f"  shape mismatch: {key}: checkpoint {list(got)} vs network {list(want)}"
                  for key, got, want in self.mismatched]
        return "\n".join(lines)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a flat state dict (nesting and ``module.`` prefixes removed).

    Pickles are read with ``weights_only=True``: a file holding arbitrary Python objects is refused, never run.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"MTPano checkpoint not found: {path}. Download the official weights yourself (CC BY-NC 4.0, see "
            "docs/MTPANO.md) and pass the path of the .pth or .safetensors file."
        )
    if path.suffix == ".safetensors":
        return normalise_state_dict(load_file(path))
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"refusing to unpickle {path}: it holds objects other than tensors and plain containers, and "
            "loading those would run arbitrary code. Re-save only its state dict (in an environment you trust) "
            f"with torch.save or safetensors. Details: {error}"
        ) from error
    return normalise_state_dict(content)


def normalise_state_dict(content: Mapping) -> dict[str, torch.Tensor]:
    """Unwrap ``{"model": ...}`` / ``{"state_dict": ...}`` nesting and strip the DataParallel ``module.`` prefix."""
    while isinstance(content, Mapping) and not _is_state_dict(content):
        nested = [key for key in NESTING_KEYS if isinstance(content.get(key), Mapping)]
        if not nested:
            raise CheckpointError(
                f"no state dict found: top-level keys {sorted(map(str, content))[:20]} hold non-tensors and "
                f"none of {NESTING_KEYS} is a dict"
            )
        content = content[nested[0]]
    if not isinstance(content, Mapping):
        raise CheckpointError(f"a checkpoint must hold a dict of tensors, found {type(content).__name__}")
    return {_strip_prefix(key): tensor for key, tensor in content.items()}


def _is_state_dict(content: Mapping) -> bool:
    return bool(content) and all(isinstance(value, torch.Tensor) for value in content.values())


def _strip_prefix(key: str) -> str:
    return key.removeprefix(DATA_PARALLEL_PREFIX)


def compare_state_dicts(network: Mapping[str, torch.Tensor], checkpoint: Mapping[str, torch.Tensor]) -> LoadReport:
    """Keys missing from / unexpected in ``checkpoint`` and shape mismatches, relative to ``network``."""
    report = LoadReport(
        missing=[key for key in network if key not in checkpoint],
        unexpected=[key for key in checkpoint if key not in network],
    )
    for key, tensor in network.items():
        if key in checkpoint and tuple(checkpoint[key].shape) != tuple(tensor.shape):
            report.mismatched.append((key, tuple(checkpoint[key].shape), tuple(tensor.shape)))
    return report


def load_checkpoint(
    model: nn.Module, checkpoint: str | Path | Mapping[str, torch.Tensor], *, strict: bool = True
) -> LoadReport:
    """Load a checkpoint file or state dict into ``model``.

    ``strict=True`` (default) raises ``CheckpointMismatchError`` on any missing, unexpected or mis-shaped key and
    leaves the model untouched. ``strict=False`` loads the tensors that match and returns the report.
    """
    state = normalise_state_dict(checkpoint) if isinstance(checkpoint, Mapping) else read_state_dict(checkpoint)
    report = compare_state_dicts(model.state_dict(), state)
    if strict and not report.ok:
        raise CheckpointMismatchError(report)
    skipped = {key for key, _, _ in report.mismatched} | set(report.unexpected)
    loadable = {key: tensor for key, tensor in state.items() if key not in skipped}
    model.load_state_dict(loadable, strict=False)
    report.loaded = len(loadable)
    return report
