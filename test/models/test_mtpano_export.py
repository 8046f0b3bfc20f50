"""ONNX export parity with onnxruntime, the ONNX Runtime predictor backend, and the guarded TensorRT path."""
import importlib.util
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from safetensors.torch import load_file

from pano_perception.models.mtpano.export import (
    OUTPUT_NAMES,
    OnnxRuntimeMTPano,
    TensorRTUnavailableError,
    build_tensorrt_engine,
    engine_cache_key,
    export_onnx,
    onnx_model_hash,
)
from pano_perception.models.mtpano.config import MAIN_TASKS
from pano_perception.models.mtpano.predictor import MTPanoPredictor

DATA = Path(__file__).resolve().parents[1] / "data" / "mtpano"
# ONNX Runtime vs torch on CPU, fp32: the issue asks for 1e-4 on the tiny configuration (observed ~2e-5).
ONNX_TOLERANCE = {"atol": 1e-4, "rtol": 1e-4}
TENSORRT_USABLE = importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available()


@pytest.fixture(scope="module")
def tiny_onnx(fixture_model, tmp_path_factory) -> Path:
    return export_onnx(fixture_model, tmp_path_factory.mktemp("onnx") / "mtpano_tiny.onnx", dynamic_batch=True)


def test_exported_graph_has_the_declared_interface(tiny_onnx):
    graph = onnx.load(str(tiny_onnx), load_external_data=False)
    assert max(opset.version for opset in graph.opset_import if opset.domain in ("", "ai.onnx")) >= 17
    assert [i.name for i in graph.graph.input] == ["pixel_values"]
    assert [o.name for o in graph.graph.output] == list(OUTPUT_NAMES)


def test_onnxruntime_matches_torch_and_the_official_outputs(tiny_onnx, fixture_model, fixture_input):
    expected = load_file(DATA / "tiny_outputs.safetensors")
    with torch.no_grad():
        reference = fixture_model(fixture_input, with_aux=False)
    outputs = OnnxRuntimeMTPano(tiny_onnx)(fixture_input)
    assert outputs["semseg"].is_contiguous(memory_format=torch.channels_last)  # the fast argmax's layout
    for name in MAIN_TASKS:
        torch.testing.assert_close(outputs[name], reference[name], **ONNX_TOLERANCE)
        torch.testing.assert_close(outputs[name], expected[name], **ONNX_TOLERANCE)


def test_symbolic_batch_runs_two_images(tiny_onnx, fixture_model):
    pixel_values = torch.randn(2, 3, 128, 256)
    with torch.no_grad():
        reference = fixture_model(pixel_values, with_aux=False)
    outputs = OnnxRuntimeMTPano(tiny_onnx)(pixel_values)
    for name in MAIN_TASKS:
        torch.testing.assert_close(outputs[name], reference[name], **ONNX_TOLERANCE)


def test_predictor_onnxruntime_backend_agrees_with_torch(tiny_onnx):
    image = np.random.default_rng(0).integers(0, 256, (96, 192, 3), dtype=np.uint8)
    torch_prediction = MTPanoPredictor("tiny-fixture", checkpoint=DATA / "tiny_state_dict.safetensors").predict(image)
    onnx_prediction = MTPanoPredictor("tiny-fixture", backend="onnxruntime", onnx_path=tiny_onnx).predict(image)
    assert (onnx_prediction.semantic == torch_prediction.semantic).mean() > 0.999
    same = onnx_prediction.semantic == torch_prediction.semantic
    np.testing.assert_allclose(onnx_prediction.depth[same], torch_prediction.depth[same], atol=1e-4, rtol=1e-4)


def test_graphs_exported_with_nchw_logits_still_run(tiny_onnx, fixture_model, fixture_input, tmp_path):
    """An export from before semseg_nhwc: the same graph with a transpose back to [B, classes, H, W] named semseg."""
    graph = onnx.load(str(tiny_onnx))
    old_output = graph.graph.output[0]
    graph.graph.node.append(onnx.helper.make_node("Transpose", [old_output.name], ["semseg"], perm=[0, 3, 1, 2]))
    graph.graph.output.remove(old_output)
    graph.graph.output.insert(0, onnx.helper.make_tensor_value_info("semseg", onnx.TensorProto.FLOAT, None))
    legacy = tmp_path / "legacy.onnx"
    onnx.save(graph, str(legacy))
    outputs = OnnxRuntimeMTPano(legacy)(fixture_input)
    with torch.no_grad():
        reference = fixture_model(fixture_input, with_aux=False)
    torch.testing.assert_close(outputs["semseg"], reference["semseg"], **ONNX_TOLERANCE)


def test_onnx_runner_rejects_a_wrong_input_size(tiny_onnx):
    with pytest.raises(ValueError, match="takes"):
        OnnxRuntimeMTPano(tiny_onnx)(torch.zeros(1, 3, 64, 128))


def test_export_requires_opset_17(fixture_model, tmp_path):
    with pytest.raises(ValueError, match="opset"):
        export_onnx(fixture_model, tmp_path / "old.onnx", opset=13)


def test_engine_cache_key_changes_with_model_shape_precision_and_version(tmp_path):
    base = engine_cache_key("abc", (1, 3, 512, 1024), "fp16", "10.3.0")
    assert base == engine_cache_key("abc", (1, 3, 512, 1024), "fp16", "10.3.0")
    variants = [
        engine_cache_key("abd", (1, 3, 512, 1024), "fp16", "10.3.0"),
        engine_cache_key("abc", (1, 3, 256, 512), "fp16", "10.3.0"),
        engine_cache_key("abc", (1, 3, 512, 1024), "bf16", "10.3.0"),
        engine_cache_key("abc", (1, 3, 512, 1024), "fp16", "10.4.0"),
    ]
    assert len({base, *variants}) == 5
    graph, weights = tmp_path / "m.onnx", tmp_path / "m.onnx.data"
    graph.write_bytes(b"graph")
    weights.write_bytes(b"weights")
    first = onnx_model_hash(graph)
    weights.write_bytes(b"other weights")
    assert onnx_model_hash(graph) != first


@pytest.mark.skipif(TENSORRT_USABLE, reason="TensorRT and a GPU are present")
def test_tensorrt_absent_is_a_clear_error(tiny_onnx, tmp_path):
    with pytest.raises(TensorRTUnavailableError, match="TensorRT|GPU"):
        build_tensorrt_engine(tiny_onnx, tmp_path)


@pytest.mark.skipif(not TENSORRT_USABLE, reason="needs the tensorrt package and an NVIDIA GPU")
def test_tensorrt_engine_is_built_once_and_cached(fixture_model, tmp_path):
    onnx_path = export_onnx(fixture_model, tmp_path / "fixed.onnx")
    engine = build_tensorrt_engine(onnx_path, tmp_path / "engines", precision="fp16")
    modified = engine.stat().st_mtime_ns
    assert build_tensorrt_engine(onnx_path, tmp_path / "engines", precision="fp16") == engine
    assert engine.stat().st_mtime_ns == modified
