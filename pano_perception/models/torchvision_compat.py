"""Let transformers import a torchvision whose compiled ops cannot load (PyPI's CUDA torchvision beside CPU torch).

transformers imports ``torchvision`` when it is installed; torchvision then registers fake kernels for
``torchvision::nms``/``qnms``, which fails with "operator torchvision::nms does not exist" when its C++ extension
did not load. Defining the two operator schemas first makes the import succeed (compiled ops still raise if
called; MTPano uses none). Where the extension loads (a matching CUDA install), this does nothing.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

import torch

_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_fragment: torch.library.Library | None = None


def make_torchvision_importable() -> None:
    """Define torchvision's nms/qnms schemas if (and only if) torchvision's own extension cannot load."""
    global _fragment
    if _fragment is not None or "torchvision" in sys.modules:
        return
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return
    package_dir = Path(spec.origin).parent
    extensions = [package_dir / f"_C{suffix}" for suffix in importlib.machinery.EXTENSION_SUFFIXES]
    for extension in extensions:
        if extension.is_file():
            try:
                torch.ops.load_library(str(extension))
                return
            except OSError:
                break
    _fragment = torch.library.Library("torchvision", "FRAGMENT")
    for schema in _SCHEMAS:
        _fragment.define(schema)
