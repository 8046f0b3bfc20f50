"""Label-free MTPano training (Sec. 3.2.3, 4.1): one process, or ``torchrun`` DDP (NCCL on GPUs, gloo on CPU).

    python -m training.mtpano.train --config training/configs/micro_cpu_synthetic.yaml
    torchrun --nproc_per_node 8 -m training.mtpano.train --config training/configs/large_paper.yaml

Run it from the repository root (``training`` is a top-level folder; the sam2 wheel installs an unrelated
``training`` package that a different working directory would pick up).

Per step: a batch of panoramas with K pseudo-label patches each (data.py), the image-derived auxiliary targets
computed on the device (aux_labels.py), the forward pass (bf16 autocast on CUDA when ``run.precision = bf16``),
Eq. 3 (losses.py), gradient clipping, Adam with L2 weight decay and the poly schedule. During the first
``optim.warmup_steps`` steps the backbone is frozen (its gradients are dropped, so Adam neither moves it nor
accumulates state: the progressive warm-up). Ablation switches: ablation.py.

Outputs in ``run.out_dir``: ``checkpoint.pt`` (model, optimiser, step, RNG state; written atomically every
``run.checkpoint_every`` steps and at the end), ``log.csv`` (per ``run.log_every`` steps), ``config.yaml`` and,
at the end, ``model.safetensors`` (the network's state dict: what ``build_mtpano(..., checkpoint=)`` and
``MTPanoPredictor`` load). Resuming (``--resume``, default when a checkpoint exists) continues at the same step and
data position; on CPU the result is bit-identical to an uninterrupted run.
"""
from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch.utils.data import DataLoader

from pano_perception.models.mtpano import MTPano, build_mtpano, load_checkpoint

from ..runtime import (
    CHECKPOINT,  # noqa: F401 (re-exported with LOG: the run's file names)
    LOG,  # noqa: F401
    DistributedTrainer,
    atomic_write,
    train_cli,
)
from .ablation import apply_ablation
from .aux_labels import image_aux_targets
from .config import ExperimentConfig, load_config
from .data import PseudoLabelDataset
from .losses import enet_class_weights, total_loss
from .patch_transfer import load_transferred

WEIGHTS = "model.safetensors"


def poly_lr(base_lr: float, step: int, total_steps: int, power: float) -> float:
    """``base_lr · (1 − step/total)^power`` (0 at the end)."""
    return base_lr * max(0.0, 1.0 - step / total_steps) ** power


def export_weights(model: MTPano, path: Path, metadata: dict[str, str] | None = None) -> None:
    """The network's state dict as safetensors (float32, contiguous), atomically."""
    state = {k: v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype).contiguous()
             for k, v in model.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata=metadata))


def init_training_heads(model: MTPano, depth_bias: float | None) -> None:
    """From-scratch initialisation: depth heads start at ``depth_bias`` metres (the main head ends in a ReLU)."""
    if depth_bias is None:
        return
    with torch.no_grad():
        model.heads["depth"].head[4].bias.fill_(depth_bias)
        model.aux_heads["depth"].classifier.bias.fill_(depth_bias)


class Trainer(DistributedTrainer):
    """One training run of an ``ExperimentConfig`` (single process or one DDP rank)."""

    rate_column, rate_digits = "images_per_s", 3

    def __init__(self, config: ExperimentConfig, *, resume: bool = True, progress: bool = True):
        super().__init__(config, progress)
        torch.manual_seed(config.run.seed)  # identical initial weights on every rank
        transfer = config.model.checkpoint_config not in (None, config.model.config)
        model = build_mtpano(config.model.config, seam=config.model.seam,
                             checkpoint=None if transfer else config.model.checkpoint)
        if transfer:
            load_transferred(model, config.model.checkpoint, config.model.checkpoint_config)
        if config.model.backbone_checkpoint:
            load_checkpoint(model.backbone, config.model.backbone_checkpoint)
        init_training_heads(model, config.model.init_depth_bias)
        apply_ablation(model, config.ablation)
        self.model = model.to(self.device).train()
        self.backbone_params = [p for n, p in self.model.named_parameters() if n.startswith("backbone.") and p.requires_grad]
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(trainable, lr=config.optim.lr, weight_decay=config.optim.weight_decay)
        if not (resume and self.resume_from_checkpoint()):
            torch.manual_seed(config.run.seed * 1000 + self.rank + 1)  # dropout and DINOv3's train-time RoPE jitter
        self.network = self.wrap(self.model)
        self.dataset = PseudoLabelDataset(config.data.cache, config.data.crops_per_sample, seed=config.run.seed,
                                          yaw_augment=config.data.yaw_augment, flip_augment=config.data.flip_augment)
        self.class_weights = None
        if config.loss.semseg_class_weighting == "enet":
            counts = self.dataset.cache.class_counts(self.model.config.num_semseg_classes)
            self.class_weights = enet_class_weights(torch.from_numpy(counts)).to(self.device)

    def _autocast(self):
        if self.device.type == "cuda" and self.config.run.precision == "bf16":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    def trained_module(self) -> MTPano:
        return self.model

    def loader(self) -> DataLoader:
        return self.resumable_loader(self.dataset, pin_memory=self.device.type == "cuda")

    def train_step(self, batch: dict) -> dict[str, float]:
        """One optimisation step on a collated batch of data.py items; returns the logged statistics."""
        config = self.config
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        batch.update(image_aux_targets(batch["rgb"]))
        lr = poly_lr(config.optim.lr, self.step, config.optim.steps, config.optim.poly_power)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with self._autocast():
            outputs = self.network(batch["image"], with_aux=True)
        loss, terms = total_loss(outputs, batch, config.loss, config.ablation.tasks, config.ablation.aux_heads,
                                 self.class_weights)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.step < config.optim.warmup_steps:
            for p in self.backbone_params:
                p.grad = None
        grad_norm = torch.nn.utils.clip_grad_norm_(
            [p for p in self.model.parameters() if p.grad is not None], config.optim.grad_clip)
        self.optimizer.step()
        self.step += 1
        return {"loss": float(loss.detach()), "grad_norm": float(grad_norm), "lr": lr, **terms}

    def export(self) -> None:
        """Write ``model.safetensors`` into ``run.out_dir``."""
        config = self.config
        export_weights(self.model, self.out_dir / WEIGHTS,
                       {"mtpano_config": config.model.config, "experiment": config.name, "steps": str(self.step)})


def main(argv=None) -> None:
    train_cli(Trainer, load_config, "Train MTPano label-free on a pseudo-label cache.",
              "experiment YAML (training/configs/)", argv)


if __name__ == "__main__":
    main()
