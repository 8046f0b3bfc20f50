"""Metrics against hand-computed answers."""
import math

import numpy as np
import pytest

from pano_perception.metrics import (DenseEvaluation, DepthMetrics, NormalMetrics, SemanticMetrics,
                                     angular_error_deg, delta_mtl)


def test_semantic_miou_and_ignore():
    target = np.array([[0, 0, 1, 1], [2, 2, 255, 255]], np.uint8)
    prediction = np.array([[0, 1, 1, 1], [2, 2, 0, 1]], np.uint8)
    m = SemanticMetrics(num_classes=3)
    m.add(prediction, target)
    # class 0: tp 1, union 2; class 1: tp 2, union 3; class 2: tp 2, union 2
    assert m.result()["mIoU"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3 * 100)
    assert m.result()["pixel_acc"] == pytest.approx(5 / 6 * 100)


def test_depth_metrics():
    target = np.array([1.0, 2.0, 4.0, np.nan, 0.0])
    prediction = np.array([1.1, 2.0, 2.0, 5.0, 1.0])
    m = DepthMetrics()
    m.add(prediction, target)
    r = m.result()
    assert r["AbsRel"] == pytest.approx((0.1 + 0 + 0.5) / 3)
    assert r["RMSE"] == pytest.approx(math.sqrt((0.01 + 0 + 4) / 3))
    assert r["delta1"] == pytest.approx(200 / 3) and r["delta2"] == pytest.approx(200 / 3)
    assert r["delta3"] == pytest.approx(200 / 3)  # the ratio 2 exceeds 1.25^3 = 1.953
    assert DepthMetrics().result()["RMSE"] != DepthMetrics().result()["RMSE"]  # NaN when empty


def test_normal_metrics():
    target = np.tile(np.array([0.0, 0.0, 1.0]), (4, 1))
    angles = np.radians([0.0, 10.0, 20.0, 40.0])
    prediction = np.stack([np.sin(angles), np.zeros(4), np.cos(angles)], -1)
    np.testing.assert_allclose(angular_error_deg(prediction, target), [0, 10, 20, 40], atol=1e-6)
    m = NormalMetrics()
    m.add(prediction, target)
    r = m.result()
    assert r["mean"] == pytest.approx(17.5, abs=1e-6)
    assert r["median"] == pytest.approx(15.0, abs=0.011)  # 0.01 degree resolution
    assert (r["11.25"], r["22.5"], r["30"]) == (50.0, 75.0, 75.0)


def test_dense_evaluation_and_delta_mtl():
    ev = DenseEvaluation()
    ev.add(depth=np.ones((2, 2)), depth_gt=np.ones((2, 2)))
    assert ev.result()["depth"]["AbsRel"] == 0.0
    single = {"semantic": {"mIoU": 40.0}, "depth": {"RMSE": 1.0, "AbsRel": 0.2}, "normals": {"mean": 20.0}}
    multi = {"semantic": {"mIoU": 44.0}, "depth": {"RMSE": 0.9, "AbsRel": 0.2}, "normals": {"mean": 22.0}}
    assert delta_mtl(multi, single) == pytest.approx((10 + 10 + 0 - 10) / 4)
