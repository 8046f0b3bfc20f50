"""Training: a few steps lower the loss, a resumed run equals an uninterrupted one bit for bit, DDP over 2 processes,
the ablation switches, the exported weights load into the predictor."""
import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch.utils.data import default_collate

from pano_perception.models.mtpano import MTPanoPredictor, build_mtpano
from training.mtpano.ablation import apply_ablation
from training.mtpano.config import AblationConfig, load_config
from training.mtpano.train import CHECKPOINT, LOG, WEIGHTS, Trainer, poly_lr

ROOT = Path(__file__).resolve().parents[2]


def _config(cache, out_dir, *extra):
    return load_config(None, [
        "model.config=micro-cpu", "model.init_depth_bias=2.0", f"data.cache={cache}", "data.crops_per_sample=2",
        "optim.lr=1.0e-3", "optim.batch_size=1", "optim.steps=4", "optim.warmup_steps=1", f"run.out_dir={out_dir}",
        "run.precision=fp32", "run.threads=1", "run.log_every=1", "run.checkpoint_every=2", *extra])


def test_poly_schedule():
    assert poly_lr(2e-5, 0, 100, 0.9) == 2e-5
    assert poly_lr(2e-5, 50, 100, 0.9) == pytest.approx(2e-5 * 0.5 ** 0.9)
    assert poly_lr(2e-5, 100, 100, 0.9) == 0.0


def test_a_few_steps_lower_the_loss(tiny_cache, tmp_path):
    trainer = Trainer(_config(tiny_cache, tmp_path, "optim.steps=1000", "optim.warmup_steps=0"), progress=False)
    batch = default_collate([trainer.dataset[(0, 0)]])
    losses = [trainer.train_step(batch)["loss"] for _ in range(8)]
    assert all(np.isfinite(losses))
    assert np.mean(losses[-2:]) < 0.8 * np.mean(losses[:2])


def test_warmup_freezes_the_backbone(tiny_cache, tmp_path):
    trainer = Trainer(_config(tiny_cache, tmp_path, "optim.warmup_steps=1"), progress=False)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train_step(default_collate([trainer.dataset[(0, 0)]]))
    moved = {n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])}
    assert moved and not any(n.startswith("backbone.") for n in moved)
    assert any(n.startswith("heads.") for n in moved)
    trainer.train_step(default_collate([trainer.dataset[(1, 1)]]))
    assert not torch.equal(trainer.model.backbone.embeddings.patch_embeddings.weight,
                           before["backbone.embeddings.patch_embeddings.weight"])


def _state(trainer):
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def _log_rows(path):
    with open(path) as f:
        return [{k: v for k, v in row.items() if k not in ("time", "images_per_s")} for row in csv.DictReader(f)]


def test_resume_equals_an_uninterrupted_run(tiny_cache, tmp_path):
    straight = Trainer(_config(tiny_cache, tmp_path / "a"), progress=False)
    straight.train()
    interrupted = Trainer(_config(tiny_cache, tmp_path / "b"), progress=False)
    interrupted.train(stop_at=3)  # killed after step 3: the last checkpoint is step 2, the log has step 3
    del interrupted
    resumed = Trainer(_config(tiny_cache, tmp_path / "b"), progress=False)
    assert resumed.step == 2
    resumed.train()
    a, b = _state(straight), _state(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    opt_a, opt_b = straight.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert all(torch.equal(opt_a[i][k], opt_b[i][k]) for i in opt_a for k in opt_a[i])
    assert _log_rows(tmp_path / "a" / LOG) == _log_rows(tmp_path / "b" / LOG)  # rows past the checkpoint dropped
    predictor = MTPanoPredictor("micro-cpu", checkpoint=tmp_path / "b" / WEIGHTS)
    prediction = predictor.predict(np.zeros((64, 128, 3), np.uint8))
    assert prediction.depth.shape == (64, 128)


def test_torchrun_ddp_on_cpu(tiny_cache, tmp_path):
    """Two gloo processes through torchrun: the real multi-process entry point."""
    config = tmp_path / "ddp.yaml"
    config.write_text(yaml.safe_dump({
        "name": "ddp", "model": {"config": "micro-cpu", "init_depth_bias": 2.0},
        "data": {"cache": str(tiny_cache), "crops_per_sample": 1},
        "optim": {"lr": 1.0e-3, "steps": 2, "batch_size": 1, "warmup_steps": 0},
        "run": {"out_dir": str(tmp_path / "run"), "device": "cpu", "precision": "fp32", "threads": 1,
                "log_every": 1, "checkpoint_every": 2}}))
    env = {k: v for k, v in os.environ.items() if k != "_ROS_WHEELS_BOOTSTRAP_COMPLETE"}
    env["TMPDIR"] = str(tmp_path)  # torchrun leaves a torchelastic_* folder there
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
         "training.mtpano.train", "--config", str(config)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    state = torch.load(tmp_path / "run" / CHECKPOINT, weights_only=False)
    assert state["world_size"] == 2 and state["step"] == 2 and len(state["rng"]) == 2
    assert len(_log_rows(tmp_path / "run" / LOG)) == 2
    assert (tmp_path / "run" / WEIGHTS).is_file()


def _grads(model, loss):
    model.zero_grad(set_to_none=True)
    loss(model(torch.randn(1, 3, 128, 256), with_aux=True)).backward()
    return {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


def test_ablation_switches():
    torch.manual_seed(0)
    model = build_mtpano("micro-cpu")
    with torch.no_grad():  # leave the zero-initialised identity so that every path carries gradient
        for parameter in model.parameters():
            parameter.add_(0.02 * torch.randn_like(parameter))

    def variant_loss(outputs):
        return outputs["normals"].sum() + outputs["ext_preds"]["point"].sum()

    assert not any(n.startswith("bfe_variant.kv_squeeze.depth") for n in _grads(model, variant_loss))
    apply_ablation(model, AblationConfig(truncation=False))
    assert any(n.startswith("bfe_variant.kv_squeeze.depth") for n in _grads(model, variant_loss))

    apply_ablation(model, AblationConfig(modulation=False))
    assert not any(p.requires_grad for p in model.feature_grouping.parameters())
    x = torch.randn(1, 96, 8, 16)
    inv, var = model.feature_grouping[0](x, model.RayDir, model.PE)
    assert torch.equal(inv, x) and torch.equal(var, x)
