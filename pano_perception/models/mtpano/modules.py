"""PD-BridgeNet building blocks, with the parameter names and shapes of the official MTPano release.

All feature maps are ``[B, C, h, w]`` on the ERP patch grid (row 0 = north pole). Convolutions whose name says
"zero-initialised" start at exactly 0 so that a freshly built network passes the backbone features through.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SEAM_MODES = ("official", "wrap")


def spherical_grid(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The release's ``RayDir`` [1, 3, h, w] and ``PE`` [1, 2, h, w] buffers for an h×w patch grid.

    Grid points include both ends (polar angle φ from 0 at the top row to π at the bottom row, azimuth θ from
    0 to 2π, so the first and last columns coincide). ``PE`` is (φ, θ) in radians; ``RayDir`` is
    (sin φ cos θ, cos φ, sin φ sin θ), i.e. its y is +1 at the top. This is the model's internal frame, not ours
    (docs/CONVENTIONS.md). Built exactly as the release does, bit for bit.
    """
    polar = torch.linspace(0, 1, height) * math.pi
    azimuth = torch.linspace(0, 1, width) * (2 * math.pi)
    polar, azimuth = torch.meshgrid(polar, azimuth, indexing="ij")
    position = torch.stack([polar, azimuth])[None]
    ray = torch.stack(
        [torch.sin(polar) * torch.cos(azimuth), torch.cos(polar), torch.sin(polar) * torch.sin(azimuth)]
    )[None]
    return ray, position


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of every pixel of a [B, C, h, w] map."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _wrap_columns(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Circular padding of the last (longitude) axis; written with cat so that it exports to ONNX everywhere."""
    return torch.cat([x[..., -pad:], x, x[..., :pad]], dim=-1)


def _conv_with_seam(conv: nn.Conv2d, x: torch.Tensor, seam: str) -> torch.Tensor:
    if seam == "official":
        return conv(x)
    pad_rows, pad_cols = conv.padding
    return F.conv2d(_wrap_columns(x, pad_cols), conv.weight, conv.bias, padding=(pad_rows, 0), groups=conv.groups)


class EquiRectangularDualConv(nn.Module):
    """ERP token mixer: ``(1 − |ray_y|)·conv3×3(x) + |ray_y|·depthwise_conv3×9(x)``.

    |ray_y| = |cos φ| is 1 at the poles and ≈0 at the equator, widening the receptive field where ERP stretches.
    ``seam="official"`` zero-pads the left/right borders like the release; ``"wrap"`` pads them circularly.
    """

    def __init__(self, channels: int, seam: str = "official"):
        super().__init__()
        if seam not in SEAM_MODES:
            raise ValueError(f"seam must be one of {SEAM_MODES}, got {seam!r}")
        self.seam = seam
        self.equator_conv = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.pole_conv = nn.Conv2d(channels, channels, kernel_size=(3, 9), padding=(1, 4), groups=channels)

    def forward(self, x: torch.Tensor, ray_dir: torch.Tensor) -> torch.Tensor:
        pole_weight = ray_dir[:, 1:2].abs()
        equator = _conv_with_seam(self.equator_conv, x, self.seam)
        pole = _conv_with_seam(self.pole_conv, x, self.seam)
        return (1 - pole_weight) * equator + pole_weight * pole


