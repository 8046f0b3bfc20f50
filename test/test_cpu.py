"""The per-frame CPU helpers (pano_perception.cpu): same answers as the plain numpy calls."""
import numpy as np
import pytest

import pano_perception.cpu as cpu
from pano_perception.cpu import check_destination, row_bands, set_nan


@pytest.mark.parametrize("height, row_bytes", [(1920, 3840 * 12), (7, 10), (3, 10 ** 7)])
def test_row_bands_cover_every_row_once(height, row_bytes):
    bands = row_bands(height, row_bytes)
    rows = np.concatenate([np.arange(height)[band] for band in bands])
    np.testing.assert_array_equal(rows, np.arange(height))
    assert all(band.stop - band.start >= 1 for band in bands)


def test_check_destination_refuses_what_opencv_would_replace():
    check_destination(None, (2, 3), np.float32)
    check_destination(np.zeros((2, 3), np.float32), (2, 3), np.float32)
    for bad in (np.zeros((2, 4), np.float32), np.zeros((2, 3), np.float64), np.zeros((3, 2), np.float32).T):
        with pytest.raises(ValueError, match="destination must be"):
            check_destination(bad, (2, 3), np.float32)


@pytest.mark.parametrize("shape", [(5, 8), (5, 8, 3), (1920, 3840)])
@pytest.mark.parametrize("mask_dtype", [bool, np.uint8])
def test_set_nan_equals_numpy_masked_copy(shape, mask_dtype, monkeypatch):
    monkeypatch.setattr(cpu, "BAND_BYTES", 64 if shape[0] == 5 else cpu.BAND_BYTES)  # several bands, a short last
    rng = np.random.default_rng(3)
    values = rng.normal(size=shape).astype(np.float32)
    where = rng.random(shape[:2]) < 0.3
    expected = values.copy()
    expected[where] = np.nan
    set_nan(values, where if mask_dtype is bool else where.astype(np.uint8) * np.uint8(255))
    np.testing.assert_array_equal(values, expected)  # NaN compares equal here, finite values bit for bit


def test_set_nan_refuses_what_it_cannot_write_in_place():
    with pytest.raises(ValueError, match="float32"):
        set_nan(np.zeros((2, 3)), np.zeros((2, 3), bool))
    with pytest.raises(ValueError, match="mask"):
        set_nan(np.zeros((2, 3), np.float32), np.zeros((3, 2), bool))
    with pytest.raises(ValueError, match="mask"):
        set_nan(np.zeros((2, 3), np.float32), np.zeros((2, 3), np.int64))
    with pytest.raises(ValueError, match="C-contiguous"):
        set_nan(np.zeros((3, 2), np.float32).T, np.zeros((2, 3), bool))
