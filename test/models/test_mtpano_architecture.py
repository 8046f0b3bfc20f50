"""State-dict layout of every configuration, the spherical buffers, the configs and the seam option."""
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from pano_perception.models.mtpano import (
    CONFIGS,
    MTPanoConfig,
    build_mtpano,
    get_config,
)
from pano_perception.models.mtpano.modules import (
    EquiRectangularDualConv,
    spherical_grid,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "mtpano"
MANIFEST = json.loads((DATA / "mtpano_large_state_dict_manifest.json").read_text())


@pytest.fixture(scope="module")
def large_on_meta():
    return build_mtpano("large", device="meta")


def test_large_has_all_1201_official_keys_in_order_with_shapes_dtypes_and_kinds(large_on_meta):
    state = large_on_meta.state_dict()
    expected = MANIFEST["state_dict"]
    assert len(state) == len(expected) == 1201
    assert list(state) == list(expected)
    parameters = {name for name, _ in large_on_meta.named_parameters()}
    for key, entry in expected.items():
        assert list(state[key].shape) == entry["shape"], key
        assert str(state[key].dtype).removeprefix("torch.") == entry["dtype"], key
        assert (key in parameters) == (entry["kind"] == "parameter"), key


def test_large_parameter_totals_match_the_release(large_on_meta):
    totals = MANIFEST["totals"]
    assert sum(p.numel() for p in large_on_meta.parameters()) == totals["parameters_total"] == 589_514_490
    for module, counts in MANIFEST["counts_by_module"].items():
        if module in ("RayDir", "PE"):
            continue
        submodule = large_on_meta.get_submodule(module)
        assert sum(p.numel() for p in submodule.parameters()) == counts["parameters"], module
    non_persistent = {name for name, _ in large_on_meta.named_buffers()} - set(large_on_meta.state_dict())
    assert non_persistent == set(totals["non_persistent_buffers_not_in_state_dict"])


def test_tiny_fixture_config_has_exactly_the_fixture_state_dict():
    with safe_open(DATA / "tiny_state_dict.safetensors", "pt") as checkpoint:
        shapes = {key: list(checkpoint.get_slice(key).get_shape()) for key in checkpoint.keys()}
    state = build_mtpano("tiny-fixture", device="meta").state_dict()
    assert {key: list(tensor.shape) for key, tensor in state.items()} == shapes
    assert len(state) == 861


def test_spherical_buffers_are_built_bit_for_bit_like_the_release():
    with safe_open(DATA / "tiny_state_dict.safetensors", "pt") as checkpoint:
        ray_dir, position = checkpoint.get_tensor("RayDir"), checkpoint.get_tensor("PE")
    built_ray, built_position = spherical_grid(8, 16)
    assert torch.equal(built_ray, ray_dir) and torch.equal(built_position, position)
    assert built_ray[0, 1, 0].eq(1).all(), "internal frame: ray y is +1 on the top row"
    torch.testing.assert_close(built_ray.norm(dim=1), torch.ones(1, 8, 16))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_named_config_builds_on_meta(name):
    config = get_config(name)
    model = build_mtpano(name, device="meta")
    assert model.RayDir.shape == (1, 3, *config.patch_grid)
    assert model.heads["semseg"].head[4].out_channels == config.num_semseg_classes


def test_small_cpu_configs_have_few_million_parameter_backbones():
    for name, most in (("small-cpu", 16e6), ("micro-cpu", 4e6)):
        model = build_mtpano(name, device="meta")
        assert sum(p.numel() for p in model.backbone.parameters()) < 3e6, name
        assert sum(p.numel() for p in model.parameters()) < most, name


def test_a_small_cpu_config_runs_forward_with_the_official_output_layout():
    model = build_mtpano("micro-cpu").eval()
    with torch.no_grad():
        outputs = model(torch.randn(2, 3, 128, 256))
    assert list(outputs) == ["aux_preds", "ext_preds", "semseg", "depth", "normals"]
    assert outputs["semseg"].shape == (2, 150, 128, 256)
    assert outputs["depth"].shape == (2, 1, 128, 256) and outputs["depth"].min() >= 0
    assert outputs["normals"].shape == (2, 3, 128, 256)
    assert outputs["ext_preds"]["grad"].shape == (2, 2, 128, 256)


def test_wrong_input_size_and_bad_configs_are_rejected():
    model = build_mtpano("micro-cpu").eval()
    with pytest.raises(ValueError, match="expects"):
        model(torch.zeros(1, 3, 64, 128))
    with pytest.raises(ValueError, match="unknown MTPano config"):
        get_config("huge")
    with pytest.raises(ValueError, match="2:1"):
        MTPanoConfig(name="bad", image_size=(128, 128), num_semseg_classes=2, hidden_size=64,
                     intermediate_size=128, num_layers=4, num_heads=4, tap_layers=(0, 1, 2, 3))
    with pytest.raises(ValueError, match="seam"):
        build_mtpano("micro-cpu", seam="mirror", device="meta")


def test_wrap_seam_has_the_same_state_dict_and_changes_only_the_border_columns(fixture_model, fixture_input):
    wrapped = build_mtpano("tiny-fixture", seam="wrap")
    wrapped.load_state_dict(fixture_model.state_dict())
    wrapped.eval()
    official_features, wrapped_features = {}, {}
    with torch.no_grad():
        fixture_model(fixture_input, with_aux=False, intermediates=official_features)
        wrapped(fixture_input, with_aux=False, intermediates=wrapped_features)
    official, ours = official_features["feature_grouping.0.invariant"], wrapped_features["feature_grouping.0.invariant"]
    assert not torch.allclose(official, ours)
    # Two stacked blocks of 9-wide kernels reach 8 columns from each border; columns further in are unchanged.
    torch.testing.assert_close(official[..., 8:-8], ours[..., 8:-8], rtol=0, atol=0)


def test_wrap_mixer_is_equivariant_to_horizontal_rotation():
    torch.manual_seed(0)
    mixer = EquiRectangularDualConv(4, seam="wrap")
    ray_dir, _ = spherical_grid(8, 16)
    x = torch.randn(1, 4, 8, 16)
    with torch.no_grad():
        rotated_then_mixed = mixer(x.roll(5, dims=-1), ray_dir)
        mixed_then_rotated = mixer(x, ray_dir).roll(5, dims=-1)
    torch.testing.assert_close(rotated_then_mixed, mixed_then_rotated)
