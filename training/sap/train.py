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

import argparse
import math
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
import yaml
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from pano_perception.models.sap.builtin_backend import (
    BuiltinConfig,
    BuiltinSegmenterNet,
    load_builtin_net,
    save_builtin_weights,
)

from ..csv_log import append_row, truncate_log
from ..mtpano.data import ResumableSampler
from ..mtpano.train import atomic_torch_save
from .config import SapExperimentConfig, load_sap_config
from .data import ScanClipDataset, collate_clips
from .models import BuiltinClipModel, Sam2ClipModel, freeze

CHECKPOINT = "checkpoint.pt"
LOG_FIELDS = ["step", "time", "clips_per_s", "loss", "grad_norm", "lr", "mask", "iou", "object"]
LOG = "log.csv"


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


class Trainer:
    """One training run of a ``SapExperimentConfig`` (single process or one DDP rank)."""

    def __init__(self, config: SapExperimentConfig, *, resume: bool = True, progress: bool = True):
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

        self.dataset = ScanClipDataset(config.data, seed=config.run.seed)
        torch.manual_seed(config.run.seed)  # identical initial weights on every rank
        self.model = build_clip_model(config, self.dataset.trajectory.views).to(self.device).train()
        self.network = trained_network(self.model)
        freeze(self.network, config.optim.frozen)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(trainable, lr=config.optim.lr, weight_decay=config.optim.weight_decay)
        self.step = 0
        if resume and (self.out_dir / CHECKPOINT).is_file():
            self._load_checkpoint(self.out_dir / CHECKPOINT)
        self.wrapped = (DistributedDataParallel(self.model, find_unused_parameters=True) if self.distributed
                        else self.model)

    def _device(self) -> torch.device:
        wanted = self.config.run.device
        if wanted == "auto":
            wanted = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(wanted)
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", device.index or 0)))
            torch.cuda.set_device(device)
        return device

    def _load_checkpoint(self, path: Path) -> None:
        state = torch.load(path, map_location="cpu", weights_only=False)
        if state["world_size"] != self.world_size or state["batch_size"] != self.config.optim.batch_size:
            raise ValueError(f"{path}: written with world size {state['world_size']} and batch {state['batch_size']}; "
                             "resuming needs the same to keep the data position")
        self.network.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = state["step"]
        torch.set_rng_state(state["rng"][self.rank])

    def save_checkpoint(self) -> None:
        rng = [torch.get_rng_state()]
        if self.distributed:
            gathered = [None] * self.world_size
            dist.all_gather_object(gathered, rng[0])
            rng = gathered
        if self.rank == 0:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            atomic_torch_save({"model": self.network.state_dict(), "optimizer": self.optimizer.state_dict(),
                               "step": self.step, "rng": rng, "world_size": self.world_size,
                               "batch_size": self.config.optim.batch_size, "config": self.config.to_dict()},
                              self.out_dir / CHECKPOINT)

    def _loader(self) -> DataLoader:
        sampler = ResumableSampler(len(self.dataset), self.config.optim.batch_size, seed=self.config.run.seed,
                                   rank=self.rank, world_size=self.world_size, start_step=self.step)
        workers = self.config.data.num_workers
        return DataLoader(self.dataset, batch_sampler=sampler, num_workers=workers, persistent_workers=workers > 0,
                          collate_fn=collate_clips, generator=torch.Generator().manual_seed(0))

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

    def _prepare_log(self) -> None:
        truncate_log(self.out_dir / LOG, self.step)

    def _log(self, row: dict) -> None:
        append_row(self.out_dir / LOG, row, LOG_FIELDS)

    def export(self) -> Path:
        """Write the trained weights into ``run.out_dir`` (see the module doc); returns the path."""
        meta = {"experiment": self.config.name, "steps": str(self.step)}
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if isinstance(self.model, BuiltinClipModel):
            path = self.out_dir / "model.safetensors"
            tmp = path.with_name(path.name + ".tmp")
            save_builtin_weights(self.network, tmp, meta)
        else:
            from pano_perception.models.sap.sam2_backend import save_sam2_checkpoint

            path = self.out_dir / "model.pt"
            tmp = path.with_name(path.name + ".tmp")
            save_sam2_checkpoint(self.network, tmp)
        os.replace(tmp, path)
        return path

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
        clips = config.optim.batch_size * self.world_size
        tick, since = time.time(), self.step
        for batch in self._loader():
            if self.step >= last:
                break
            stats = self.train_step(batch)
            bar.update()
            if self.rank == 0 and (self.step % config.run.log_every == 0 or self.step == last):
                elapsed = time.time() - tick
                self._log({"step": self.step, "time": round(time.time(), 1),
                           "clips_per_s": round(clips * (self.step - since) / max(elapsed, 1e-9), 4),
                           **{k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in stats.items()}})
                bar.set_postfix(loss=f"{stats['loss']:.4f}")
                tick, since = time.time(), self.step
            if self.step % config.run.checkpoint_every == 0 or self.step == config.optim.steps:
                self.save_checkpoint()
        bar.close()
        if self.step == config.optim.steps and self.rank == 0:
            self.export()
        if self.distributed:
            dist.barrier()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Train a SAP segmenter (builtin or sam2) on scan-video clips.")
    parser.add_argument("--config", required=True, help="experiment YAML (training/configs/sap_*.yaml)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a value")
    parser.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    args = parser.parse_args(argv)
    trainer = Trainer(load_sap_config(args.config, args.set), resume=not args.no_resume)
    trainer.train()
    if trainer.distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
