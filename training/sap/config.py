"""SAP experiment configuration: one YAML file per experiment (training/configs/sap_*.yaml), dataclasses with
defaults. YAML ``base`` files and ``--set section.key=value`` overrides work as for MTPano (training/config_common.py).

Defaults are the paper's (SAP Sec. 5.1): SAM2 with the image encoder frozen, AdamW lr 2e-4 with a cosine
schedule, weight decay 0.1, gradient clipping at 0.1; scan views of 90 degrees with 50 % overlap traversed column
first; training windows of N frames cut at a random start from the trajectory repeated twice.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from ..config_common import load_experiment

BACKENDS = ("builtin", "sam2")


@dataclass
class ModelConfig:
    """``backend``: ``builtin`` (pano_perception's own network) or ``sam2`` (the official package).
    ``config``: sam2 size (tiny, small, base+, large), unused for builtin. ``checkpoint``: initial weights (sam2: the
    official .pt, as the paper fine-tunes; builtin: a .safetensors to continue from; empty: random init).
    ``builtin``: the built-in network's ``BuiltinConfig`` fields (its ``image_size`` is the working size).
    ``image_size``: sam2's input size (1024 for the official weights)."""

    backend: str = "sam2"
    config: str = "large"
    checkpoint: str = ""
    builtin: dict = field(default_factory=dict)
    image_size: int = 1024


@dataclass
class DataConfig:
    """Panoramas: ``panoramas`` sources, each ``synthetic:PATH`` (a pano_perception.synthetic dataset) or
    ``folder:PATH`` (the external layout, training/sap/data.py). Scan: ``fov_deg``, ``overlap``, ``pitch_deg``
    (None: derived), ``frame_size`` (rendered frame side, px). ``clip_length``: frames per training window (None:
    the whole trajectory, N). ``objects_per_clip``: objects tracked together; ``min_object_area``: smallest
    object as a fraction of the ERP's pixels; ``thing_weight``: sampling weight of objects vs stuff (walls, floor).
    Prompts: ``box_probability``; ``points_probabilities``: probabilities of 1, 2, 3, ... clicks; ``prompt_frames``:
    ``visible`` (the sampled clicks also on every frame where they are visible, as at inference) or ``sampled``
    (only the frame where the object is most visible). ``loss_frames``: frames per clip that get gradients and loss
    (prompted frames always; 0 = all). ``perspective``: folders of perspective image/video data
    (training/sap/data.py) mixed in with probability ``perspective_ratio``. Augmentation: ``yaw_augment``,
    ``flip_augment``, ``color_jitter`` (relative brightness/contrast amplitude). ``teacher_forcing``: probability
    that a clip's memory holds the ground truth instead of the model's predictions (builtin only; 0 = never)."""

    panoramas: tuple[str, ...] = ()
    fov_deg: float = 90.0
    overlap: float = 0.5
    pitch_deg: tuple[float, ...] | None = None
    frame_size: int = 1024
    clip_length: int | None = None
    objects_per_clip: int = 3
    min_object_area: float = 2e-4
    thing_weight: float = 3.0
    box_probability: float = 0.15
    points_probabilities: tuple[float, ...] = (0.5, 0.25, 0.25)
    prompt_frames: str = "visible"
    loss_frames: int = 0
    perspective: tuple[str, ...] = ()
    perspective_ratio: float = 0.0
    yaw_augment: bool = True
    flip_augment: bool = True
    color_jitter: float = 0.1
    teacher_forcing: float = 0.0
    num_workers: int = 0


@dataclass
class OptimConfig:
    """AdamW (decoupled weight decay), ``warmup_steps`` linear warm-up then cosine decay to 0 at ``steps``;
    ``grad_clip``: max global norm; ``batch_size``: clips per process and step; ``frozen``: top-level modules
    whose parameters are not trained (the paper freezes SAM2's ``image_encoder``)."""

    lr: float = 2e-4
    weight_decay: float = 0.1
    warmup_steps: int = 0
    steps: int = 10_000
    batch_size: int = 1
    grad_clip: float = 0.1
    frozen: tuple[str, ...] = ("image_encoder",)


@dataclass
class LossConfig:
    """Mask loss weights (SAM2's): ``focal`` (alpha 0.25, gamma 2), ``dice``, ``iou`` (L1 of sam2's predicted IoU),
    ``object`` (BCE of sam2's object-present score); ``bce``: plain binary cross-entropy (quicker from scratch)."""

    focal: float = 20.0
    dice: float = 1.0
    iou: float = 1.0
    object: float = 1.0
    bce: float = 0.0


@dataclass
class RunConfig:
    """``out_dir``: checkpoints, logs, exported weights. ``threads``: torch CPU threads per process."""

    out_dir: str = "runs/sap"
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    log_every: int = 10
    checkpoint_every: int = 100


@dataclass
class SapExperimentConfig:
    name: str = "sap"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def load_sap_config(path: Path | str | None = None, overrides: list[str] = ()) -> SapExperimentConfig:
    """The experiment of ``path`` (YAML; None: defaults) with ``overrides`` (``section.key=value``) applied."""
    config = load_experiment(SapExperimentConfig, path, overrides)
    if config.data.pitch_deg is not None:
        config.data.pitch_deg = tuple(config.data.pitch_deg)
    if config.model.backend not in BACKENDS:
        raise ValueError(f"model.backend must be one of {BACKENDS}; got {config.model.backend!r}")
    if config.data.prompt_frames not in ("visible", "sampled"):
        raise ValueError(f"data.prompt_frames must be visible or sampled; got {config.data.prompt_frames!r}")
    if not config.data.panoramas and not config.data.perspective:
        raise ValueError("data.panoramas (or data.perspective) must name at least one source")
    if not 0.0 <= config.data.perspective_ratio <= 1.0:
        raise ValueError(f"data.perspective_ratio must be in [0, 1]; got {config.data.perspective_ratio}")
    return config
