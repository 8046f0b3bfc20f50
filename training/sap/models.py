"""The trainable clip models: one forward = the loss of a batch of clips (what DDP wraps).

- ``BuiltinClipModel``: pano_perception's built-in network, tracked exactly as ``BuiltinBackend.propagate`` does
  (``Tracker``, ``propagation_order``); memories hold detached predictions (the model's own), or the truth in
  clips drawn for teacher forcing (``DataConfig.teacher_forcing``), which teaches the use of the memory early.
  Frames outside ``loss_frames`` run without gradients (a CPU-time saving; prompted frames always have them).
- ``Sam2ClipModel``: the official sam2 model trained the way SAM2's own training does (``_track_step`` on every
  frame with the memory bank in the graph, multimask outputs scored by their best candidate, IoU and object-score
  heads supervised), with SAP's frame order: the prompted frames first as conditioning frames, then the others.
  Objects are tracked one at a time.

Parameters whose top-level module is in ``OptimConfig.frozen`` are not trained (the paper: ``image_encoder``).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pano_perception.models.sap.builtin_backend import (
    BuiltinSegmenterNet,
    Tracker,
    canvas_maps,
    click_maps,
    frame_geometry,
    propagation_order,
)

from .config import LossConfig
from .losses import output_loss

_IMAGE_MEAN = (0.485, 0.456, 0.406)
_IMAGE_STD = (0.229, 0.224, 0.225)


def freeze(module: nn.Module, frozen: Sequence[str]) -> list[str]:
    """Turn off gradients of the parameters under the top-level modules (or parameters) named in ``frozen``;
    returns the names of the trainable parameters. Unknown names are an error."""
    top_level = {name.split(".")[0] for name, _ in module.named_parameters()}
    unknown = set(frozen) - top_level
    if unknown:
        raise ValueError(f"cannot freeze {sorted(unknown)}: the model's top-level parts are {sorted(top_level)}")
    trainable = []
    for name, parameter in module.named_parameters():
        parameter.requires_grad_(name.split(".")[0] not in frozen)
        if parameter.requires_grad:
            trainable.append(name)
    return trainable


def _resize_frames(frames: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (T, 3, s, s) -> float [0, 1] (T, 3, size, size)."""
    images = frames.float() / 255.0
    if images.shape[-1] != size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return images


def _resize_masks(masks: torch.Tensor, size: int) -> torch.Tensor:
    """bool (K, T, s, s) -> float (K, T, size, size): the covered fraction of each pixel."""
    masks = masks.float()
    if masks.shape[-1] != size:
        masks = F.interpolate(masks, size=(size, size), mode="area")
    return masks


def _zero_loss(module: nn.Module) -> torch.Tensor:
    """A zero that depends on every trainable parameter (a batch without objects still syncs under DDP)."""
    return sum(p.sum() for p in module.parameters() if p.requires_grad) * 0.0


def mean_clip_loss(model: nn.Module, clips: list[dict]) -> tuple[torch.Tensor, dict[str, float]]:
    """(mean of ``model._clip_loss`` over the clips that have masks, each loss term averaged over all clips); a
    zero loss attached to the parameters when no clip has a mask."""
    losses, terms = [], {}
    for clip in clips:
        if len(clip["masks"]) == 0:
            continue
        loss, clip_terms = model._clip_loss(clip)
        losses.append(loss)
        for key, value in clip_terms.items():
            terms[key] = terms.get(key, 0.0) + float(value) / len(clips)
    if not losses:
        return _zero_loss(model), terms
    return torch.stack(losses).mean(), terms


class BuiltinClipModel(nn.Module):
    """Loss of clips for ``BuiltinSegmenterNet``; ``views`` are the scan trajectory's views (clip ``views``
    index them; -1 = a perspective clip without geometry)."""

    def __init__(self, net: BuiltinSegmenterNet, views: Sequence, loss: LossConfig):
        super().__init__()
        self.net = net
        self.loss_config = loss
        config = net.config
        self._maps = [canvas_maps(frame_geometry(v), config.image_size, config.canvas_height) for v in views]

    def forward(self, clips: list[dict]) -> tuple[torch.Tensor, dict[str, float]]:
        return mean_clip_loss(self, clips)

    def _clip_loss(self, clip: dict) -> tuple[torch.Tensor, dict]:
        device = next(self.parameters()).device
        config = self.net.config
        size = config.image_size
        frames = _resize_frames(clip["frames"].to(device), size)
        frame_size = clip["frames"].shape[-1]
        targets = _resize_masks(clip["masks"].to(device), size)
        num_objects, num_frames = targets.shape[:2]
        loss_frames = clip["loss_frames"].numpy()
        with_grad = np.flatnonzero(loss_frames)
        without = np.flatnonzero(~loss_frames)
        features: list = [None] * num_frames
        for indices, grad in ((with_grad, True), (without, False)):
            if len(indices) == 0:
                continue
            with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
                encoded = self.net.encode_images(frames[torch.as_tensor(indices, device=device)])
            for j, frame in enumerate(indices):
                features[frame] = tuple(t[j:j + 1] for t in encoded)
        scale = size / frame_size
        prompted = sorted({f for per_object in clip["prompts"] for f in per_object})
        clicks = {}
        for frame in prompted:
            maps = []
            for per_object in clip["prompts"]:
                points, labels, box = per_object.get(frame, (None, None, None))
                maps.append(click_maps(size, None if points is None else points * scale, labels,
                                       None if box is None else box * scale, config.click_sigma))
            clicks[frame] = torch.stack(maps).to(device)
        empty = torch.zeros((num_objects, 3, size, size), device=device)
        views = clip["views"].tolist()
        tracker = Tracker(self.net, num_objects, [self._maps[v] if v >= 0 else None for v in views], device)
        forced = bool(clip.get("teacher_forcing", False))
        total, count = 0.0, 0
        for frame, memory in propagation_order(num_frames, prompted):
            remember = targets[:, frame, None] if forced else None
            if loss_frames[frame]:
                logits = tracker.step(frame, features[frame], clicks.get(frame, empty), memory, remember)
                loss, _ = output_loss(logits, targets[:, frame], self.loss_config)
                total, count = total + loss, count + 1
            else:
                with torch.no_grad():
                    tracker.step(frame, features[frame], clicks.get(frame, empty), memory, remember)
        loss = total / count
        return loss, {"mask": loss.detach()}


