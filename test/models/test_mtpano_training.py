"""Training-time properties: the gradient-truncated bridge and the identity initialisation."""
import pytest
import torch

from pano_perception.models.mtpano import build_mtpano
from pano_perception.models.mtpano.config import (
    INVARIANT_TASKS,
    MAIN_TASKS,
    VARIANT_TASKS,
)

STREAM_TOKENS = {
    "invariant": ["aggregator_inv", "bfe_invariant"] + [f"feature_grouping.{i}.invariant" for i in range(4)],
    "variant": ["aggregator_var", "bfe_variant"] + [f"feature_grouping.{i}.variant" for i in range(4)],
}
STREAM_TASKS = {"invariant": INVARIANT_TASKS, "variant": VARIANT_TASKS}
OTHER = {"invariant": "variant", "variant": "invariant"}


def _task_feature(task: str) -> str:
    return f"{'aux_heads' if task in MAIN_TASKS else 'extended_heads'}.{task}.task_feat"


def _stream_loss(outputs: dict, stream: str) -> torch.Tensor:
    """Sum of squares of every output (main, aux, extended) of the stream's tasks."""
    tasks = STREAM_TASKS[stream]
    terms = [outputs[task] for task in tasks if task in MAIN_TASKS]
    terms += [outputs["aux_preds"][task] for task in tasks if task in MAIN_TASKS]
    terms += [outputs["ext_preds"][task] for task in tasks if task not in MAIN_TASKS]
    return sum(term.square().mean() for term in terms)


def _gradients(model, pixel_values, stream):
    intermediates = {}
    outputs = model(pixel_values, intermediates=intermediates)
    names = STREAM_TOKENS["invariant"] + STREAM_TOKENS["variant"] + [_task_feature(t) for t in
                                                                     INVARIANT_TASKS + VARIANT_TASKS]
    grads = torch.autograd.grad(_stream_loss(outputs, stream), [intermediates[n] for n in names],
                                allow_unused=True)
    return {name: (None if g is None else g.abs().max().item()) for name, g in zip(names, grads)}


@pytest.mark.parametrize("stream", ["invariant", "variant"])
def test_a_streams_losses_send_no_gradient_into_the_other_streams_tokens(fixture_model, fixture_input, stream):
    gradients = _gradients(fixture_model, fixture_input, stream)
    other = OTHER[stream]
    for name in STREAM_TOKENS[other] + [_task_feature(t) for t in STREAM_TASKS[other]]:
        assert not gradients[name], f"{stream} losses reach {name}"
    for name in STREAM_TOKENS[stream] + [_task_feature(t) for t in STREAM_TASKS[stream]]:
        assert gradients[name], f"{stream} losses do not reach {name}"


def test_without_the_detach_the_gradient_would_cross_streams(fixture_model, fixture_input, monkeypatch):
    """The check above is meaningful: with every bridge token trainable, normals losses reach semseg features."""
    monkeypatch.setattr(fixture_model.bfe_variant, "own_tasks", INVARIANT_TASKS + VARIANT_TASKS)
    assert _gradients(fixture_model, fixture_input, "variant")["aux_heads.semseg.task_feat"]


def test_detached_kv_convs_get_no_parameter_gradient(fixture_model, fixture_input):
    fixture_model.zero_grad(set_to_none=True)
    outputs = fixture_model(fixture_input)
    (_stream_loss(outputs, "invariant") + _stream_loss(outputs, "variant")).backward()
    for bridge, own in ((fixture_model.bfe_invariant, INVARIANT_TASKS), (fixture_model.bfe_variant, VARIANT_TASKS)):
        for task, conv in bridge.kv_squeeze.items():
            assert (conv.weight.grad is not None) == (task in own), task
    fixture_model.zero_grad(set_to_none=True)


def test_with_our_initialisation_refiners_and_injections_are_the_identity():
    torch.manual_seed(0)
    model = build_mtpano("tiny-fixture").eval()
    pixel_values = torch.randn(2, 3, 128, 256)
    intermediates = {}
    with torch.no_grad():
        taps = model.backbone_taps(pixel_values)
        model(pixel_values, intermediates=intermediates)
    for level, (cls, patches) in enumerate(taps):
        assert torch.equal(intermediates[f"feature_grouping.{level}.invariant"], patches)
        assert torch.equal(intermediates[f"feature_grouping.{level}.variant"], patches)
        expected_tokens = torch.cat([cls, patches.flatten(2).transpose(1, 2)], dim=1)
        for task in MAIN_TASKS:
            assert torch.equal(intermediates[f"necks.{task}.input_tokens.{level}"], expected_tokens)


def test_the_zero_initialised_layers_are_exactly_zero_and_train():
    model = build_mtpano("micro-cpu")
    zero_layers = [model.inv_injectors, model.var_injectors, model.aux_injectors]
    zero_layers += [adapter[3] for adapters in model.task_adapters.values() for adapter in adapters]
    for refiner in model.feature_grouping:
        zero_layers += [block.conv2 for block in [*refiner.invariant_layers, *refiner.variant_layers]]
        zero_layers += [block.geo_mlp[2] for block in refiner.variant_layers]
    zero_parameters = [p for layer in zero_layers for p in layer.parameters()]
    assert all(p.eq(0).all() for p in zero_parameters)

    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
    outputs = model(torch.randn(1, 3, 128, 256))
    sum(o.square().mean() for o in (outputs["semseg"], outputs["depth"], outputs["normals"])).backward()
    optimizer.step()
    assert any(p.ne(0).any() for p in zero_parameters), "zero-initialised layers must still learn"
