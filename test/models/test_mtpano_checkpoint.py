"""Checkpoint loading: formats, nesting, prefixes, strictness and refusal of unsafe pickles."""
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pano_perception.models.mtpano import (
    CheckpointError,
    CheckpointMismatchError,
    build_mtpano,
    load_checkpoint,
    read_state_dict,
)

STATE_DICT = Path(__file__).resolve().parents[1] / "data" / "mtpano" / "tiny_state_dict.safetensors"


@pytest.fixture(scope="module")
def fixture_state() -> dict[str, torch.Tensor]:
    return load_file(STATE_DICT)


def _assert_loaded(model, state):
    loaded = model.state_dict()
    assert all(torch.equal(loaded[key], tensor) for key, tensor in state.items())


@pytest.mark.parametrize("wrap", ["plain", "module_prefix", "model", "state_dict", "nested_with_metadata"])
def test_official_style_pth_files_load(tmp_path, fixture_state, wrap):
    state = fixture_state
    if wrap == "module_prefix":
        state = {f"module.{key}": tensor for key, tensor in state.items()}
    content = {
        "plain": state,
        "module_prefix": state,
        "model": {"model": state},
        "state_dict": {"state_dict": state},
        "nested_with_metadata": {"epoch": 7, "best": 0.5, "tag": "v1", "model": {"module." + k: v for k, v in
                                                                                  state.items()}},
    }[wrap]
    path = tmp_path / "checkpoint.pth"
    torch.save(content, path)
    model = build_mtpano("tiny-fixture")
    report = load_checkpoint(model, path)
    assert report.ok and report.loaded == 861
    _assert_loaded(model, fixture_state)


def test_safetensors_loads_through_build_mtpano(fixture_state):
    model = build_mtpano("tiny-fixture", checkpoint=STATE_DICT)
    _assert_loaded(model, fixture_state)


def test_mismatched_shapes_missing_and_unexpected_keys_are_reported(fixture_state):
    state = dict(fixture_state)
    state["heads.semseg.head.4.weight"] = torch.zeros(150, 32, 1, 1)
    state["heads.semseg.head.4.bias"] = torch.zeros(150)
    del state["RayDir"]
    state["decoder.extra.weight"] = torch.zeros(3)
    model = build_mtpano("tiny-fixture")
    before = {key: tensor.clone() for key, tensor in model.state_dict().items()}

    with pytest.raises(CheckpointMismatchError) as raised:
        load_checkpoint(model, state)
    report = raised.value.report
    assert report.missing == ["RayDir"]
    assert report.unexpected == ["decoder.extra.weight"]
    assert [key for key, _, _ in report.mismatched] == ["heads.semseg.head.4.weight", "heads.semseg.head.4.bias"]
    message = str(raised.value)
    assert "heads.semseg.head.4.weight: checkpoint [150, 32, 1, 1] vs network [13, 32, 1, 1]" in message
    assert "missing: RayDir" in message and "unexpected: decoder.extra.weight" in message
    assert all(torch.equal(model.state_dict()[key], before[key]) for key in before), "strict failure loads nothing"

    report = load_checkpoint(model, state, strict=False)
    assert not report.ok and report.loaded == 861 - 3
    assert torch.equal(model.state_dict()["heads.depth.head.0.weight"], fixture_state["heads.depth.head.0.weight"])
    assert torch.equal(model.state_dict()["heads.semseg.head.4.bias"], before["heads.semseg.head.4.bias"])


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="MTPano checkpoint not found.*docs/MTPANO.md"):
        build_mtpano("tiny-fixture", checkpoint=tmp_path / "mtpano_large.pth")


class Payload:
    """An arbitrary object: unpickling it could run code, so the loader must refuse the file."""

    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_pickle_with_arbitrary_objects_is_refused(tmp_path, fixture_state, capsys):
    path = tmp_path / "unsafe.pth"
    torch.save({"model": fixture_state, "config": Payload()}, path)
    with pytest.raises(CheckpointError, match="refusing to unpickle"):
        read_state_dict(path)
    assert "this must never run" not in capsys.readouterr().out


def test_a_file_without_a_state_dict_is_a_clear_error(tmp_path):
    path = tmp_path / "empty.pth"
    torch.save({"epoch": 3, "optimizer": {"lr": 0.1}}, path)
    with pytest.raises(CheckpointError, match="no state dict found"):
        read_state_dict(path)