class StandardResidualBlock(nn.Module):
    """Invariant-stream refiner: ``x + conv2(GELU(mixer(GELU(conv1(x)))))``, conv2 zero-initialised."""

    def __init__(self, channels: int, reduction: int = 4, seam: str = "official"):
        super().__init__()
        hidden = channels // reduction
        self.conv1 = nn.Conv2d(channels, hidden, kernel_size=1)
        self.spatial_process = EquiRectangularDualConv(hidden, seam)
        self.conv2 = nn.Conv2d(hidden, channels, kernel_size=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def residual(self, x: torch.Tensor, ray_dir: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.gelu(self.spatial_process(F.gelu(self.conv1(x)), ray_dir)))

    def forward(self, x: torch.Tensor, ray_dir: torch.Tensor) -> torch.Tensor:
        return x + self.residual(x, ray_dir)


class GeometryModulatedBlock(StandardResidualBlock):
    """Variant-stream refiner: ``x + f·(1 + γ) + β`` with (γ, β) = geo_mlp([RayDir, PE]) (FiLM).

    The last geo_mlp conv is zero-initialised (weight and bias), so γ = β = 0 at step 0.
    """

    def __init__(self, channels: int, reduction: int = 4, seam: str = "official"):
        super().__init__(channels, reduction, seam)
        self.geo_mlp = nn.Sequential(
            nn.Conv2d(5, channels // reduction, kernel_size=1),
            nn.ReLU(),
            nn.Conv2d(channels // reduction, 2 * channels, kernel_size=1),
        )
        nn.init.zeros_(self.geo_mlp[2].weight)
        nn.init.zeros_(self.geo_mlp[2].bias)

    def forward(self, x: torch.Tensor, ray_dir: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        scale, shift = self.geo_mlp(torch.cat([ray_dir, position], dim=1)).chunk(2, dim=1)
        return x + (self.residual(x, ray_dir) * (1 + scale) + shift)


class CascadedGroupRefiner(nn.Module):
    """Splits one backbone tap into an invariant and a variant feature map (two independent chains)."""

    def __init__(self, channels: int, num_blocks: int = 2, reduction: int = 4, seam: str = "official"):
        super().__init__()
        self.invariant_layers = nn.ModuleList(
            StandardResidualBlock(channels, reduction, seam) for _ in range(num_blocks)
        )
        self.variant_layers = nn.ModuleList(
            GeometryModulatedBlock(channels, reduction, seam) for _ in range(num_blocks)
        )

    def forward(
        self, x: torch.Tensor, ray_dir: torch.Tensor, position: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        invariant = variant = x
        for block in self.invariant_layers:
            invariant = block(invariant, ray_dir)
        for block in self.variant_layers:
            variant = block(variant, ray_dir, position)
        return invariant, variant


class ScaleAggregator(nn.Module):
    """Concatenated level features → Conv1×1 (no bias) → LayerNorm2d → GELU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.fusion_conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
            LayerNorm2d(out_channels),
            nn.GELU(),
        )

    def forward(self, levels: list[torch.Tensor]) -> torch.Tensor:
        return self.fusion_conv(torch.cat(levels, dim=1))


class AuxTaskHead(nn.Module):
    """Light head on the aggregated map: returns (task feature [B, D, h, w], prediction at patch resolution)."""

    def __init__(self, in_channels: int, out_channels: int, feature_channels: int):
        super().__init__()
        self.feature_extractor = nn.Sequential(
            nn.Conv2d(in_channels, feature_channels, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(feature_channels),
            nn.GELU(),
            nn.Conv2d(feature_channels, feature_channels, kernel_size=1, bias=False),
            LayerNorm2d(feature_channels),
            nn.GELU(),
        )
        self.classifier = nn.Conv2d(feature_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature = self.feature_extractor(x)
        return feature, self.classifier(feature)


class CrossAttention(nn.Module):
    """Multi-head attention of query tokens over key/value tokens, scale (D/heads)^-0.5."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.to_q = nn.Linear(dim, dim, bias=qkv_bias)
        self.to_k = nn.Linear(dim, dim, bias=qkv_bias)
        self.to_v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def _split_heads(self, tokens: torch.Tensor) -> torch.Tensor:
        batch, length, dim = tokens.shape
        return tokens.reshape(batch, length, self.num_heads, dim // self.num_heads).transpose(1, 2)

    def forward(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        q = self._split_heads(self.to_q(query))
        k = self._split_heads(self.to_k(context))
        v = self._split_heads(self.to_v(context))
        # Explicit softmax attention (not SDPA): reproduces the release bit for bit on CPU.
        weights = ((q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5).softmax(dim=-1)
        return self.proj((weights @ v).transpose(1, 2).flatten(2))


class BridgeMlp(nn.Module):
    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class BridgeBlock(nn.Module):
    """Bridge feature extractor: the stream's aggregated map attends to the tokens of every auxiliary task.

    Each task feature is squeezed by a stride-2 conv into (h/2)(w/2) tokens. Tokens of tasks outside
    ``own_tasks`` are detached (gradient-truncated bridge): the other stream informs this one in the forward
    pass but receives no gradient from it.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, kv_tasks: tuple[str, ...],
                 own_tasks: tuple[str, ...]):
        super().__init__()
        self.own_tasks = own_tasks
        self.norm1_q = nn.LayerNorm(dim)
        self.norm1_kv = nn.LayerNorm(dim)
        self.cross_attn = CrossAttention(dim, num_heads)
        self.kv_squeeze = nn.ModuleDict(
            {task: nn.Conv2d(dim, dim, kernel_size=3, stride=2, padding=1) for task in kv_tasks}
        )
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = BridgeMlp(dim, int(dim * mlp_ratio))

    def forward(self, generic: torch.Tensor, task_features: dict[str, torch.Tensor]) -> torch.Tensor:
        batch, dim, height, width = generic.shape
        query = generic.flatten(2).transpose(1, 2)
        context = []
        for task, squeeze in self.kv_squeeze.items():
            tokens = squeeze(task_features[task]).flatten(2).transpose(1, 2)
            context.append(tokens if task in self.own_tasks else tokens.detach())
        context = torch.cat(context, dim=1)
        x = query + self.cross_attn(self.norm1_q(query), self.norm1_kv(context))
        x = x + self.mlp(self.norm2(x))
        return x.transpose(1, 2).reshape(batch, dim, height, width)


def zero_conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    """Zero-initialised 1×1 conv (injectors): its output is exactly 0 at step 0."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


def task_adapter(channels: int) -> nn.Sequential:
    """Per-task, per-level residual adapter: Conv3×3 → LayerNorm2d → GELU → zero-initialised Conv1×1."""
    adapter = nn.Sequential(
        nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False),
        LayerNorm2d(channels),
        nn.GELU(),
        nn.Conv2d(channels, channels, kernel_size=1),
    )
    nn.init.zeros_(adapter[3].weight)
    nn.init.zeros_(adapter[3].bias)
    return adapter


class DPTNormalsHead(nn.Module):
    """The release's normals head: the DPT depth-head layout with 3 outputs and no final ReLU (not unit length)."""

    def __init__(self, features: int):
        super().__init__()
        self.head = nn.Sequential(
            nn.Conv2d(features, features // 2, kernel_size=3, padding=1),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
            nn.Conv2d(features // 2, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 3, kernel_size=1),
        )

    def forward(self, neck_outputs: list[torch.Tensor]) -> torch.Tensor:
        return self.head(neck_outputs[-1])
