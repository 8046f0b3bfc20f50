"""ONNX export of MTPano, an ONNX Runtime runner, and an (optional, import-guarded) TensorRT engine builder.

The exported graph maps ``pixel_values`` [B, 3, H, W] (ImageNet-normalised, H×W fixed by the config) to the class
logits channels-last (``semseg_nhwc`` [B, H, W, classes]), ``depth`` [B, 1, H, W] and un-normalised ``normals``
[B, 3, H, W], exactly ``MTPano.forward(with_aux=False)``. Channels-last logits are what the CPU argmax reads fast
(1.1 against 12.6 ms for 150 × 128 × 256), and ONNX Runtime runs that graph faster too (micro-cpu-p8: 28 against
33 ms on 2 cores). Graphs exported before, with NCHW ``semseg``, still run. Pre- and post-processing stay outside
the graph (see postprocess.py), so every backend shares them.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .model import MTPano

INPUT_NAME = "pixel_values"
OUTPUT_NAMES = ("semseg_nhwc", "depth", "normals")
#: The logits output of graphs exported before semseg_nhwc: [B, classes, H, W].
NCHW_SEMSEG_NAME = "semseg"
DEFAULT_OPSET = 18
TENSORRT_PRECISIONS = ("fp32", "fp16", "bf16")


class MTPanoExportWrapper(nn.Module):
    """MTPano without deep-supervision outputs, returning (semseg logits [B, H, W, classes], depth, normals)."""

    def __init__(self, model: MTPano):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        outputs = self.model(pixel_values, with_aux=False)
        return outputs["semseg"].permute(0, 2, 3, 1), outputs["depth"], outputs["normals"]


def export_onnx(
    model: MTPano,
    path: str | Path,
    *,
    batch_size: int = 1,
    dynamic_batch: bool = False,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Export ``model`` (fp32, eval mode) to ONNX with a fixed H×W (``model.config.image_size``).

    Uses the dynamo exporter (torch.export): the legacy TorchScript tracer mis-exports transformers' DINOv3.
    Weights go to an external ``<name>.data`` file next to the graph when the exporter decides to (always for
    the 2.4 GB ``large`` model, above protobuf's 2 GB limit). ``dynamic_batch`` makes the batch axis symbolic.
    """
    if opset < 17:
        raise ValueError(f"opset must be >= 17, got {opset}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    # torch.export specialises an axis of size 1, so a symbolic batch is traced with two images.
    example_batch = max(batch_size, 2) if dynamic_batch else batch_size
    example = torch.zeros(example_batch, 3, *model.config.image_size, device=next(model.parameters()).device)
    dynamic_shapes = {"pixel_values": {0: torch.export.Dim("batch", min=1)}} if dynamic_batch else None
    with torch.no_grad():
        torch.onnx.export(
            MTPanoExportWrapper(model).eval(),
            (example,),
            str(path),
            dynamo=True,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_shapes=dynamic_shapes,
        )
    return path


class OnnxRuntimeMTPano:
    """Runs an exported MTPano ONNX file with ONNX Runtime; called like ``MTPano(pixel_values, with_aux=False)``.

    ``threads`` sets ONNX Runtime's intra-op threads (default: its own choice, one per physical core).
    """

    def __init__(self, onnx_path: str | Path, device: str | torch.device = "cpu", *, threads: int | None = None):
        import onnxruntime as ort

        onnx_path = Path(onnx_path).expanduser()
        if not onnx_path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {onnx_path} (make one with export_onnx)")
        self.device = torch.device(device)
        providers = ["CPUExecutionProvider"]
        if self.device.type == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ValueError("device is CUDA but this onnxruntime has no CUDAExecutionProvider "
                                 "(install onnxruntime-gpu)")
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": self.device.index or 0}))
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(onnx_path), options, providers=providers)
        batch, _, height, width = self.session.get_inputs()[0].shape
        self.image_size = (height, width)
        self.fixed_batch = batch if isinstance(batch, int) else None
        names = {output.name for output in self.session.get_outputs()}
        semseg = OUTPUT_NAMES[0] if OUTPUT_NAMES[0] in names else NCHW_SEMSEG_NAME
        self.output_names = [semseg, *OUTPUT_NAMES[1:]]
        if not set(self.output_names) <= names:
            raise ValueError(f"{onnx_path} is not an MTPano export: outputs {sorted(names)}, expected "
                             f"{list(OUTPUT_NAMES)}")

    def __call__(self, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
        """``MTPano.forward(with_aux=False)``'s dict: ``semseg`` [B, classes, H, W] (channels-last in memory from a
        ``semseg_nhwc`` graph), ``depth``, ``normals``."""
        if tuple(pixel_values.shape[-2:]) != self.image_size:
            raise ValueError(f"the ONNX model takes {self.image_size} inputs, got {tuple(pixel_values.shape[-2:])}")
        chunk = self.fixed_batch or len(pixel_values)
        if len(pixel_values) % chunk:
            raise ValueError(f"the ONNX model has a fixed batch of {chunk}; got {len(pixel_values)} images")
        inputs = pixel_values.detach().float().cpu().numpy()
        results = [self.session.run(self.output_names, {INPUT_NAME: inputs[start:start + chunk]})
                   for start in range(0, len(inputs), chunk)]
        semseg, depth, normals = (torch.from_numpy(np.concatenate([r[i] for r in results])) for i in range(3))
        if self.output_names[0] == OUTPUT_NAMES[0]:
            semseg = semseg.permute(0, 3, 1, 2)
        return {"semseg": semseg.to(self.device), "depth": depth.to(self.device), "normals": normals.to(self.device)}


class TensorRTUnavailableError(RuntimeError):
    """TensorRT (the ``tensorrt`` Python package) or an NVIDIA GPU is missing."""


def onnx_model_hash(onnx_path: str | Path) -> str:
    """sha256 of an ONNX graph file and of its external weights file ``<name>.data`` if there is one."""
    onnx_path = Path(onnx_path)
    digest = hashlib.sha256()
    for part in (onnx_path, onnx_path.with_name(onnx_path.name + ".data")):
        if part.is_file():
            with part.open("rb") as stream:
                for block in iter(lambda: stream.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def engine_cache_key(model_hash: str, input_shape: tuple[int, ...], precision: str, tensorrt_version: str) -> str:
    """Name of a cached engine: it changes with the ONNX model, input shape, precision and TensorRT version."""
    text = f"{model_hash}|{'x'.join(map(str, input_shape))}|{precision}|{tensorrt_version}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _import_tensorrt():
    try:
        import tensorrt
    except (ImportError, OSError) as error:
        raise TensorRTUnavailableError(
            "TensorRT is not installed: the TensorRT path needs an NVIDIA GPU and the `tensorrt` package "
            "(pip install tensorrt, matching your CUDA). Use export_onnx + OnnxRuntimeMTPano or the torch backend."
        ) from error
    if not torch.cuda.is_available():
        raise TensorRTUnavailableError("TensorRT needs an NVIDIA GPU, but CUDA is not available")
    return tensorrt


def build_tensorrt_engine(
    onnx_path: str | Path, cache_dir: str | Path, *, precision: str = "fp16", workspace_gib: float = 4.0
) -> Path:
    """Build (or reuse from ``cache_dir``) a serialized TensorRT engine for an exported MTPano ONNX file.

    The cache file name is ``engine_cache_key`` of the ONNX hash, input shape, precision and TensorRT version.
    Raises ``TensorRTUnavailableError`` without TensorRT or a GPU.
    """
    if precision not in TENSORRT_PRECISIONS:
        raise ValueError(f"precision must be one of {TENSORRT_PRECISIONS}, got {precision!r}")
    trt = _import_tensorrt()
    import onnx

    onnx_path = Path(onnx_path)
    graph_input = onnx.load(str(onnx_path), load_external_data=False).graph.input[0]
    input_shape = tuple(dim.dim_value for dim in graph_input.type.tensor_type.shape.dim)
    if 0 in input_shape:
        raise ValueError(f"{onnx_path} has a symbolic input axis; export it with a fixed batch for TensorRT")
    key = engine_cache_key(onnx_model_hash(onnx_path), input_shape, precision, trt.__version__)
    engine_path = Path(cache_dir) / f"mtpano-{key}.engine"
    if engine_path.is_file():
        return engine_path

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    explicit_batch = 0 if int(trt.__version__.split(".")[0]) >= 10 else (
        1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))
    network = builder.create_network(explicit_batch)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "\n".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}:\n{errors}")
    builder_config = builder.create_builder_config()
    builder_config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if precision == "fp16":
        builder_config.set_flag(trt.BuilderFlag.FP16)
    elif precision == "bf16":
        builder_config.set_flag(trt.BuilderFlag.BF16)
    serialized = builder.build_serialized_network(network, builder_config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path}")
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    partial = engine_path.with_suffix(".partial")
    partial.write_bytes(bytes(serialized))
    partial.replace(engine_path)
    return engine_path
