"""The multi-task objective of Eq. 3 with patch-wise supervision.

Predictions are the network's outputs ``[B, C, H, W]`` (official frames); targets hold K re-projected patches per
panorama ``[B, K, (C,) H, W]`` with invalid pixels marked (semantic 255, NaN elsewhere). Every loss is computed per
patch over its valid pixels and averaged over the patches that have any, so each crop supervises only its footprint
and no stitching happens (Sec. 3.1):

* semantics: cross-entropy (optionally class-weighted, ``enet_class_weights``);
* depth: the scale-aware log loss ``sqrt(mean(g²) − λ·mean(g)²)``, ``g = log d̂ − log d``, per patch — λ < 1 keeps
  a ``1 − λ`` share of each patch's global-scale error, so the per-crop scale noise of a teacher is tolerated while
  the metric scale is still learnt (λ = 0.85);
* normals: the mean angle (radians) between the normalised prediction and the target;
* deep supervision: the same losses on the aux heads' predictions (bilinearly upsampled from the patch grid by
  the network), optionally on every ``deep_supervision_stride``-th pixel only (they are smooth: a CPU saving);
* auxiliary heads: L1 on ``(G_x, G_y)``, on ``log(1 + EDF)`` (whole image) and on the metric point map (metres, per
  patch);
* geometry regulariser: L1 between the finite differences (right and down neighbours, both valid) of prediction and
  target, for log-depth and for unit normals, at strides 1, 2 and 4 — our reading of the "geometry regularization"
  the paper borrows from SPGen (Zhang et al. 2025a), which it does not spell out.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from pano_perception.labels import IGNORE_ID

from .config import LossConfig

MIN_DEPTH = 1e-2  # metres: predictions are clamped here before the log
GEOMETRY_STRIDES = (1, 2, 4)


def _patch_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean over the valid pixels of each patch, then over the patches with any: values/valid [B, K, H, W]."""
    valid = valid.to(values.dtype)
    count = valid.sum((-2, -1))
    per_patch = (values * valid).sum((-2, -1)) / count.clamp(min=1)
    has = count > 0
    return per_patch[has].mean() if has.any() else values.sum() * 0


def semantic_loss(logits: torch.Tensor, target: torch.Tensor, class_weights: torch.Tensor | None = None
                  ) -> torch.Tensor:
    """Cross-entropy of logits [B, C, H, W] against patches [B, K, H, W] (255 ignored); with ``class_weights``
    [C] each patch's loss is the weighted mean over its pixels."""
    logits = logits.float()
    valid = target != IGNORE_ID
    safe = torch.where(valid, target, 0)
    nll = torch.logsumexp(logits, dim=1, keepdim=True) - logits.gather(1, safe)
    if class_weights is None:
        return _patch_mean(nll, valid)
    weight = class_weights.to(nll)[safe] * valid
    total = weight.sum((-2, -1))
    has = total > 0
    per_patch = (nll * weight).sum((-2, -1)) / total.clamp(min=1e-12)
    return per_patch[has].mean() if has.any() else nll.sum() * 0


def enet_class_weights(counts: torch.Tensor, c: float = 1.02) -> torch.Tensor:
    """ENet class weights ``1 / ln(c + p)`` from pixel counts per class (p = class frequency)."""
    frequency = counts.double() / counts.sum().clamp(min=1)
    return (1.0 / torch.log(c + frequency)).float()


def depth_loss(pred: torch.Tensor, target: torch.Tensor, silog_lambda: float) -> torch.Tensor:
    """Scale-aware log loss of depth [B, 1, H, W] (metres) against patches [B, K, H, W] (NaN invalid)."""
    valid = torch.isfinite(target) & (target > 0)
    g = torch.log(pred.float().clamp(min=MIN_DEPTH)) - torch.log(torch.where(valid, target, 1.0))
    g = torch.where(valid, g, 0.0)
    count = valid.sum((-2, -1))
    has = count > 0
    if not has.any():
        return pred.sum() * 0
    mean = g.sum((-2, -1)) / count.clamp(min=1)
    mean_sq = (g * g).sum((-2, -1)) / count.clamp(min=1)
    variance = (mean_sq - silog_lambda * mean * mean).clamp(min=1e-8)
    return torch.sqrt(variance[has]).mean()


