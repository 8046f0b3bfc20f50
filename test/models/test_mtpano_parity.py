"""Numeric parity with the official MTPano code (shared/fixtures/mtpano, vendored in test/data/mtpano)."""
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

DATA = Path(__file__).resolve().parents[1] / "data" / "mtpano"

# The fixture's tolerance for a clean-room implementation (its fp32-vs-fp64 error is <= 2e-5).
TOLERANCE = {"atol": 1e-4, "rtol": 1e-4}
OUTPUTS_IN_FORWARD_ORDER = [
    "aux_preds.semseg", "aux_preds.depth", "aux_preds.normals",
    "ext_preds.grad", "ext_preds.sdf", "ext_preds.point",
    "semseg", "depth", "normals",
]
EXPECTED_OUTPUTS = load_file(DATA / "tiny_outputs.safetensors")
EXPECTED_INTERMEDIATES = load_file(DATA / "tiny_intermediates_subset.safetensors")


def test_outputs_have_the_official_keys_order_shapes_and_dtype(fixture_forward):
    outputs, _ = fixture_forward
    assert list(outputs) == OUTPUTS_IN_FORWARD_ORDER
    for name, expected in EXPECTED_OUTPUTS.items():
        assert outputs[name].shape == expected.shape, name
        assert outputs[name].dtype == torch.float32, name


@pytest.mark.parametrize("name", OUTPUTS_IN_FORWARD_ORDER)
def test_every_output_matches_the_official_code(fixture_forward, name):
    outputs, _ = fixture_forward
    difference = (outputs[name] - EXPECTED_OUTPUTS[name]).abs().max().item()
    assert torch.allclose(outputs[name], EXPECTED_OUTPUTS[name], **TOLERANCE), f"{name}: max |diff| {difference:.3g}"


def _in_forward_order(name: str) -> tuple:
    stages = ["backbone", "feature_grouping", "aggregator", "aux_heads", "extended_heads", "bfe", "necks"]
    return next(i for i, stage in enumerate(stages) if name.startswith(stage)), name


def test_intermediates_match_and_the_first_mismatch_is_named(fixture_forward):
    """Compared in forward order, so a failure names the first stage that diverges."""
    _, intermediates = fixture_forward
    assert set(EXPECTED_INTERMEDIATES) <= set(intermediates)
    for name in sorted(EXPECTED_INTERMEDIATES, key=_in_forward_order):
        got, expected = intermediates[name], EXPECTED_INTERMEDIATES[name]
        assert got.shape == expected.shape, f"first mismatch at {name}: shape {got.shape} vs {expected.shape}"
        difference = (got - expected).abs().max().item()
        assert torch.allclose(got, expected, **TOLERANCE), f"first mismatch at {name}: max |diff| {difference:.3g}"


def test_max_abs_difference_is_far_below_the_tolerance(fixture_forward):
    """Our ops follow the release's order of operations: on CPU the difference is ~0, not just < 1e-4."""
    outputs, _ = fixture_forward
    worst = max((outputs[name] - expected).abs().max().item() for name, expected in EXPECTED_OUTPUTS.items())
    assert worst < 2e-5
