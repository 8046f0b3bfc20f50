"""Start a finer-patch MTPano from a trained coarser one (e.g. micro-cpu-p8 from micro-cpu's weights).

The target halves the patch size and every DPT reassemble factor, so its token grid is twice as fine per side while
its necks, fusion blocks and heads run at the source's sizes. Each changed tensor is set so the target computes
what the source computes on the image upsampled 2x (nearest), followed by a 2x average pool of each reassembled
map; the rest is copied:

- patch embedding ``[C, 3, 2p, 2p] -> [C, 3, p, p]``: sum of each 2x2 block (FlexiViT's pseudo-inverse resize for
  nearest upsampling, exact);
- factor 4 -> 2 transposed conv: each 2x2 output tap is the mean of the source's four taps it pools (exact);
- factor 2 -> 1 (transposed conv -> identity): the mean of the source's taps is folded into the 1x1 projection
  before it (exact);
- factor 1 -> 0.5 (identity -> 3x3 stride-2 conv): the kernel that averages 2x2 blocks (exact);
- factor 0.5 -> 0.25 (3x3 stride 2 -> 3x3 stride 4): copied (approximate: the taps now span twice the angle).

The token mixers, FiLM and heads keep their weights; their 3x3 / 3x9 kernels now span half the angle, which
fine-tuning absorbs. The patch-grid buffers (``PE``, ``RayDir``) are the target's own.
"""
from __future__ import annotations

from pathlib import Path

import torch

from pano_perception.models.mtpano.checkpoint import load_checkpoint, read_state_dict
from pano_perception.models.mtpano.config import MAIN_TASKS, MTPanoConfig, get_config
from pano_perception.models.mtpano.model import MTPano

PATCH_GRID_BUFFERS = ("PE", "RayDir")


def check_transferable(source: MTPanoConfig, target: MTPanoConfig) -> None:
    """Raise ValueError unless ``target`` is ``source`` with the patch size and every reassemble factor halved."""
    expected_factors = tuple(f / 2 for f in source.reassemble_factors)
    if (target.patch_size * 2 != source.patch_size or tuple(target.reassemble_factors) != expected_factors
            or target.image_size != source.image_size or target.hidden_size != source.hidden_size
            or target.neck_hidden_sizes != source.neck_hidden_sizes):
        raise ValueError(
            f"cannot transfer {source.name} (patch {source.patch_size}, factors {source.reassemble_factors}) to "
            f"{target.name} (patch {target.patch_size}, factors {target.reassemble_factors}): the target must halve "
            "the patch size and every reassemble factor and keep image size and widths")


def transfer_state_dict(source_state: dict[str, torch.Tensor], source: MTPanoConfig,
                        target_model: MTPano) -> dict[str, torch.Tensor]:
    """The state dict of ``target_model``'s architecture initialised from a ``source``-config state dict."""
    check_transferable(source, target_model.config)
    state = dict(source_state)
    for name in PATCH_GRID_BUFFERS:
        state[name] = target_model.state_dict()[name].clone()
    key = "backbone.embeddings.patch_embeddings.weight"
    weight = state[key]
    state[key] = weight.reshape(*weight.shape[:2], weight.shape[2] // 2, 2, weight.shape[3] // 2, 2).sum((3, 5))
    for task in MAIN_TASKS:
        for level, factor in enumerate(source.reassemble_factors):
            prefix = f"necks.{task}.reassemble_stage.layers.{level}"
            _transfer_reassemble(state, prefix, factor)
    return state


def _transfer_reassemble(state: dict[str, torch.Tensor], prefix: str, source_factor: float) -> None:
    """Rewrite one reassemble layer (1x1 ``projection`` then ``resize``) for half its resize factor, in place."""
    resize_w, resize_b = f"{prefix}.resize.weight", f"{prefix}.resize.bias"
    if source_factor > 2:  # transposed conv k=s=f -> k=s=f/2: average the taps each output pixel pools
        weight = state[resize_w]  # [in, out, f, f]
        f = weight.shape[-1]
        state[resize_w] = weight.reshape(*weight.shape[:2], f // 2, 2, f // 2, 2).mean((3, 5))
    elif source_factor == 2:  # transposed conv k=s=2 -> identity: fold its mean tap into the projection
        mean_tap = state.pop(resize_w).mean((2, 3))  # [in, out]
        bias = state.pop(resize_b)
        proj_w, proj_b = f"{prefix}.projection.weight", f"{prefix}.projection.bias"
        projection = state[proj_w][:, :, 0, 0]  # [in, hidden]
        state[proj_w] = (mean_tap.T @ projection)[:, :, None, None]
        state[proj_b] = mean_tap.T @ state[proj_b] + bias
    elif source_factor == 1:  # identity -> 3x3 stride-2 conv (padding 1): taps (1..2, 1..2) see the 2x2 block
        channels = state[f"{prefix}.projection.weight"].shape[0]
        weight = torch.zeros(channels, channels, 3, 3)
        weight[torch.arange(channels), torch.arange(channels), 1:, 1:] = 0.25
        state[resize_w], state[resize_b] = weight, torch.zeros(channels)
    # source_factor < 1: strided 3x3 conv, copied as it is


def load_transferred(model: MTPano, checkpoint: str | Path, source_config: str | MTPanoConfig) -> None:
    """Initialise ``model`` from a checkpoint of ``source_config`` (strict: every target tensor is set)."""
    state = transfer_state_dict(read_state_dict(checkpoint), get_config(source_config), model)
    load_checkpoint(model, state, strict=True)