def normal_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean angle (radians) between normals [B, 3, H, W] and patches [B, K, 3, H, W] (NaN invalid)."""
    valid = torch.isfinite(target).all(2)
    unit = F.normalize(pred.float(), dim=1, eps=1e-6)[:, None]
    cos = (unit * torch.where(valid[:, :, None], target, 0.0)).sum(2)
    angle = torch.acos(cos.clamp(-1 + 1e-6, 1 - 1e-6))
    return _patch_mean(angle, valid)


def point_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 (metres, mean over xyz) of a point map [B, 3, H, W] against patches [B, K, 3, H, W] (NaN invalid)."""
    valid = torch.isfinite(target).all(2)
    error = (pred.float()[:, None] - torch.where(valid[:, :, None], target, 0.0)).abs().mean(2)
    return _patch_mean(error, valid)


def _differences(x: torch.Tensor, valid: torch.Tensor, stride: int):
    """Right/down differences of x [..., C, H, W] at ``stride`` and where both ends are valid [..., H, W]."""
    x, valid = x[..., ::stride, ::stride], valid[..., ::stride, ::stride]
    return ((x[..., :, 1:] - x[..., :, :-1], valid[..., :, 1:] & valid[..., :, :-1]),
            (x[..., 1:, :] - x[..., :-1, :], valid[..., 1:, :] & valid[..., :-1, :]))


def geometry_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Gradient matching of pred [B, 1, C, H, W] vs patches [B, K, C, H, W] where ``valid`` [B, K, H, W]."""
    terms = []
    for stride in GEOMETRY_STRIDES:
        for (dp, _), (dt, ok) in zip(_differences(pred, valid, stride), _differences(target, valid, stride)):
            terms.append(_patch_mean((dp - dt).abs().mean(2), ok))
    return torch.stack(terms).mean()


def depth_geometry_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    valid = torch.isfinite(target) & (target > 0)
    log_pred = torch.log(pred.float().clamp(min=MIN_DEPTH))[:, None]
    log_target = torch.log(torch.where(valid, target, 1.0))[:, :, None]
    return geometry_loss(log_pred, log_target, valid)


def normal_geometry_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    valid = torch.isfinite(target).all(2)
    unit = F.normalize(pred.float(), dim=1, eps=1e-6)[:, None]
    return geometry_loss(unit, torch.where(valid[:, :, None], target, 0.0), valid)


def main_task_loss(task: str, pred: torch.Tensor, batch: dict, config: LossConfig,
                   class_weights: torch.Tensor | None = None) -> torch.Tensor:
    if task == "semseg":
        return semantic_loss(pred, batch["semantic"], class_weights)
    if task == "depth":
        return depth_loss(pred, batch["depth"], config.silog_lambda)
    return normal_loss(pred, batch["normals"])


def total_loss(outputs: dict, batch: dict, config: LossConfig, tasks: tuple[str, ...], aux_heads: bool,
               class_weights: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Eq. 3 for the network ``outputs`` and a batch (data.py plus ``grad``/``sdf`` targets); returns the total
    and each term's unweighted value (for logging). ``tasks``: the supervised main tasks; ``aux_heads``: whether
    the grad/sdf/point heads are supervised; ``class_weights``: optional [classes] cross-entropy weights."""
    weights = {"semseg": config.semseg, "depth": config.depth, "normals": config.normals}
    terms: dict[str, torch.Tensor] = {}
    total = outputs["depth"].new_zeros(())
    for task in tasks:
        terms[task] = main_task_loss(task, outputs[task], batch, config, class_weights)
        total = total + weights[task] * terms[task]
        if config.deep_supervision and "aux_preds" in outputs:
            stride = config.deep_supervision_stride
            every = {k: batch[k][..., ::stride, ::stride] for k in ("semantic", "depth", "normals")}
            terms[f"deep_{task}"] = main_task_loss(task, outputs["aux_preds"][task][..., ::stride, ::stride],
                                                   every, config, class_weights)
            total = total + config.deep_supervision * weights[task] * terms[f"deep_{task}"]
    if config.geometry:
        if "depth" in tasks:
            terms["geo_depth"] = depth_geometry_loss(outputs["depth"], batch["depth"])
            total = total + config.geometry * terms["geo_depth"]
        if "normals" in tasks:
            terms["geo_normals"] = normal_geometry_loss(outputs["normals"], batch["normals"])
            total = total + config.geometry * terms["geo_normals"]
    if aux_heads and config.aux and "ext_preds" in outputs:
        ext = outputs["ext_preds"]
        terms["grad"] = (ext["grad"].float() - batch["grad"]).abs().mean()
        terms["sdf"] = (ext["sdf"].float() - batch["sdf"]).abs().mean()
        terms["point"] = point_loss(ext["point"], batch["points"])
        total = total + config.aux * (terms["grad"] + terms["sdf"] + terms["point"])
    return total, {name: float(value.detach()) for name, value in terms.items()}
