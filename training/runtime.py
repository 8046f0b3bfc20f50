"""What the MTPano and SAP trainers share: the process (alone, or one ``torchrun`` DDP rank: NCCL on GPUs, gloo on
CPU) and its device, atomic writes, checkpoints with every rank's RNG states, resuming, a data order that a resumed
run continues exactly, the loop with its CSV log and progress bar, and the command line.

Data order (``ResumableSampler``): sample ``g`` of the run (``g = step · world_size · batch + rank · batch + j``) is
item ``perm_e[g mod n]`` of the epoch ``e = g // n`` permutation (seeded by ``(seed, e)``); a dataset draws the
item's own randomness from ``(seed, g)``, so the data position is a function of the step alone."""
from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, Sampler

from .csv_log import append_row, truncate_log

CHECKPOINT = "checkpoint.pt"
LOG = "log.csv"


def atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    """``write(tmp)`` to a temporary file beside ``path``, then rename it to ``path`` (a crash never leaves a torn
    file); returns ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)
    return path


def _device(wanted: str) -> torch.device:
    if wanted == "auto":
        wanted = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(wanted)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", device.index or 0)))
        torch.cuda.set_device(device)
    return device


class ResumableSampler(Sampler):
    """Batches of ``(item index, sample id)`` for one rank from ``start_step`` on (endless; see the module doc)."""

    def __init__(self, num_items: int, batch_size: int, *, seed: int, rank: int = 0, world_size: int = 1,
                 start_step: int = 0):
        self.n, self.batch_size, self.seed = num_items, batch_size, seed
        self.rank, self.world_size, self.start_step = rank, world_size, start_step
        self._epoch, self._perm = -1, None

    def _item(self, sample: int) -> int:
        epoch, position = divmod(sample, self.n)
        if epoch != self._epoch:
            self._epoch, self._perm = epoch, np.random.default_rng([self.seed, epoch, 11]).permutation(self.n)
        return int(self._perm[position])

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        step = self.start_step
        while True:
            first = (step * self.world_size + self.rank) * self.batch_size
            yield [(self._item(g), g) for g in range(first, first + self.batch_size)]
            step += 1


class DistributedTrainer:
    """One training run (single process or one DDP rank) of an experiment config with ``name``, ``optim.steps``,
    ``optim.batch_size``, a ``run`` section and ``to_dict()``. A subclass builds its network and ``self.optimizer``,
    calls ``resume_from_checkpoint`` and defines ``trained_module`` (what is checkpointed), ``loader``, ``train_step``
    and ``export``. Log: ``rate_column`` (samples per second, rounded to ``rate_digits``), then ``train_step``'s
    statistics; ``log_fields`` fixes the columns (None: the first row's keys)."""

    rate_column: str
    rate_digits: int
    log_fields: tuple[str, ...] | None = None

    def __init__(self, config, progress: bool):
        self.config = config
        run = config.run
        self.distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        if self.distributed and not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() and run.device != "cpu" else "gloo")
        self.rank = dist.get_rank() if self.distributed else 0
        self.world_size = dist.get_world_size() if self.distributed else 1
        self.device = _device(run.device)
        if run.threads:
            torch.set_num_threads(run.threads)
        self.out_dir = Path(run.out_dir)
        self.progress = progress and self.rank == 0
        self.step = 0

    def resumable_loader(self, dataset: Dataset, **loader_options) -> DataLoader:
        """This rank's batches of ``dataset`` (addressed by ``(item index, sample id)``) from the current step on,
        with ``data.num_workers`` workers and any other DataLoader options."""
        sampler = ResumableSampler(len(dataset), self.config.optim.batch_size, seed=self.config.run.seed,
                                   rank=self.rank, world_size=self.world_size, start_step=self.step)
        workers = self.config.data.num_workers
        # its own generator: creating the iterator must not draw from the global RNG (that would shift a resume)
        return DataLoader(dataset, batch_sampler=sampler, num_workers=workers, persistent_workers=workers > 0,
                          generator=torch.Generator().manual_seed(0), **loader_options)

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` in ``DistributedDataParallel`` under DDP, else ``model`` itself."""
        return DistributedDataParallel(model, find_unused_parameters=True) if self.distributed else model

    def resume_from_checkpoint(self) -> bool:
        """Restore network, optimiser, step and this rank's RNG states from ``run.out_dir``'s checkpoint if there is
        one; returns whether there was."""
        path = self.out_dir / CHECKPOINT
        if not path.is_file():
            return False
        state = torch.load(path, map_location="cpu", weights_only=False)
        if state["world_size"] != self.world_size or state["batch_size"] != self.config.optim.batch_size:
            raise ValueError(f"{path}: written with world size {state['world_size']} and batch {state['batch_size']}; "
                             "resuming needs the same to keep the data position")
        self.trained_module().load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = state["step"]
        torch.set_rng_state(state["rng"][self.rank])
        if self.device.type == "cuda" and state.get("cuda_rng"):
            torch.cuda.set_rng_state(state["cuda_rng"][self.rank])
        return True

    def save_checkpoint(self) -> None:
        """Write the checkpoint (rank 0, atomically): network, optimiser, step, every rank's CPU and CUDA RNG states."""
        rng = [torch.get_rng_state()]
        cuda_rng = [torch.cuda.get_rng_state(self.device)] if self.device.type == "cuda" else []
        if self.distributed:
            gathered = [None] * self.world_size
            dist.all_gather_object(gathered, (rng[0], cuda_rng[0] if cuda_rng else None))
            rng = [g[0] for g in gathered]
            cuda_rng = [g[1] for g in gathered] if cuda_rng else []
        if self.rank == 0:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            state = {"model": self.trained_module().state_dict(), "optimizer": self.optimizer.state_dict(),
                     "step": self.step, "rng": rng, "cuda_rng": cuda_rng, "world_size": self.world_size,
                     "batch_size": self.config.optim.batch_size, "config": self.config.to_dict()}
            atomic_write(self.out_dir / CHECKPOINT, partial(torch.save, state))

    def train(self, stop_at: int | None = None) -> None:
        """Train to ``optim.steps`` and export the weights. ``stop_at`` ends the process after that step as a kill
        would (no extra checkpoint): for tests of resuming."""
        from tqdm import tqdm

        config, run = self.config, self.config.run
        last = min(config.optim.steps, stop_at) if stop_at is not None else config.optim.steps
        if self.rank == 0:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
            truncate_log(self.out_dir / LOG, self.step)
        bar = tqdm(total=last, initial=self.step, disable=not self.progress, mininterval=10, desc=config.name,
                   unit="step")
        items = config.optim.batch_size * self.world_size
        tick, since = time.time(), self.step
        for batch in self.loader():
            if self.step >= last:
                break
            stats = self.train_step(batch)
            bar.update()
            if self.rank == 0 and (self.step % run.log_every == 0 or self.step == last):
                rate = items * (self.step - since) / max(time.time() - tick, 1e-9)
                append_row(self.out_dir / LOG, {
                    "step": self.step, "time": round(time.time(), 1), self.rate_column: round(rate, self.rate_digits),
                    **{k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in stats.items()}}, self.log_fields)
                bar.set_postfix(loss=f"{stats['loss']:.4f}")
                tick, since = time.time(), self.step
            if self.step % run.checkpoint_every == 0 or self.step == config.optim.steps:
                self.save_checkpoint()
        bar.close()
        if self.step == config.optim.steps and self.rank == 0:
            self.export()
        if self.distributed:
            dist.barrier()


def train_cli(trainer: type[DistributedTrainer], load_config: Callable, description: str, config_help: str,
              argv=None) -> None:
    """A trainer's command line: ``--config`` YAML, ``--set section.key=value`` overrides, ``--no-resume``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", required=True, help=config_help)
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a value")
    parser.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    args = parser.parse_args(argv)
    run = trainer(load_config(args.config, args.set), resume=not args.no_resume)
    run.train()
    if run.distributed:
        dist.destroy_process_group()
