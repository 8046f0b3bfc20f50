"""Named MTPano configurations and the transformers configs built from them (never from the hub)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from transformers import DINOv3ViTConfig, DPTConfig

#: Dense tasks of the released model, in the order of its output dict and of every per-task ModuleDict.
MAIN_TASKS = ("semseg", "depth", "normals")
#: Auxiliary tasks whose heads only feed the bridge (and deep supervision).
EXTENDED_TASKS = ("grad", "sdf", "point")
EXTENDED_OUT_CHANNELS = {"grad": 2, "sdf": 1, "point": 3}
#: Rotation-invariant tasks read the invariant stream, rotation-variant ones the variant stream.
INVARIANT_TASKS = ("grad", "sdf", "semseg", "depth")
VARIANT_TASKS = ("normals", "point")
#: Order in which task tokens are concatenated as bridge keys/values.
BRIDGE_KV_ORDER = ("grad", "sdf", "semseg", "depth", "normals", "point")
#: DINOv3 prefixes every sequence with CLS and 4 register tokens; the release hard-codes skipping 5.
NUM_PREFIX_TOKENS = 5

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class MTPanoConfig:
    """Every architectural value of an MTPano network.

    ``image_size`` is the network input (H, W) in pixels; the spherical buffers and token reshapes are fixed
    to its patch grid, so the network accepts that size only.
    """

    name: str
    image_size: tuple[int, int]
    num_semseg_classes: int
    # DINOv3 ViT backbone.
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    tap_layers: tuple[int, ...]
    patch_size: int = 16
    num_register_tokens: int = 4
    # PD-BridgeNet.
    bridge_dim: int = 256
    bridge_heads: int = 4
    bridge_mlp_ratio: float = 4.0
    refiner_blocks: int = 2
    refiner_reduction: int = 4
    # DPT necks and heads.
    neck_hidden_sizes: tuple[int, ...] = (256, 512, 1024, 1024)
    fusion_hidden_size: int = 256
    reassemble_factors: tuple[float, ...] = (4, 2, 1, 0.5)
    semantic_classifier_dropout: float = 0.1
    notes: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        height, width = self.image_size
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(f"{self.name}: image_size {self.image_size} is not a multiple of {self.patch_size}")
        if width != 2 * height:
            raise ValueError(f"{self.name}: image_size {self.image_size} is not 2:1 (ERP)")
        if self.num_register_tokens + 1 != NUM_PREFIX_TOKENS:
            raise ValueError(f"{self.name}: the release skips exactly {NUM_PREFIX_TOKENS} prefix tokens")
        if not (len(self.tap_layers) == len(self.neck_hidden_sizes) == len(self.reassemble_factors)):
            raise ValueError(f"{self.name}: tap_layers, neck_hidden_sizes and reassemble_factors differ in length")
        if max(self.tap_layers) >= self.num_layers:
            raise ValueError(f"{self.name}: tap layer {max(self.tap_layers)} >= num_layers {self.num_layers}")
        if self.hidden_size % self.num_heads or (self.hidden_size // self.num_heads) % 4:
            raise ValueError(f"{self.name}: head dim must be an integer multiple of 4 (2-D RoPE)")
        if self.hidden_size % self.refiner_reduction or self.bridge_dim % self.bridge_heads:
            raise ValueError(f"{self.name}: hidden_size/refiner_reduction or bridge_dim/bridge_heads not integral")

    @property
    def patch_grid(self) -> tuple[int, int]:
        """(h, w) of the token grid."""
        return self.image_size[0] // self.patch_size, self.image_size[1] // self.patch_size

    @property
    def num_outputs(self) -> dict[str, int]:
        """Output channels of each main task."""
        return {"semseg": self.num_semseg_classes, "depth": 1, "normals": 3}

    def dinov3_config(self) -> DINOv3ViTConfig:
        """transformers config of the backbone (DINOv3 ViT/16 layout: no k bias, LayerScale, 2-D RoPE)."""
        config = DINOv3ViTConfig(
            patch_size=self.patch_size,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            hidden_act="gelu",
            layer_norm_eps=1e-5,
            rope_theta=100.0,
            query_bias=True,
            key_bias=False,
            value_bias=True,
            proj_bias=True,
            mlp_bias=True,
            layerscale_value=1.0,
            use_gated_mlp=False,
            num_register_tokens=self.num_register_tokens,
            pos_embed_rescale=2.0,
        )
        config._attn_implementation = "sdpa"
        return config

    def dpt_config(self, *, batch_norm_in_fusion: bool, num_labels: int = 2) -> DPTConfig:
        """transformers DPT config: ``batch_norm_in_fusion`` is the ADE variant (necks, semseg head)."""
        return DPTConfig(
            hidden_size=self.hidden_size,
            image_size=list(self.image_size),
            patch_size=self.patch_size,
            readout_type="project",
            reassemble_factors=list(self.reassemble_factors),
            neck_hidden_sizes=list(self.neck_hidden_sizes),
            fusion_hidden_size=self.fusion_hidden_size,
            head_in_index=-1,
            use_batch_norm_in_fusion_residual=batch_norm_in_fusion,
            add_projection=False,
            semantic_classifier_dropout=self.semantic_classifier_dropout,
            backbone_out_indices=list(self.tap_layers),
            num_labels=num_labels,
        )


LARGE = MTPanoConfig(
    name="large",
    image_size=(512, 1024),
    num_semseg_classes=150,
    hidden_size=1024,
    intermediate_size=4096,
    num_layers=24,
    num_heads=16,
    tap_layers=(5, 11, 17, 23),
    notes="The released model: DINOv3 ViT-L/16, DPT-large necks and heads, ADE20K-150, 512x1024.",
)

TINY_FIXTURE = MTPanoConfig(
    name="tiny-fixture",
    image_size=(128, 256),
    num_semseg_classes=13,
    hidden_size=64,
    intermediate_size=128,
    num_layers=4,
    num_heads=4,
    tap_layers=(0, 1, 2, 3),
    bridge_dim=32,
    neck_hidden_sizes=(16, 32, 64, 64),
    fusion_hidden_size=32,
    notes="The parity fixture of shared/fixtures/mtpano (random weights, 1.94 M parameters).",
)

SMALL_CPU = MTPanoConfig(
    name="small-cpu",
    image_size=(256, 512),
    num_semseg_classes=150,
    hidden_size=192,
    intermediate_size=768,
    num_layers=6,
    num_heads=3,
    tap_layers=(1, 3, 4, 5),
    bridge_dim=64,
    neck_hidden_sizes=(48, 96, 192, 192),
    fusion_hidden_size=64,
    notes="Our CPU-trainable model: ViT-Ti-like backbone at 256x512 (16x32 tokens).",
)

MICRO_CPU = MTPanoConfig(
    name="micro-cpu",
    image_size=(128, 256),
    num_semseg_classes=150,
    hidden_size=96,
    intermediate_size=384,
    num_layers=4,
    num_heads=2,
    tap_layers=(0, 1, 2, 3),
    bridge_dim=32,
    neck_hidden_sizes=(24, 48, 96, 96),
    fusion_hidden_size=32,
    notes="Smallest model for smoke tests and quick CPU experiments at 128x256 (8x16 tokens).",
)

MICRO_CPU_P8 = replace(
    MICRO_CPU,
    name="micro-cpu-p8",
    patch_size=8,
    reassemble_factors=(2, 1, 0.5, 0.25),
    notes="The built-in default: micro-cpu with 8x8-pixel patches (16x32 tokens of 11.25 deg) and every DPT "
          "reassemble factor halved, so necks, heads and outputs keep micro-cpu's sizes (128x256).",
)

CONFIGS: dict[str, MTPanoConfig] = {c.name: c for c in (LARGE, TINY_FIXTURE, SMALL_CPU, MICRO_CPU, MICRO_CPU_P8)}


def get_config(config: str | MTPanoConfig) -> MTPanoConfig:
    """Resolve a configuration name (see ``CONFIGS``) or pass a config object through."""
    if isinstance(config, MTPanoConfig):
        return config
    try:
        return CONFIGS[config]
    except KeyError:
        raise ValueError(f"unknown MTPano config {config!r}; known: {sorted(CONFIGS)}") from None
