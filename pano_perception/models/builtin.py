"""The models that ship with the package, so that the nodes run out of the box."""
from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
BUILTIN_MTPANO_CONFIG = "micro-cpu-p8"
BUILTIN_MTPANO_WEIGHTS = DATA_DIR / "mtpano_micro_cpu_p8.safetensors"


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


def mtpano_from_settings(params: dict):
    """An MTPanoPredictor from the dense node's parameter names (``model.config``, ``device``, ...)."""
    return load_mtpano_predictor(params["model.config"], params["model.checkpoint"], device=params["device"],
                                 precision=params["precision"], backend=params["model.backend"],
                                 onnx_path=params["model.onnx_path"])


def sap_from_settings(params: dict):
    """A PanoSegmenter from the sap node's parameter names (``model.backend``, ``scan.*``, ``fusion.*``, ...)."""
    from .sap import build_segmenter

    return build_segmenter(
        params["model.backend"], config=params["model.config"], checkpoint=params["model.checkpoint"],
        device=params["device"], precision=params["precision"], fov_deg=params["scan.fov_deg"],
        overlap=params["scan.overlap"], pitch_deg=tuple(params["scan.pitch_deg"]),
        frame_size=params["scan.frame_size"], prompt_frames=params["scan.prompt_frames"],
        threshold=params["fusion.threshold"], min_component_px=params["fusion.min_component_px"])
