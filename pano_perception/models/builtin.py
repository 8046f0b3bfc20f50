"""The models that ship with the package, so that the nodes run out of the box."""
from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
BUILTIN_MTPANO_CONFIG = "micro-cpu"
BUILTIN_MTPANO_WEIGHTS = DATA_DIR / "mtpano_micro_cpu.safetensors"


def resolve_mtpano(config: str, checkpoint: str) -> tuple[str, str | None]:
    """(config, checkpoint) from node or CLI settings: ``builtin`` means the shipped config and weights.

    An empty checkpoint with a named config means random weights, which only tests want; it is refused here.
    """
    if config == "builtin":
        if checkpoint:
            raise ValueError("model config 'builtin' takes no checkpoint; name a config to load your own weights")
        if not BUILTIN_MTPANO_WEIGHTS.is_file():
            raise FileNotFoundError(
                f"the built-in MTPano weights are missing ({BUILTIN_MTPANO_WEIGHTS}); reinstall the package, "
                "or pass a config name and a checkpoint file")
        return BUILTIN_MTPANO_CONFIG, str(BUILTIN_MTPANO_WEIGHTS)
    if not checkpoint:
        raise ValueError(f"model config {config!r} needs a checkpoint file (official .pth/.safetensors)")
    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"checkpoint file not found: {checkpoint}")
    return config, checkpoint


def load_mtpano_predictor(config: str = "builtin", checkpoint: str = "", *, device: str = "cpu",
                          precision: str = "fp32", backend: str = "torch", onnx_path: str = ""):
    """An MTPanoPredictor from node/CLI settings (``builtin`` = the shipped model); errors name the cause."""
    from .mtpano.predictor import MTPanoPredictor

    config, checkpoint = resolve_mtpano(config, checkpoint)
    return MTPanoPredictor(config, checkpoint, device=device, precision=precision, backend=backend,
                           onnx_path=onnx_path or None)
