"""Shared MTPano fixtures: the vendored parity fixture (test/data/mtpano) and the tiny model loaded from it."""
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pano_perception.models.mtpano import build_mtpano

DATA = Path(__file__).resolve().parents[1] / "data" / "mtpano"
STATE_DICT = DATA / "tiny_state_dict.safetensors"


def flatten_outputs(outputs: dict) -> dict[str, torch.Tensor]:
    """The fixture's naming: nested output dicts flattened with '.'."""
    flat = {}
    for key, value in outputs.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{inner}": tensor for inner, tensor in value.items()})
        else:
            flat[key] = value
    return flat


@pytest.fixture(scope="session")
def fixture_model():
    """tiny-fixture network with the fixture's (all random, nothing zero) weights, eval mode."""
    return build_mtpano("tiny-fixture", checkpoint=STATE_DICT).eval()


@pytest.fixture(scope="session")
def fixture_input() -> torch.Tensor:
    return load_file(DATA / "tiny_input.safetensors")["pixel_values"]


@pytest.fixture(scope="session")
def fixture_forward(fixture_model, fixture_input):
    """(flattened outputs, intermediates) of one no-grad forward pass on the fixture input."""
    intermediates = {}
    with torch.no_grad():
        outputs = fixture_model(fixture_input, intermediates=intermediates)
    return flatten_outputs(outputs), intermediates
