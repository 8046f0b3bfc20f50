"""The SAP evaluation protocol on hand-made masks: click placement (seam and pole aware), error correction, strata,
the ERP windows of the patchify baseline, and every method end to end on a tiny panorama."""
import math

import numpy as np
import pytest

from pano_perception.geometry import lonlat_to_ray
from pano_perception.models.sap import BackendSpec, create_backend
from training.eval.sap_eval import (
    METHODS,
    ErpWindow,
    at_seam_or_pole,
    build_methods,
    correction_click,
    evaluate_method,
    farthest_from_boundary,
    markdown_table,
    size_class,
    summarise,
)
from training.sap.data import PanoramaCollection

H, W = 64, 128


def test_first_click_is_the_deepest_pixel():
    mask = np.zeros((H, W), bool)
    mask[20:41, 40:61] = True  # 21 x 21: centre row 30, column 50
    assert farthest_from_boundary(mask) == (50.5, 30.5)


def test_first_click_across_the_seam_sits_on_the_seam():
    mask = np.zeros((H, W), bool)
    mask[20:40, :10] = True
    mask[20:40, W - 10:] = True  # one 20 x 20 object cut by the seam
    x, y = farthest_from_boundary(mask)
    assert x in (0.5, W - 0.5) and 29 <= y <= 31  # at the seam, not inside one of the halves
    inside_half = np.zeros((H, W), bool)
    inside_half[20:40, :10] = True
    assert farthest_from_boundary(inside_half)[0] == pytest.approx(4.5, abs=0.6)  # a half alone: its own middle


def test_first_click_over_a_pole_is_at_the_pole():
    mask = np.zeros((H, W), bool)
    mask[:6] = True  # a cap over the north pole: the rows continue on the other side of the sphere
    x, y = farthest_from_boundary(mask)
    assert y == 0.5


def test_correction_click_goes_to_the_larger_error_region():
    truth = np.zeros((H, W), bool)
    truth[10:40, 10:50] = True
    prediction = truth.copy()
    prediction[10:40, 30:50] = False  # 30 x 20 missed
    prediction[50:54, 90:94] = True  # 4 x 4 extra
    x, y, positive = correction_click(prediction, truth)
    assert positive and 30 <= x <= 50 and 10 <= y <= 40
    assert (x, y) == farthest_from_boundary(truth & ~prediction)
    prediction = truth.copy()
    prediction[45:60, 60:100] = True  # a large false positive
    x, y, positive = correction_click(prediction, truth)
    assert not positive and prediction[int(y), int(x)] and not truth[int(y), int(x)]
    assert correction_click(truth, truth) is None


def test_size_classes_scale_cocos_thresholds_with_the_area():
    scale = 256 * 512 / (640 * 480)
    assert size_class(int(32 ** 2 * scale) - 1, 256, 512) == "small"
    assert size_class(int(32 ** 2 * scale) + 1, 256, 512) == "medium"
    assert size_class(int(96 ** 2 * scale) + 1, 256, 512) == "large"
    assert size_class(1000, 2048, 4096) == "small"


def test_seam_and_pole_subset():
    mask = np.zeros((H, W), bool)
    mask[30:34, 60:64] = True
    assert not at_seam_or_pole(mask)
    seam = np.zeros((H, W), bool)
    seam[30:34, :2] = seam[30:34, -2:] = True
    assert at_seam_or_pole(seam)
    pole = np.zeros((H, W), bool)
    pole[H - 3:, 50:60] = True  # beyond 60 degrees south
    assert at_seam_or_pole(pole)


def test_erp_window_rays_and_locate_agree_and_cut_wraps_the_seam():
    window = ErpWindow(math.radians(135.0), math.radians(45.0), math.radians(90.0))  # across the seam
    rays = window.rays(16)
    u, v, inside = window.locate(rays)
    centres = (np.arange(16) + 0.5) / 16
    assert inside.all()
    np.testing.assert_allclose(u, np.broadcast_to(centres, (16, 16)), atol=1e-9)
    np.testing.assert_allclose(v, np.broadcast_to(centres[:, None], (16, 16)), atol=1e-9)
    assert not window.locate(np.asarray(lonlat_to_ray(0.0, 0.0)))[2]
    erp = np.zeros((H, W, 3), np.uint8)
    erp[:, :W // 2] = 255  # the left half (longitudes -180..0) white
    cut = window.cut(erp, 16)  # longitudes 135..225 = 135..180 black, then -180..-135 white
    assert (cut[:, :7] == 0).all() and (cut[:, 9:] == 255).all()


def test_every_method_end_to_end_on_a_tiny_panorama(tiny_panoramas):
    panoramas = PanoramaCollection([f"synthetic:{tiny_panoramas}"])
    panorama = [panoramas[0]]
    backend = create_backend(BackendSpec("builtin", image_size=32))
    summaries = {}
    for method in build_methods(backend, 32, METHODS):
        results = evaluate_method(method, panorama, min_area=0.02, clicks=2)
        assert results and all(0.0 <= r.iou_1 <= 1.0 and 0.0 <= r.iou_3 <= 1.0 for r in results)
        summaries[method.name] = summarise(results)
    table = markdown_table(summaries)
    assert all(f"| {name} |" in table for name in METHODS)
