"""MTPano (PD-BridgeNet on DINOv3): a clean-room network, state-dict compatible with the official release.

Forward pass, for an ERP image normalised with ImageNet statistics ([B, 3, H, W], H×W = ``config.image_size``):

1. DINOv3 ViT: the raw outputs of the tap blocks (no final LayerNorm), each split into CLS and an h×w map.
2. Feature grouping: per tap, an invariant chain (ERP token mixers) and a variant chain (mixers + FiLM from the
   ray direction and spherical position).
3. Scale aggregators: the four levels of each stream → one D-channel map per stream.
4. Auxiliary heads (semseg, depth, normals) and extended heads (grad, sdf, point): task features + deep
   supervision. Invariant tasks read the invariant map, variant tasks the variant map.
5. Bridges: each stream's map attends to all task features; the other stream's tokens are detached.
6. Injection: per level and task, bridge + task feature + adapter are added to the stream features
   (all zero-initialised), CLS is prepended and a DPT neck + head per task decodes them.

Outputs (float32, at input resolution): ``semseg`` logits [B, classes, H, W] (channels-last in memory);
``depth`` [B, 1, H, W] radial metres (≥ 0, after ReLU); ``normals`` [B, 3, H, W] un-normalised, in the release's
N-space frame (see docs/MTPANO.md and the predictor for conversion to our frame); with ``with_aux`` also
``aux_preds`` and ``ext_preds`` (deep supervision, bilinearly upsampled from the patch grid).
"""
from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import DINOv3ViTModel
from transformers.models.dpt.modeling_dpt import (
    DPTDepthEstimationHead,
    DPTNeck,
    DPTSemanticSegmentationHead,
)

from .checkpoint import load_checkpoint
from .config import (
    BRIDGE_KV_ORDER,
    EXTENDED_OUT_CHANNELS,
    EXTENDED_TASKS,
    INVARIANT_TASKS,
    MAIN_TASKS,
    NUM_PREFIX_TOKENS,
    VARIANT_TASKS,
    MTPanoConfig,
    get_config,
)
from .modules import (
    SEAM_MODES,
    AuxTaskHead,
    BridgeBlock,
    CascadedGroupRefiner,
    DPTNormalsHead,
    ScaleAggregator,
    spherical_grid,
    task_adapter,
    zero_conv1x1,
)


class ChannelsLastSemanticHead(DPTSemanticSegmentationHead):
    """transformers' DPT semantic head (same layers, same state-dict keys, same values) whose logits leave it in
    channels-last memory order: on the CPU the final 2x bilinear upsampling of the 150 class maps runs 2.4x faster
    in that order, and the class argmax over the innermost dimension 7x faster (postprocess.semantic_labels)."""

    def forward(self, hidden_states: list[torch.Tensor]) -> torch.Tensor:
        *layers, upsample = self.head
        logits = hidden_states[self.config.head_in_index]
        for layer in layers:
            logits = layer(logits)
        return upsample(logits.contiguous(memory_format=torch.channels_last))


