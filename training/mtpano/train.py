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

import argparse
import os
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.distributed as dist
import yaml
from safetensors.torch import save_file
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from pano_perception.models.mtpano import MTPano, build_mtpano, load_checkpoint

from ..csv_log import append_row, truncate_log
from .ablation import apply_ablation
from .aux_labels import image_aux_targets
from .config import ExperimentConfig, load_config
from .data import PseudoLabelDataset, ResumableSampler
from .losses import enet_class_weights, total_loss

CHECKPOINT = "checkpoint.pt"
LOG = "log.csv"
WEIGHTS = "model.safetensors"


def poly_lr(base_lr: float, step: int, total_steps: int, power: float) -> float:
    """``base_lr · (1 − step/total)^power`` (0 at the end)."""
    return base_lr * max(0.0, 1.0 - step / total_steps) ** power


def atomic_torch_save(obj, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename (a crash never leaves a torn file)."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def export_weights(model: MTPano, path: Path, metadata: dict[str, str] | None = None) -> None:
    """The network's state dict as safetensors (float32, contiguous), atomically."""
    state = {k: v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype).contiguous()
             for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def init_training_heads(model: MTPano, depth_bias: float | None) -> None:
    """From-scratch initialisation: depth heads start at ``depth_bias`` metres (the main head ends in a ReLU)."""
    if depth_bias is None:
        return
    with torch.no_grad():
        model.heads["depth"].head[4].bias.fill_(depth_bias)
        model.aux_heads["depth"].classifier.bias.fill_(depth_bias)


class Trainer:
    """One training run of an ``ExperimentConfig`` (single process or one DDP rank)."""

    def __init__(self, config: ExperimentConfig, *, resume: bool = True, progress: bool = True):
        self.config = config
        self.distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        if self.distributed and not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() and config.run.device != "cpu" else "gloo")
        self.rank = dist.get_rank() if self.distributed else 0
        self.world_size = dist.get_world_size() if self.distributed else 1
        self.device = self._device()
        if config.run.threads:
            torch.set_num_threads(config.run.threads)
        self.out_dir = Path(config.run.out_dir)
        self.progress = progress and self.rank == 0

        torch.manual_seed(config.run.seed)  # identical initial weights on every rank
        model = build_mtpano(config.model.config, seam=config.model.seam, checkpoint=config.model.checkpoint)
        if config.model.backbone_checkpoint:
            load_checkpoint(model.backbone, config.model.backbone_checkpoint)
        init_training_heads(model, config.model.init_depth_bias)
        apply_ablation(model, config.ablation)
        self.model = model.to(self.device).train()
        self.backbone_params = [p for n, p in self.model.named_parameters() if n.startswith("backbone.") and p.requires_grad]
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(trainable, lr=config.optim.lr, weight_decay=config.optim.weight_decay)
        self.step = 0
        if resume and (self.out_dir / CHECKPOINT).is_file():
            self._load_checkpoint(self.out_dir / CHECKPOINT)
        else:
            torch.manual_seed(config.run.seed * 1000 + self.rank + 1)  # dropout and DINOv3's train-time RoPE jitter
        self.network = (DistributedDataParallel(self.model, find_unused_parameters=True) if self.distributed
                        else self.model)
        self.dataset = PseudoLabelDataset(config.data.cache, config.data.crops_per_sample, seed=config.run.seed,
                                          yaw_augment=config.data.yaw_augment, flip_augment=config.data.flip_augment)
        self.class_weights = None
        if config.loss.semseg_class_weighting == "enet":
            counts = self.dataset.cache.class_counts(self.model.config.num_semseg_classes)
            self.class_weights = enet_class_weights(torch.from_numpy(counts)).to(self.device)

    def _device(self) -> torch.device:
        wanted = self.config.run.device
        if wanted == "auto":
            wanted = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(wanted)
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", device.index or 0)))
            torch.cuda.set_device(device)
        return device

    def _autocast(self):
        if self.device.type == "cuda" and self.config.run.precision == "bf16":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    def _load_checkpoint(self, path: Path) -> None:
        state = torch.load(path, map_location="cpu", weights_only=False)
        if state["world_size"] != self.world_size or state["batch_size"] != self.config.optim.batch_size:
            raise ValueError(f"{path}: written with world size {state['world_size']} and batch {state['batch_size']}; "
                             "resuming needs the same to keep the data position")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = state["step"]
        torch.set_rng_state(state["rng"][self.rank])
        if self.device.type == "cuda" and state.get("cuda_rng"):
            torch.cuda.set_rng_state(state["cuda_rng"][self.rank])

    def save_checkpoint(self) -> None:
        rng = [torch.get_rng_state()]
        cuda_rng = [torch.cuda.get_rng_state(self.device)] if self.device.type == "cuda" else []
        if self.distributed:
            gathered = [None] * self.world_size
            dist.all_gather_object(gathered, (rng[0], cuda_rng[0] if cuda_rng else None))
            rng = [g[0] for g in gathered]
            cuda_rng = [g[1] for g in gathered] if cuda_rng else []
        if self.rank == 0:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            atomic_torch_save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                               "step": self.step, "rng": rng, "cuda_rng": cuda_rng, "world_size": self.world_size,
                               "batch_size": self.config.optim.batch_size, "config": self.config.to_dict()},
                              self.out_dir / CHECKPOINT)

    def _loader(self) -> DataLoader:
        sampler = ResumableSampler(len(self.dataset), self.config.optim.batch_size, seed=self.config.run.seed,
                                   rank=self.rank, world_size=self.world_size, start_step=self.step)
        workers = self.config.data.num_workers
        # its own generator: creating the iterator must not draw from the global RNG (that would shift a resume)
        return DataLoader(self.dataset, batch_sampler=sampler, num_workers=workers, persistent_workers=workers > 0,
                          pin_memory=self.device.type == "cuda", generator=torch.Generator().manual_seed(0))

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

    def _prepare_log(self) -> None:
        truncate_log(self.out_dir / LOG, self.step)

    def _log(self, row: dict) -> None:
        append_row(self.out_dir / LOG, row)

    def train(self, stop_at: int | None = None) -> None:
        """Train to ``optim.steps`` and export the weights. ``stop_at`` ends the process after that step as a kill
        would (no extra checkpoint): for tests of resuming."""
        from tqdm import tqdm

        config = self.config
        last = min(config.optim.steps, stop_at) if stop_at is not None else config.optim.steps
        if self.rank == 0:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
            self._prepare_log()
        bar = tqdm(total=last, initial=self.step, disable=not self.progress, mininterval=10, desc=config.name,
                   unit="step")
        images = config.optim.batch_size * self.world_size
        tick = time.time()
        for batch in self._loader():
            if self.step >= last:
                break
            stats = self.train_step(batch)
            bar.update()
            if self.rank == 0 and (self.step % config.run.log_every == 0 or self.step == last):
                elapsed = time.time() - tick
                steps = config.run.log_every if self.step % config.run.log_every == 0 else self.step % config.run.log_every
                self._log({"step": self.step, "time": round(time.time(), 1),
                           "images_per_s": round(images * steps / max(elapsed, 1e-9), 3),
                           **{k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in stats.items()}})
                bar.set_postfix(loss=f"{stats['loss']:.4f}")
                tick = time.time()
            if self.step % config.run.checkpoint_every == 0 or self.step == config.optim.steps:
                self.save_checkpoint()
        bar.close()
        if self.step == config.optim.steps and self.rank == 0:
            export_weights(self.model, self.out_dir / WEIGHTS,
                           {"mtpano_config": config.model.config, "experiment": config.name, "steps": str(self.step)})
        if self.distributed:
            dist.barrier()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Train MTPano label-free on a pseudo-label cache.")
    parser.add_argument("--config", required=True, help="experiment YAML (training/configs/)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a value")
    parser.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    args = parser.parse_args(argv)
    config = load_config(args.config, args.set)
    trainer = Trainer(config, resume=not args.no_resume)
    trainer.train()
    if trainer.distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
