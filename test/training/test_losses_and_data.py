"""Losses on hand-computed cases; the training data: exact augmentation, deterministic resumable order."""
import math

import numpy as np
import pytest
import torch

from pano_perception.geometry import erp_rays
from training.mtpano import losses
from training.mtpano.config import LossConfig
from training.mtpano.data import PseudoLabelDataset, augment_erp
from training.runtime import ResumableSampler


def test_semantic_loss_is_patch_wise_and_ignores_unlabelled():
    logits = torch.zeros(1, 4, 2, 2)
    logits[0, 1] = 10.0
    target = torch.full((1, 2, 2, 2), 255)
    target[0, 0, 0, 0] = 1  # patch 0: one confident, correct pixel
    target[0, 1] = 0  # patch 1: four wrong pixels
    expected_right = math.log(1 + 3 * math.exp(-10))
    expected_wrong = 10 + math.log(1 + 3 * math.exp(-10))
    assert losses.semantic_loss(logits, target).item() == pytest.approx((expected_right + expected_wrong) / 2)


def test_class_weighted_cross_entropy():
    logits = torch.zeros(1, 3, 1, 2)
    target = torch.tensor([[[[0, 1]]]])
    weights = torch.tensor([1.0, 3.0, 1.0])
    logits[0, 0, 0, 0] = 2.0  # pixel 0 (class 0) nearly right, pixel 1 (class 1) uniform
    nll = torch.tensor([math.log(2 + math.exp(2.0)) - 2.0, math.log(3.0)])
    assert losses.semantic_loss(logits, target, weights).item() == pytest.approx(((nll[0] + 3 * nll[1]) / 4).item())
    assert losses.semantic_loss(logits, target).item() == pytest.approx(nll.mean().item())
    counts = torch.tensor([98.0, 2.0, 0.0])
    np.testing.assert_allclose(losses.enet_class_weights(counts).numpy(),
                               [1 / math.log(1.02 + 0.98), 1 / math.log(1.04), 1 / math.log(1.02)], rtol=1e-6)


def test_depth_loss_is_scale_aware():
    target = torch.full((1, 1, 4, 4), 2.0)
    target[0, 0, 0] = float("nan")
    for scale in (1.0, 2.0):
        value = losses.depth_loss(scale * torch.full((1, 1, 4, 4), 2.0), target, silog_lambda=0.85).item()
        assert value == pytest.approx(math.sqrt(max(1e-8, (1 - 0.85) * math.log(scale) ** 2)), rel=1e-4)
    assert losses.depth_loss(torch.ones(1, 1, 4, 4), torch.full((1, 1, 4, 4), math.nan), 0.85).item() == 0


def test_normal_loss_is_the_mean_angle():
    pred = torch.zeros(1, 3, 1, 2)
    pred[0, 0] = 5.0  # (1, 0, 0), not unit: normalised first
    target = torch.zeros(1, 1, 3, 1, 2)
    target[0, 0, 0, 0, 0] = 1.0
    target[0, 0, 1, 0, 1] = 1.0  # 90 degrees off
    assert losses.normal_loss(pred, target).item() == pytest.approx(math.pi / 4, abs=1e-3)


def test_geometry_loss_ignores_offsets_and_sees_gradients():
    target = torch.linspace(1, 2, 16).view(1, 1, 1, 16).expand(1, 1, 8, 16).contiguous()
    valid = torch.ones(1, 1, 8, 16, dtype=torch.bool)
    same_slope = target + 3.0
    assert losses.geometry_loss(same_slope[:, None], target[:, :, None], valid).item() == pytest.approx(0, abs=1e-6)
    flat = torch.ones_like(target)
    assert losses.geometry_loss(flat[:, None], target[:, :, None], valid).item() > 0


def test_total_loss_terms_follow_the_switches():
    height, width = 8, 16
    outputs = {"semseg": torch.zeros(1, 150, height, width), "depth": torch.ones(1, 1, height, width),
               "normals": torch.ones(1, 3, height, width)}
    outputs["aux_preds"] = {k: v.clone() for k, v in outputs.items()}
    outputs["ext_preds"] = {"grad": torch.zeros(1, 2, height, width), "sdf": torch.zeros(1, 1, height, width),
                            "point": torch.zeros(1, 3, height, width)}
    batch = {"semantic": torch.zeros(1, 1, height, width, dtype=torch.long), "depth": torch.ones(1, 1, height, width),
             "normals": torch.ones(1, 1, 3, height, width) / math.sqrt(3), "points": torch.ones(1, 1, 3, height, width),
             "grad": torch.ones(1, 2, height, width), "sdf": torch.ones(1, 1, height, width)}
    config = LossConfig()
    total, terms = losses.total_loss(outputs, batch, config, ("semseg", "depth", "normals"), aux_heads=True)
    assert set(terms) == {"semseg", "deep_semseg", "depth", "deep_depth", "normals", "deep_normals", "geo_depth",
                          "geo_normals", "grad", "sdf", "point"}
    expected = (1 + config.deep_supervision) * math.log(150) + config.aux * 3.0
    assert total.item() == pytest.approx(expected, rel=1e-3)
    _, single = losses.total_loss(outputs, batch, config, ("depth",), aux_heads=False)
    assert set(single) == {"depth", "deep_depth", "geo_depth"}


def test_augmentation_turns_vectors_with_the_image():
    height, width = 8, 16
    rays = erp_rays(height, width, numpy=True)
    arrays = {"rays": rays[None], "index": np.arange(height * width).reshape(1, height, width)}
    for flip in (False, True):
        for shift in (0, 3, 11):
            out = augment_erp(arrays, ("rays",), ("rays",), flip, shift)
            # every pixel still holds the ray of its own direction: labels and image moved consistently
            np.testing.assert_allclose(out["rays"][0], rays, atol=1e-6)
            source = out["index"][0, 2, (shift + 1) % width]
            assert source == 2 * width + ((width - 1 - 1) if flip else 1)


def test_sampler_is_a_function_of_the_step():
    stream = iter(ResumableSampler(10, 3, seed=4, rank=1, world_size=2))
    first = [next(stream) for _ in range(7)]
    resumed = iter(ResumableSampler(10, 3, seed=4, rank=1, world_size=2, start_step=4))
    assert [next(resumed) for _ in range(3)] == first[4:]
    ranks = [iter(ResumableSampler(10, 5, seed=4, rank=r, world_size=2)) for r in (0, 1)]
    epoch = [panorama for stream in ranks for panorama, _ in next(stream)]
    assert sorted(epoch) == list(range(10)) and epoch != list(range(10))  # one shuffled epoch over both ranks


def test_dataset_items(tiny_cache):
    dataset = PseudoLabelDataset(tiny_cache, crops_per_sample=3, seed=0)
    item = dataset[(1, 5)]
    assert item["image"].shape == (3, 128, 256) and item["semantic"].shape == (3, 128, 256)
    assert item["normals"].shape == (3, 3, 128, 256) and item["points"].shape == (3, 3, 128, 256)
    again = dataset[(1, 5)]
    assert all(torch.equal(torch.nan_to_num(item[k]), torch.nan_to_num(again[k])) for k in item)
    valid = torch.isfinite(item["normals"]).all(1)
    assert valid.any() and torch.allclose(item["normals"].norm(dim=1)[valid], torch.tensor(1.0), atol=1e-3)
    # points (official S-space) have the length of the depth
    ok = torch.isfinite(item["points"]).all(1) & torch.isfinite(item["depth"])
    assert torch.allclose(item["points"].norm(dim=1)[ok], item["depth"][ok], rtol=1e-3, atol=2e-3)  # float16 depth
