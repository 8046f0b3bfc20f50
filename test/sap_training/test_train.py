"""SAP training: schedule, freezing, a few steps lower the loss, a resumed run equals an uninterrupted one bit for bit,
DDP over 2 gloo processes, the exported weights load into the backends; the sam2 path with its encoder frozen."""
import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pano_perception.models.sap import BackendSpec, create_backend
from training.sap.config import load_sap_config
from training.sap.models import freeze
from training.sap.train import CHECKPOINT, LOG, Trainer, cosine_lr

ROOT = Path(__file__).resolve().parents[2]
TINY_NET = {"image_size": 32, "widths": [8, 8, 16], "key_dim": 8, "canvas_height": 48}


def _config(panoramas, out_dir, *extra):
    return load_sap_config(None, [
        "model.backend=builtin", f"model.builtin={TINY_NET}", f"data.panoramas=[synthetic:{panoramas}]",
        "data.frame_size=32", "data.objects_per_clip=2", "data.loss_frames=4", "data.min_object_area=2.0e-3",
        "data.teacher_forcing=0.5", "optim.lr=3.0e-3", "optim.frozen=[]", "optim.steps=4", "optim.warmup_steps=1",
        "loss.bce=1.0", f"run.out_dir={out_dir}", "run.device=cpu", "run.threads=1", "run.log_every=1",
        "run.checkpoint_every=2", *extra])


def test_cosine_schedule_with_warmup():
    assert cosine_lr(1.0, 0, 100, 10) == pytest.approx(0.1)
    assert cosine_lr(1.0, 9, 100, 10) == pytest.approx(1.0)
    assert cosine_lr(1.0, 10, 100, 10) == pytest.approx(1.0)
    assert cosine_lr(1.0, 55, 100, 10) == pytest.approx(0.5)
    assert cosine_lr(1.0, 100, 100, 10) == pytest.approx(0.0)


def test_freeze_names_top_level_parts():
    model = torch.nn.Sequential()
    model.add_module("image_encoder", torch.nn.Linear(2, 2))
    model.add_module("mask_decoder", torch.nn.Linear(2, 2))
    assert freeze(model, ["image_encoder"]) == ["mask_decoder.weight", "mask_decoder.bias"]
    assert not model.image_encoder.weight.requires_grad
    with pytest.raises(ValueError, match="cannot freeze"):
        freeze(model, ["memory_attention"])


def test_a_few_steps_lower_the_loss(tiny_panoramas, tmp_path):
    trainer = Trainer(_config(tiny_panoramas, tmp_path, "optim.steps=1000", "optim.warmup_steps=0"), progress=False)
    batch = [trainer.dataset[(0, 3)]]
    losses = [trainer.train_step(batch)["loss"] for _ in range(10)]
    assert all(np.isfinite(losses))
    assert np.mean(losses[-2:]) < 0.8 * np.mean(losses[:2])


def _log_rows(path):
    with open(path) as f:
        return [{k: v for k, v in row.items() if k not in ("time", "clips_per_s")} for row in csv.DictReader(f)]


def test_resume_equals_an_uninterrupted_run_and_the_weights_load(tiny_panoramas, tmp_path):
    straight = Trainer(_config(tiny_panoramas, tmp_path / "a"), progress=False)
    straight.train()
    interrupted = Trainer(_config(tiny_panoramas, tmp_path / "b"), progress=False)
    interrupted.train(stop_at=3)  # killed after step 3: the last checkpoint is step 2, the log has step 3
    del interrupted
    resumed = Trainer(_config(tiny_panoramas, tmp_path / "b"), progress=False)
    assert resumed.step == 2
    resumed.train()
    a, b = straight.network.state_dict(), resumed.network.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    opt_a, opt_b = straight.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert all(torch.equal(opt_a[i][k], opt_b[i][k]) for i in opt_a for k in opt_a[i])
    assert _log_rows(tmp_path / "a" / LOG) == _log_rows(tmp_path / "b" / LOG)  # rows past the checkpoint dropped
    backend = create_backend(BackendSpec("builtin", checkpoint=str(tmp_path / "b" / "model.safetensors")))
    assert backend.describe() == "builtin 32 px"


def test_torchrun_ddp_on_cpu(tiny_panoramas, tmp_path):
    """Two gloo processes through torchrun: the real multi-process entry point."""
    config = tmp_path / "ddp.yaml"
    config.write_text(yaml.safe_dump({
        "name": "ddp", "model": {"backend": "builtin", "builtin": TINY_NET},
        "data": {"panoramas": [f"synthetic:{tiny_panoramas}"], "frame_size": 32, "objects_per_clip": 1,
                 "loss_frames": 2, "min_object_area": 2.0e-3},
        "optim": {"lr": 1.0e-3, "steps": 2, "batch_size": 1, "frozen": []},
        "run": {"out_dir": str(tmp_path / "run"), "device": "cpu", "threads": 1, "log_every": 1,
                "checkpoint_every": 2}}))
    env = {k: v for k, v in os.environ.items() if k != "_ROS_WHEELS_BOOTSTRAP_COMPLETE"}
    env["TMPDIR"] = str(tmp_path)  # torchrun leaves a torchelastic_* folder there
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
         "training.sap.train", "--config", str(config)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    state = torch.load(tmp_path / "run" / CHECKPOINT, weights_only=False)
    assert state["world_size"] == 2 and state["step"] == 2 and len(state["rng"]) == 2
    assert (tmp_path / "run" / "model.safetensors").is_file()


def test_sam2_fine_tuning_keeps_the_image_encoder_and_exports_official_weights(tiny_panoramas, tmp_path):
    """The paper's recipe on sam2.1 tiny (random weights, 64 px, the 8-view scan): one step moves memory
    attention, memory encoder, mask decoder and prompt encoder, never the image encoder."""
    config = load_sap_config(None, [
        "model.backend=sam2", "model.config=tiny", "model.image_size=64",
        f"data.panoramas=[synthetic:{tiny_panoramas}]", "data.frame_size=64", "data.overlap=0.0",
        "data.objects_per_clip=1", "data.min_object_area=2.0e-3",
        "optim.steps=1", f"run.out_dir={tmp_path}", "run.device=cpu", "run.threads=1"])
    assert config.optim.frozen == ("image_encoder",) and config.optim.lr == 2e-4 and config.optim.grad_clip == 0.1
    trainer = Trainer(config, progress=False)
    before = {k: v.clone() for k, v in trainer.network.state_dict().items()}
    stats = trainer.train_step([trainer.dataset[(0, 1)]])
    assert np.isfinite(stats["loss"]) and {"mask", "iou", "object"} <= set(stats)
    after = trainer.network.state_dict()
    moved = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert {"memory_attention", "memory_encoder", "sam_mask_decoder", "sam_prompt_encoder"} <= moved
    assert "image_encoder" not in moved
    from pano_perception.models.sap.sam2_backend import build_sam2_predictor

    path = trainer.export()
    assert path.name == "model.pt"
    build_sam2_predictor("tiny", str(path), "cpu", 64)  # loads strictly


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[2] / "training" / "configs")
                                        .glob("sap_*.yaml")), ids=lambda p: p.name)
def test_sap_experiment_configs_load(path):
    from training.sap.config import load_sap_config

    config = load_sap_config(path)
    assert config.name
