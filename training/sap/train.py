"""SAP training (Sec. 5.1): scan-video clips, one process or ``torchrun`` DDP (NCCL on GPUs, gloo on CPU).

    python -m training.sap.train --config training/configs/sap_builtin_cpu.yaml
    torchrun --nproc_per_node 8 -m training.sap.train --config training/configs/sap_sam2_large_paper.yaml

Run it from the repository root (the sam2 wheel installs an unrelated top-level ``training`` package).

Per step: ``optim.batch_size`` clips per process (data.py), the clip model's loss (models.py; ``model.backend``
builtin or sam2), backward, gradient clipping to ``optim.grad_clip``, AdamW with ``lr`` warmed up linearly for
``optim.warmup_steps`` and then decayed on a cosine to 0 at ``optim.steps``. Parameters under ``optim.frozen`` are
not trained (the paper freezes SAM2's image encoder and trains memory attention, memory encoder, mask decoder and
prompt encoder).

Outputs in ``run.out_dir``: ``checkpoint.pt`` (model, optimiser, step, RNG states; written atomically every
``run.checkpoint_every`` steps and at the end), ``log.csv``, ``config.yaml`` and, at the end, the weights: builtin
``model.safetensors`` (what ``build_segmenter("builtin", checkpoint=...)`` loads), sam2 ``model.pt`` in the
official layout (what the ``sam2`` backend loads). A resumed run (``--resume`` is the default when a checkpoint
exists) continues at the same step and data position; on CPU the result equals an uninterrupted run exactly.
"""
from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from pano_perception.models.sap.builtin_backend import (
    BuiltinConfig,
    BuiltinSegmenterNet,
    load_builtin_net,
    save_builtin_weights,
)

from ..runtime import (
    CHECKPOINT,  # noqa: F401 (re-exported with LOG: the run's file names)
    LOG,  # noqa: F401
    DistributedTrainer,
    atomic_write,
    train_cli,
)
from .config import SapExperimentConfig, load_sap_config
from .data import ScanClipDataset, collate_clips
from .models import BuiltinClipModel, Sam2ClipModel, freeze


def cosine_lr(base_lr: float, step: int, total_steps: int, warmup_steps: int) -> float:
    """Linear warm-up over ``warmup_steps``, then ``base_lr · (1 + cos(π · progress)) / 2`` (0 at the end)."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def build_clip_model(config: SapExperimentConfig, views) -> torch.nn.Module:
    """The clip model of ``config.model`` (initial weights from ``model.checkpoint`` when given)."""
    model = config.model
    if model.backend == "builtin":
        net = (load_builtin_net(model.checkpoint) if model.checkpoint
               else BuiltinSegmenterNet(BuiltinConfig(**model.builtin)))
        return BuiltinClipModel(net, views, config.loss)
    from pano_perception.models.sap.sam2_backend import build_sam2_predictor

    sam2 = build_sam2_predictor(model.config, model.checkpoint or None, "cpu", model.image_size)
    return Sam2ClipModel(sam2.train(), config.loss, config.optim.frozen)


def trained_network(clip_model: torch.nn.Module) -> torch.nn.Module:
    """The network inside a clip model (what is frozen, checkpointed and exported)."""
    return clip_model.net if isinstance(clip_model, BuiltinClipModel) else clip_model.sam2


class Trainer(DistributedTrainer):
    """One training run of a ``SapExperimentConfig`` (single process or one DDP rank)."""

    rate_column, rate_digits = "clips_per_s", 4
    log_fields = ("step", "time", "clips_per_s", "loss", "grad_norm", "lr", "mask", "iou", "object")

    def __init__(self, config: SapExperimentConfig, *, resume: bool = True, progress: bool = True):
        super().__init__(config, progress)
        self.dataset = ScanClipDataset(config.data, seed=config.run.seed)
        torch.manual_seed(config.run.seed)  # identical initial weights on every rank
        self.model = build_clip_model(config, self.dataset.trajectory.views).to(self.device).train()
        self.network = trained_network(self.model)
        freeze(self.network, config.optim.frozen)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(trainable, lr=config.optim.lr, weight_decay=config.optim.weight_decay)
        if resume:
            self.resume_from_checkpoint()
        self.wrapped = self.wrap(self.model)

    def trained_module(self) -> torch.nn.Module:
        return self.network

    def loader(self) -> DataLoader:
        return self.resumable_loader(self.dataset, collate_fn=collate_clips)

    def train_step(self, clips: list[dict]) -> dict[str, float]:
        optim = self.config.optim
        lr = cosine_lr(optim.lr, self.step, optim.steps, optim.warmup_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss, terms = self.wrapped(clips)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(
            [p for p in self.model.parameters() if p.grad is not None], optim.grad_clip)
        self.optimizer.step()
        self.step += 1
        return {"loss": float(loss.detach()), "grad_norm": float(grad_norm), "lr": lr, **terms}

    def export(self) -> Path:
        """Write the trained weights into ``run.out_dir`` (see the module doc); returns the path."""
        meta = {"experiment": self.config.name, "steps": str(self.step)}
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if isinstance(self.model, BuiltinClipModel):
            return atomic_write(self.out_dir / "model.safetensors",
                                lambda tmp: save_builtin_weights(self.network, tmp, meta))
        from pano_perception.models.sap.sam2_backend import save_sam2_checkpoint

        return atomic_write(self.out_dir / "model.pt", partial(save_sam2_checkpoint, self.network))


def main(argv=None) -> None:
    train_cli(Trainer, load_sap_config, "Train a SAP segmenter (builtin or sam2) on scan-video clips.",
              "experiment YAML (training/configs/sap_*.yaml)", argv)


if __name__ == "__main__":
    main()
