"""Ablation switches of Table 3, applied to a built network without changing its architecture or state dict.

* no modulation (``w.o. M_var M_inv``): every refiner block's zero-initialised output conv (``conv2``) and the FiLM
  MLP's last conv are set to zero and the refiners frozen, so both refiner chains stay the identity: no ERP token mixing and no
  geometry modulation; the two streams start from the same backbone features.
* no truncation (``w.o. Trunc``): both bridges treat every task's tokens as their own (``BridgeBlock.own_tasks``),
  so no bridge token is detached and gradients cross between the streams.
* no auxiliary heads: the grad/sdf/point heads get no supervision (losses.total_loss ``aux_heads=False``).
* single task: only the listed main tasks are supervised (losses.total_loss ``tasks``).
"""
from __future__ import annotations

import torch

from pano_perception.models.mtpano import MTPano
from pano_perception.models.mtpano.config import BRIDGE_KV_ORDER
from pano_perception.models.mtpano.modules import GeometryModulatedBlock

from .config import AblationConfig


def disable_modulation(model: MTPano) -> None:
    """Hold every refiner at the identity (see module doc): zero output convs, all refiner parameters frozen."""
    with torch.no_grad():
        for refiner in model.feature_grouping:
            for block in list(refiner.invariant_layers) + list(refiner.variant_layers):
                outputs = [block.conv2] + ([block.geo_mlp[2]] if isinstance(block, GeometryModulatedBlock) else [])
                for conv in outputs:
                    conv.weight.zero_()
                    conv.bias.zero_()
    model.feature_grouping.requires_grad_(False)


def disable_truncation(model: MTPano) -> None:
    """Let gradients flow through every bridge token (no detach)."""
    for bridge in (model.bfe_invariant, model.bfe_variant):
        bridge.own_tasks = BRIDGE_KV_ORDER


def apply_ablation(model: MTPano, ablation: AblationConfig) -> None:
    """The architectural switches (modulation, truncation); the loss switches act in losses.total_loss."""
    if not ablation.modulation:
        disable_modulation(model)
    if not ablation.truncation:
        disable_truncation(model)
