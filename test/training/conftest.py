"""Fixtures of the training tests: our ``training`` package importable and one torch thread per test
(training_fixtures.py), and a tiny pseudo-label cache."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from training_fixtures import one_thread  # noqa: F401 (autouse)

from training.mtpano.datasets import SyntheticPanoramas
from training.mtpano.pseudo_labels import CropSampling, generate_cache
from training.mtpano.teachers import OracleTeacher

ERP_HEIGHT = 128  # the micro-cpu model's input height


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory):
    """Two synthetic panoramas (an indoor and an outdoor scene), 6 oracle crops each, at 128 x 256."""
    out = tmp_path_factory.mktemp("cache")
    source = SyntheticPanoramas([3, 10], ERP_HEIGHT)
    sampling = CropSampling(num_crops=6, crop_size=64)
    return generate_cache(out, source, OracleTeacher(), erp_height=ERP_HEIGHT, sampling=sampling, shard_size=1,
                          seed=0, progress=False)
