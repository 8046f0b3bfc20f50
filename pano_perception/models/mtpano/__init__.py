"""MTPano: multi-task panoramic perception (semantics, radial depth, normals) on a DINOv3 PD-BridgeNet.

``build_mtpano`` makes the network (state-dict compatible with the official release), ``MTPanoPredictor`` runs
it on ERP images in our conventions. See docs/MTPANO.md.
"""
from ..torchvision_compat import make_torchvision_importable

make_torchvision_importable()  # before transformers' modelling code imports torchvision

from .checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    LoadReport,
    load_checkpoint,
    read_state_dict,
)
from .config import CONFIGS, MTPanoConfig, get_config
from .model import MTPano, build_mtpano
from .predictor import MTPanoPrediction, MTPanoPredictor

__all__ = [
    "CONFIGS",
    "CheckpointError",
    "CheckpointMismatchError",
    "LoadReport",
    "MTPano",
    "MTPanoConfig",
    "MTPanoPrediction",
    "MTPanoPredictor",
    "build_mtpano",
    "get_config",
    "load_checkpoint",
    "read_state_dict",
]
