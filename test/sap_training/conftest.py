"""Fixtures of the SAP training tests: our ``training`` package importable and one torch thread per test
(test/training/training_fixtures.py), and a tiny synthetic panorama dataset."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from training_fixtures import one_thread  # noqa: F401 (autouse)


@pytest.fixture(scope="session")
def tiny_panoramas(tmp_path_factory):
    """Two synthetic panoramas (an indoor and an outdoor scene) of 64 x 128 in the pano_perception format."""
    from pano_perception.synthetic.dataset import write_dataset

    out = tmp_path_factory.mktemp("panoramas")
    write_dataset(out, 2, 64, seed=9)
    return out
