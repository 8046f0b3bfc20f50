"""Auxiliary labels: jump flooding against the exact distance transform, Sobel, point maps, official frames."""
import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from pano_perception.geometry import erp_rays
from pano_perception.models.mtpano.postprocess import official_normals_to_ours
from training.mtpano.aux_labels import (
    decode_points_mm,
    distance_to_seeds,
    edge_mask,
    encode_points_mm,
    gradient_magnitude_direction,
    image_aux_targets,
    points_from_depth,
    sobel,
)
from training.mtpano.frames import to_official_frame


@pytest.mark.parametrize("shape,density", [((64, 128), 0.01), ((37, 91), 0.05), ((128, 256), 0.0005),
                                           ((16, 32), 0.3)])
def test_jump_flooding_matches_the_exact_distance_transform(shape, density):
    seeds = torch.rand((3, *shape), generator=torch.Generator().manual_seed(1)) < density
    seeds[:, 0, 0] = True  # at least one seed per image
    distance = distance_to_seeds(seeds).numpy()
    exact = np.stack([ndimage.distance_transform_edt(~s.numpy()) for s in seeds])
    np.testing.assert_allclose(distance, exact, atol=1e-4)


def test_jump_flooding_on_structured_edges_and_without_seeds():
    seeds = torch.zeros(1, 64, 128, dtype=torch.bool)
    seeds[0, 10, 5:120] = True  # a line and a lone point: the classic JFA failure cases are corners of Voronoi cells
    seeds[0, 50, 64] = True
    exact = ndimage.distance_transform_edt(~seeds[0].numpy())
    np.testing.assert_allclose(distance_to_seeds(seeds)[0].numpy(), exact, atol=1e-4)
    empty = distance_to_seeds(torch.zeros(1, 8, 16, dtype=torch.bool))
    assert torch.allclose(empty, torch.full_like(empty, math.hypot(8, 16)))


def test_sobel_of_a_ramp_and_across_the_seam():
    ramp = torch.arange(16.0).view(1, 1, 1, 16).expand(1, 1, 8, 16).contiguous()
    gradient = sobel(ramp)
    assert torch.all(gradient[0, 0, :, 1:-1] == 8.0) and torch.all(gradient[0, 1] == 0)
    # the seam wraps: column 0's left neighbour is column 15
    assert torch.all(gradient[0, 0, :, 0] == 4 * (1 - 15))
    magnitude, direction = gradient_magnitude_direction(gradient)
    assert torch.allclose(magnitude[0, 0, :, 5], torch.tensor(8.0)) and torch.all(direction[0, 0, :, 5] == 0)
    vertical = sobel(torch.arange(8.0).view(1, 1, 8, 1).expand(1, 1, 8, 16).contiguous())
    assert torch.all(vertical[0, 1, 1:-1] == 8.0)  # y grows downwards
    _, up = gradient_magnitude_direction(vertical)
    assert torch.allclose(up[0, 0, 3], torch.tensor(math.pi / 2))


def test_edge_mask_and_targets():
    rgb = torch.zeros(2, 3, 32, 64)
    rgb[:, :, :, 20:] = 1.0  # one vertical step edge
    edges = edge_mask(gradient_magnitude_direction(sobel(rgb.mean(1, keepdim=True)))[0])
    assert edges[:, 2:-2, 19:21].all() and edges.sum() == 2 * 2 * 28  # border rows cleared
    targets = image_aux_targets(rgb)
    assert targets["grad"].shape == (2, 2, 32, 64) and targets["sdf"].shape == (2, 1, 32, 64)
    assert torch.allclose(targets["sdf"][0, 0, 16, 30], torch.log1p(torch.tensor(10.0)))


def test_point_maps_in_millimetres():
    depth = torch.full((4, 8), 2.0)
    depth[0, 0] = float("nan")
    points = points_from_depth(depth)
    assert torch.allclose(points.norm(dim=0)[1:], torch.tensor(2.0))
    np.testing.assert_allclose(points.permute(1, 2, 0)[2, 3].numpy(), 2.0 * erp_rays(4, 8, numpy=True)[2, 3],
                               rtol=1e-6)
    metres = np.array([[1.2344, -3.0, 0.5], [np.nan, 0.0, 0.0], [40.0, 0.0, 0.0]], np.float32)
    coded = encode_points_mm(metres)
    assert coded.dtype == np.int16 and coded[0].tolist() == [1234, -3000, 500]
    decoded = decode_points_mm(coded)
    np.testing.assert_allclose(decoded[0], [1.234, -3.0, 0.5])
    assert np.isnan(decoded[1:]).all()  # invalid and out-of-range (> 32.767 m) points


def test_targets_in_the_official_frames():
    normals = torch.randn(2, 3, 4, 8)
    assert torch.equal(official_normals_to_ours(to_official_frame(normals, "normals")), normals)
    # point maps: the release's S-space ray s = (cos φ sin θ, sin φ, −cos φ cos θ), θ = lon, φ = −lat
    height, width = 16, 32
    rays = erp_rays(height, width).permute(2, 0, 1)[None]
    lon = (torch.arange(width) + 0.5) / width * 2 * math.pi - math.pi
    lat = math.pi / 2 - (torch.arange(height) + 0.5) / height * math.pi
    theta, phi = lon.view(1, -1).expand(height, -1), -lat.view(-1, 1).expand(-1, width)
    s_space = torch.stack([phi.cos() * theta.sin(), phi.sin(), -phi.cos() * theta.cos()])[None]
    assert torch.allclose(to_official_frame(rays, "points"), s_space, atol=1e-6)
    with pytest.raises(ValueError):
        to_official_frame(rays, "depth")
