"""The per-frame CPU helpers (pano_perception.cpu): same answers as the plain numpy calls."""
import numpy as np
import pytest

from pano_perception.cpu import argmax_last_axis, check_destination, row_bands


@pytest.mark.parametrize("shape", [(1, 7, 5, 150), (2, 3, 4), (1, 1), (5, 1)])
def test_argmax_last_axis_equals_numpy_and_the_first_maximum_wins(shape):
    values = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    values.reshape(-1, shape[-1])[0, :] = 1.0  # a tie over the whole first row: index 0
    result = argmax_last_axis(values)
    assert result.shape == shape[:-1] and result.dtype == np.int64
    np.testing.assert_array_equal(result, values.argmax(axis=-1))
    assert result.reshape(-1)[0] == 0


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
