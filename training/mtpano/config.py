"""Experiment configuration: one YAML file per experiment (training/configs/), dataclasses with defaults.

A file may name a ``base`` file (relative to itself) whose values it overrides section by section; command-line
``--set section.key=value`` overrides (YAML-parsed values) come last (training/config_common.py). Defaults are the
paper's (Sec. 4.1): Adam, lr 2e-5, weight decay 5e-6, poly 0.9, 100k iterations, batch 4 per GPU, 1000 warm-up
steps, loss weights 1.0 for the main tasks, 0.3 for deep supervision and 0.003 for the auxiliary tasks.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from ..config_common import load_experiment

MAIN_TASKS = ("semseg", "depth", "normals")


@dataclass
class ModelConfig:
    """``config``: an MTPano config name; ``checkpoint``: initial weights of the whole network (e.g. the release's,
    to fine-tune); ``backbone_checkpoint``: pretrained DINOv3 weights for the backbone alone (a transformers
    ``DINOv3ViTModel`` state dict, e.g. the ``model.safetensors`` of facebook/dinov3-vitl16-pretrain-lvd1689m),
    as the paper starts; ``checkpoint_config``: the config name of ``checkpoint`` when it is a coarser-patch
    network than ``config`` (its weights are mapped by patch_transfer.py); ``init_depth_bias``: metres put in the bias of the depth heads' last conv when training
    from scratch (the main depth head ends in a ReLU that could start dead); None keeps the initialisation."""

    config: str = "large"
    seam: str = "official"
    checkpoint: str | None = None
    backbone_checkpoint: str | None = None
    checkpoint_config: str | None = None
    init_depth_bias: float | None = None


@dataclass
class DataConfig:
    """``cache``: a pseudo-label cache (pseudo_labels.py); ``crops_per_sample``: patches supervising each panorama
    per step; ``yaw_augment``/``flip_augment``: random yaw turn and mirror (labels turned exactly)."""

    cache: str = ""
    crops_per_sample: int = 1
    yaw_augment: bool = True
    flip_augment: bool = True
    num_workers: int = 0


@dataclass
class OptimConfig:
    """Adam (L2 weight decay), poly schedule ``lr · (1 − step/steps)^power``; ``batch_size`` per process.
    ``warmup_steps``: progressive warm-up with the backbone frozen (Sec. 3.2.3). ``grad_clip``: max global norm."""

    lr: float = 2e-5
    weight_decay: float = 5e-6
    poly_power: float = 0.9
    steps: int = 100_000
    batch_size: int = 4
    warmup_steps: int = 1000
    grad_clip: float = 1.0


@dataclass
class LossConfig:
    """Weights of Eq. 3. ``deep_supervision`` weighs the aux heads' main-task predictions (scored on every
    ``deep_supervision_stride``-th pixel: 1 = all, as the release), ``aux`` the grad, sdf and point heads; ``geometry`` the gradient-matching regulariser on depth and normals; ``silog_lambda`` the
    scale-aware depth loss's variance weight (1 = scale-invariant, 0 = plain log-L2)."""

    semseg: float = 1.0
    depth: float = 1.0
    normals: float = 1.0
    deep_supervision: float = 0.3
    deep_supervision_stride: int = 1
    aux: float = 0.003
    geometry: float = 0.5
    silog_lambda: float = 0.85
    semseg_class_weighting: str = "none"


@dataclass
class AblationConfig:
    """Switches of Table 3: ``modulation`` (the refiners: ERP mixers and FiLM), ``truncation`` (the bridge's
    detach), ``aux_heads`` (grad/sdf/point supervision), ``tasks`` (a subset of the main tasks: single-task)."""

    modulation: bool = True
    truncation: bool = True
    aux_heads: bool = True
    tasks: tuple[str, ...] = MAIN_TASKS


@dataclass
class RunConfig:
    """``out_dir``: checkpoints, logs and the exported weights. ``precision``: fp32 or bf16 (autocast, CUDA only).
    ``threads``: torch CPU threads per process (1 on a shared machine: oversubscribed threads spin)."""

    out_dir: str = "runs/mtpano"
    seed: int = 0
    device: str = "auto"
    precision: str = "bf16"
    threads: int | None = None
    log_every: int = 10
    checkpoint_every: int = 500


@dataclass
class ExperimentConfig:
    name: str = "mtpano"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    ablation: AblationConfig = field(default_factory=AblationConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def load_config(path: Path | str | None = None, overrides: list[str] = ()) -> ExperimentConfig:
    """The experiment config of ``path`` (YAML; None: defaults) with ``overrides`` applied."""
    config = load_experiment(ExperimentConfig, path, overrides)
    bad = set(config.ablation.tasks) - set(MAIN_TASKS)
    if bad or not config.ablation.tasks:
        raise ValueError(f"ablation.tasks must be a non-empty subset of {MAIN_TASKS}; got {config.ablation.tasks}")
    if config.loss.semseg_class_weighting not in ("none", "enet"):
        raise ValueError(f"loss.semseg_class_weighting must be none or enet; got {config.loss.semseg_class_weighting!r}")
    if config.run.precision not in ("fp32", "bf16"):
        raise ValueError(f"run.precision must be fp32 or bf16; got {config.run.precision!r}")
    return config