class MTPano(nn.Module):
    """The MTPano network. Attribute names and registration order reproduce the official state dict."""

    def __init__(self, config: MTPanoConfig, seam: str = "official"):
        super().__init__()
        if seam not in SEAM_MODES:
            raise ValueError(f"seam must be one of {SEAM_MODES}, got {seam!r}")
        self.config = config
        self.seam = seam
        channels, bridge_dim = config.hidden_size, config.bridge_dim
        levels = range(len(config.tap_layers))

        ray_dir, position = spherical_grid(*config.patch_grid)
        self.register_buffer("RayDir", ray_dir)
        self.register_buffer("PE", position)

        self.backbone = DINOv3ViTModel(config.dinov3_config())
        dpt_ade = config.dpt_config(batch_norm_in_fusion=True, num_labels=config.num_semseg_classes)
        self.heads = nn.ModuleDict({
            "semseg": ChannelsLastSemanticHead(dpt_ade),
            "depth": DPTDepthEstimationHead(config.dpt_config(batch_norm_in_fusion=False)),
            "normals": DPTNormalsHead(config.fusion_hidden_size),
        })
        self.necks = nn.ModuleDict({task: DPTNeck(dpt_ade) for task in MAIN_TASKS})

        self.feature_grouping = nn.ModuleList(
            CascadedGroupRefiner(channels, config.refiner_blocks, config.refiner_reduction, seam) for _ in levels
        )
        self.aggregator_inv = ScaleAggregator(channels * len(levels), bridge_dim)
        self.aggregator_var = ScaleAggregator(channels * len(levels), bridge_dim)
        self.aux_heads = nn.ModuleDict(
            {task: AuxTaskHead(bridge_dim, n, bridge_dim) for task, n in config.num_outputs.items()}
        )
        self.extended_heads = nn.ModuleDict(
            {task: AuxTaskHead(bridge_dim, EXTENDED_OUT_CHANNELS[task], bridge_dim) for task in EXTENDED_TASKS}
        )
        bridge_args = (bridge_dim, config.bridge_heads, config.bridge_mlp_ratio, BRIDGE_KV_ORDER)
        self.bfe_invariant = BridgeBlock(*bridge_args, own_tasks=INVARIANT_TASKS)
        self.bfe_variant = BridgeBlock(*bridge_args, own_tasks=VARIANT_TASKS)

        self.inv_injectors = nn.ModuleList(zero_conv1x1(bridge_dim, channels) for _ in levels)
        self.var_injectors = nn.ModuleList(zero_conv1x1(bridge_dim, channels) for _ in levels)
        self.aux_injectors = nn.ModuleDict(
            {task: nn.ModuleList(zero_conv1x1(bridge_dim, channels) for _ in levels) for task in MAIN_TASKS}
        )
        self.task_adapters = nn.ModuleDict(
            {task: nn.ModuleList(task_adapter(channels) for _ in levels) for task in MAIN_TASKS}
        )

    def backbone_taps(
        self, pixel_values: torch.Tensor, intermediates: dict | None = None
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(CLS [B, 1, C], patch map [B, C, h, w]) of each tap: raw block outputs, registers dropped."""
        batch = pixel_values.shape[0]
        height, width = self.config.patch_grid
        hidden = self.backbone.embeddings(pixel_values)
        rope = self.backbone.rope_embeddings(pixel_values)
        _record(intermediates, "backbone.hidden_states.0", hidden)
        taps = []
        for index, layer in enumerate(self.backbone.layer[: max(self.config.tap_layers) + 1]):
            hidden = layer(hidden, position_embeddings=rope)
            _record(intermediates, f"backbone.hidden_states.{index + 1}", hidden)
            if index in self.config.tap_layers:
                patches = hidden[:, NUM_PREFIX_TOKENS:].permute(0, 2, 1).reshape(batch, -1, height, width)
                taps.append((hidden[:, 0:1], patches))
        return taps

    def forward(
        self, pixel_values: torch.Tensor, *, with_aux: bool = True, intermediates: dict | None = None
    ) -> dict:
        """Run the network; see the module docstring for the outputs. ``intermediates``, if a dict, is filled
        with the hooked tensors of the parity fixture (same names)."""
        batch, _, height, width = pixel_values.shape
        if (height, width) != tuple(self.config.image_size):
            raise ValueError(
                f"{self.config.name} expects {tuple(self.config.image_size)} inputs, got {(height, width)}"
            )
        patch_h, patch_w = self.config.patch_grid
        taps = self.backbone_taps(pixel_values, intermediates)

        ray_dir = self.RayDir.expand(batch, -1, -1, -1)
        position = self.PE.expand(batch, -1, -1, -1)
        invariant, variant = [], []
        for level, ((_, patches), refiner) in enumerate(zip(taps, self.feature_grouping)):
            inv, var = refiner(patches, ray_dir, position)
            invariant.append(_record(intermediates, f"feature_grouping.{level}.invariant", inv))
            variant.append(_record(intermediates, f"feature_grouping.{level}.variant", var))
        generic = {
            "invariant": _record(intermediates, "aggregator_inv", self.aggregator_inv(invariant)),
            "variant": _record(intermediates, "aggregator_var", self.aggregator_var(variant)),
        }

        task_features, patch_predictions = {}, {}
        for group, heads in (("aux_heads", self.aux_heads), ("extended_heads", self.extended_heads)):
            for task, head in heads.items():
                stream = "invariant" if task in INVARIANT_TASKS else "variant"
                feature, prediction = head(generic[stream])
                task_features[task] = _record(intermediates, f"{group}.{task}.task_feat", feature)
                patch_predictions[task] = _record(intermediates, f"{group}.{task}.pred_patchres", prediction)

        bridge_inv = _record(intermediates, "bfe_invariant", self.bfe_invariant(generic["invariant"], task_features))
        bridge_var = _record(intermediates, "bfe_variant", self.bfe_variant(generic["variant"], task_features))
        streams = {
            "invariant": [f + inj(bridge_inv) for f, inj in zip(invariant, self.inv_injectors)],
            "variant": [f + inj(bridge_var) for f, inj in zip(variant, self.var_injectors)],
        }

        outputs = {}
        if with_aux:
            def upsample(x):
                return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
            outputs["aux_preds"] = {task: upsample(patch_predictions[task]) for task in MAIN_TASKS}
            outputs["ext_preds"] = {task: upsample(patch_predictions[task]) for task in EXTENDED_TASKS}

        for task in MAIN_TASKS:
            stream = streams["invariant" if task in INVARIANT_TASKS else "variant"]
            tokens = []
            for level, ((cls, _), base) in enumerate(zip(taps, stream)):
                adapted = (
                    base
                    + self.aux_injectors[task][level](task_features[task])
                    + self.task_adapters[task][level](base)
                )
                level_tokens = torch.cat([cls, adapted.flatten(2).transpose(1, 2)], dim=1)
                tokens.append(_record(intermediates, f"necks.{task}.input_tokens.{level}", level_tokens))
            neck_outputs = self.necks[task](tokens, patch_height=patch_h, patch_width=patch_w)
            for level, neck_output in enumerate(neck_outputs):
                _record(intermediates, f"necks.{task}.output.{level}", neck_output)
            prediction = self.heads[task](neck_outputs)
            outputs[task] = prediction.unsqueeze(1) if task == "depth" else prediction
        return outputs


def _record(intermediates: dict | None, name: str, tensor: torch.Tensor) -> torch.Tensor:
    if intermediates is not None:
        intermediates[name] = tensor
    return tensor


def build_mtpano(
    config: str | MTPanoConfig = "large",
    *,
    seam: str = "official",
    checkpoint: str | Path | None = None,
    strict: bool = True,
    device: str | torch.device | None = None,
) -> MTPano:
    """Build an MTPano network, optionally loading a checkpoint (.pth/.pt/.bin or .safetensors).

    Without a checkpoint the weights are our initialisation: transformers' DINOv3 init, PyTorch defaults
    elsewhere, and zero-initialised refiner outputs, FiLM, injectors and adapters, so the refiners and
    injections are the identity at step 0. ``device="meta"`` builds shapes only (no memory).
    """
    config = get_config(config)
    is_meta = device is not None and torch.device(device).type == "meta"
    with torch.device("meta") if is_meta else nullcontext():
        model = MTPano(config, seam=seam)
    if checkpoint is not None:
        if is_meta:
            raise ValueError("cannot load a checkpoint into a model built on the meta device")
        load_checkpoint(model, checkpoint, strict=strict)
    if device is not None and not is_meta:
        model = model.to(device)
    return model