class Sam2ClipModel(nn.Module):
    """Loss of clips for a sam2 model (``SAM2Base``; built with ``build_sam2_predictor`` and put in train mode)."""

    def __init__(self, sam2_model: nn.Module, loss: LossConfig, frozen: Sequence[str]):
        super().__init__()
        self.sam2 = sam2_model
        self.loss_config = loss
        self.encoder_frozen = "image_encoder" in frozen
        self.register_buffer("mean", torch.tensor(_IMAGE_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGE_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, clips: list[dict]) -> tuple[torch.Tensor, dict[str, float]]:
        return mean_clip_loss(self, clips)

    def _backbone(self, images: torch.Tensor) -> dict:
        """``SAM2Base.forward_image`` with the (frozen) image encoder run without gradients."""
        model = self.sam2
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.encoder_frozen):
            backbone = model.image_encoder(images)
        backbone = {k: list(v) if isinstance(v, list) else v for k, v in backbone.items()}
        if model.use_high_res_features_in_sam:
            backbone["backbone_fpn"][0] = model.sam_mask_decoder.conv_s0(backbone["backbone_fpn"][0])
            backbone["backbone_fpn"][1] = model.sam_mask_decoder.conv_s1(backbone["backbone_fpn"][1])
        return backbone

    def _point_inputs(self, prompt: tuple, scale: float, device) -> dict:
        """SAP frame pixels -> sam2 input pixels (its prompt encoder adds half a pixel); a box is two corner
        points labelled 2 and 3, before the clicks, as sam2's predictor does."""
        points, labels, box = prompt
        coords, kinds = [], []
        if box is not None:
            coords.append(np.asarray(box, np.float64).reshape(2, 2))
            kinds.append(np.array([2, 3]))
        if points is not None:
            coords.append(np.asarray(points, np.float64).reshape(-1, 2))
            kinds.append(np.asarray(labels).reshape(-1))
        xy = np.concatenate(coords) * scale - 0.5
        return {"point_coords": torch.as_tensor(xy[None], dtype=torch.float32, device=device),
                "point_labels": torch.as_tensor(np.concatenate(kinds)[None], dtype=torch.int32, device=device)}

    def _clip_loss(self, clip: dict) -> tuple[torch.Tensor, dict]:
        model = self.sam2
        device = self.mean.device
        size = model.image_size
        images = (_resize_frames(clip["frames"].to(device), size) - self.mean) / self.std
        targets = _resize_masks(clip["masks"].to(device), size)
        num_frames = images.shape[0]
        scale = size / clip["frames"].shape[-1]
        loss_frames = clip["loss_frames"].numpy()
        backbone = self._backbone(images)
        per_frame = []
        for frame in range(num_frames):
            sliced = {"backbone_fpn": [x[frame:frame + 1] for x in backbone["backbone_fpn"]],
                      "vision_pos_enc": [x[frame:frame + 1] for x in backbone["vision_pos_enc"]]}
            per_frame.append(model._prepare_backbone_features(sliced)[1:])
        total, count, terms = 0.0, 0, {}
        for k, prompts in enumerate(clip["prompts"]):
            output_dict = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
            for frame, memory in propagation_order(num_frames, list(prompts)):
                cond = memory == "cond"
                if not cond and frame in prompts:
                    continue  # a conditioning frame's output is the one it got as such (sam2's propagation)
                feats, pos, sizes = per_frame[frame]
                point_inputs = self._point_inputs(prompts[frame], scale, device) if cond else None
                current, outputs, _, _ = model._track_step(frame, cond, feats, pos, sizes, point_inputs, None,
                                                            output_dict, num_frames, False, None)
                _, high_res_multimasks, ious, low_res_masks, high_res_masks, obj_ptr, object_logits = outputs
                current.update(pred_masks=low_res_masks, pred_masks_high_res=high_res_masks, obj_ptr=obj_ptr)
                model._encode_memory_in_output(feats, sizes, point_inputs, True, high_res_masks, object_logits,
                                               current)
                output_dict["cond_frame_outputs" if cond else "non_cond_frame_outputs"][frame] = current
                if loss_frames[frame]:
                    loss, frame_terms = output_loss(high_res_multimasks, targets[k:k + 1, frame], self.loss_config,
                                                    ious, object_logits)
                    total, count = total + loss, count + 1
                    for key, value in frame_terms.items():
                        terms[key] = terms.get(key, 0.0) + value
        loss = total / count
        return loss, {key: value / count for key, value in terms.items()}
