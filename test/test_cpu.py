"""The per-frame CPU helpers (pano_perception.cpu): same answers as the plain numpy calls."""
import numpy as np
import pytest

from pano_perception.cpu import check_destination, row_bands


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
