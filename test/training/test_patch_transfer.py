"""patch_transfer.py: a micro-cpu-p8 network started from micro-cpu weights computes what its docstring claims."""
import pytest
import torch
import torch.nn.functional as F

from pano_perception.models.mtpano import build_mtpano
from pano_perception.models.mtpano.config import MICRO_CPU, MICRO_CPU_P8, TINY_FIXTURE
from training.mtpano.patch_transfer import check_transferable, transfer_state_dict
from training.mtpano.train import Trainer
from training.mtpano.config import load_config


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    source = build_mtpano(MICRO_CPU).eval()
    with torch.no_grad():  # non-trivial biases, so the folded projection bias is checked too
        for p in source.parameters():
            p.add_(0.05 * torch.randn_like(p))
    target = build_mtpano(MICRO_CPU_P8).eval()
    target.load_state_dict(transfer_state_dict(source.state_dict(), MICRO_CPU, target))
    return source, target


def test_patch_embedding_equals_source_on_nearest_upsampled_image(models):
    source, target = models
    image = torch.randn(1, 3, 128, 256)
    upsampled = F.interpolate(image, scale_factor=2, mode="nearest")
    with torch.no_grad():
        expected = source.backbone.embeddings.patch_embeddings(upsampled)
        actual = target.backbone.embeddings.patch_embeddings(image)
    assert actual.shape == expected.shape == (1, 96, 16, 32)
    torch.testing.assert_close(actual, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("task", ["semseg", "depth", "normals"])
def test_reassembled_maps_are_the_source_maps_average_pooled(models, task):
    """Levels 0-2 exactly (2x2 average of the source's map on the same tokens); level 3 keeps its shape."""
    source, target = models
    h, w = MICRO_CPU_P8.patch_grid
    tokens = [torch.randn(2, 1 + h * w, 96) for _ in range(4)]
    with torch.no_grad():
        expected = source.necks[task].reassemble_stage(tokens, h, w)
        actual = target.necks[task].reassemble_stage(tokens, h, w)
    for level in range(3):
        pooled = F.avg_pool2d(expected[level], 2)
        assert actual[level].shape == pooled.shape
        torch.testing.assert_close(actual[level], pooled, atol=1e-4, rtol=1e-4)
    assert actual[3].shape[-2:] == (h // 4, w // 4)


def test_target_keeps_its_grid_buffers_and_output_size(models):
    _, target = models
    assert target.RayDir.shape[-2:] == MICRO_CPU_P8.patch_grid == (16, 32)
    with torch.no_grad():
        outputs = target(torch.randn(1, 3, 128, 256), with_aux=False)
    assert outputs["semseg"].shape == (1, 150, 128, 256) and outputs["depth"].shape == (1, 1, 128, 256)
    assert torch.isfinite(outputs["normals"]).all()


def test_unrelated_configs_are_refused():
    with pytest.raises(ValueError, match="must halve"):
        check_transferable(MICRO_CPU, TINY_FIXTURE)


def test_trainer_starts_from_a_transferred_checkpoint(models, tmp_path, tiny_cache):
    source, _ = models
    from safetensors.torch import save_file
    weights = tmp_path / "source.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(weights))
    config = load_config(None, [
        "model.config=micro-cpu-p8", f"model.checkpoint={weights}", "model.checkpoint_config=micro-cpu",
        f"data.cache={tiny_cache}", "optim.steps=1", "optim.batch_size=1", f"run.out_dir={tmp_path / 'run'}",
        "run.threads=1"])
    trainer = Trainer(config, progress=False)
    embed = trainer.model.backbone.embeddings.patch_embeddings.weight
    expected = source.backbone.embeddings.patch_embeddings.weight.reshape(96, 3, 8, 2, 8, 2).sum((3, 5))
    torch.testing.assert_close(embed, expected)
