"""Mask losses of SAM2's training (focal 20, dice 1, IoU-prediction L1 1, object score 1), plus plain BCE.

Multimask outputs are scored as SAM2 does: each candidate gets the focal + dice (+ BCE) loss, the smallest counts,
and every candidate's predicted IoU is regressed to its actual IoU.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import LossConfig


def focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Sigmoid focal loss averaged over the last two (pixel) dimensions."""
    probabilities = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = probabilities * targets + (1 - probabilities) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.mean(dim=(-2, -1))


def dice_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1 - soft Dice over the last two dimensions (smoothed by 1: an empty prediction of an empty target is 0)."""
    probabilities = torch.sigmoid(logits)
    intersection = (probabilities * targets).sum(dim=(-2, -1))
    return 1 - (2 * intersection + 1) / (probabilities.sum(dim=(-2, -1)) + targets.sum(dim=(-2, -1)) + 1)


def actual_iou(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """IoU of the binarised prediction (logit > 0) with the binarised target; 1 when both are empty."""
    predicted, truth = logits > 0, targets > 0.5
    intersection = (predicted & truth).sum(dim=(-2, -1)).float()
    union = (predicted | truth).sum(dim=(-2, -1)).float()
    return torch.where(union > 0, intersection / union.clamp(min=1), torch.ones_like(union))


def output_loss(logits: torch.Tensor, targets: torch.Tensor, config: LossConfig,
                predicted_iou: torch.Tensor | None = None,
                object_logits: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Loss of one frame's output for K objects: ``logits`` (K, M, H, W) with M candidate masks, ``targets``
    (K, H, W) in [0, 1]; optional ``predicted_iou`` (K, M) and ``object_logits`` (K, 1). Returns the mean over
    objects and the terms (detached)."""
    targets = targets[:, None].expand_as(logits)
    per_mask = config.focal * focal_loss(logits, targets) + config.dice * dice_loss(logits, targets)
    if config.bce:
        per_mask = per_mask + config.bce * F.binary_cross_entropy_with_logits(
            logits, targets, reduction="none").mean(dim=(-2, -1))
    best, chosen = per_mask.min(dim=1)
    loss = best.mean()
    terms = {"mask": loss.detach()}
    if predicted_iou is not None and config.iou:
        iou_term = F.l1_loss(predicted_iou, actual_iou(logits.detach(), targets))
        loss = loss + config.iou * iou_term
        terms["iou"] = iou_term.detach()
    if object_logits is not None and config.object:
        present = (targets[:, 0] > 0.5).flatten(1).any(dim=1).float()[:, None]
        object_term = F.binary_cross_entropy_with_logits(object_logits, present)
        loss = loss + config.object * object_term
        terms["object"] = object_term.detach()
    return loss, terms
