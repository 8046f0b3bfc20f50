"""Fixtures of the training tests: the repository root on sys.path (``training`` is a top-level folder, and the sam2
wheel installs an unrelated ``training`` package) and a tiny pseudo-label cache."""
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if "training" in sys.modules and not str(getattr(sys.modules["training"], "__file__", "")).startswith(str(ROOT)):
    del sys.modules["training"]

from training.mtpano.datasets import SyntheticPanoramas
from training.mtpano.pseudo_labels import CropSampling, generate_cache
from training.mtpano.teachers import OracleTeacher

ERP_HEIGHT = 128  # the micro-cpu model's input height


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread per test: on a shared 2-core machine more threads spin against other processes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory):
    """Two synthetic panoramas (an indoor and an outdoor scene), 6 oracle crops each, at 128 x 256."""
    out = tmp_path_factory.mktemp("cache")
    source = SyntheticPanoramas([3, 10], ERP_HEIGHT)
    sampling = CropSampling(num_crops=6, crop_size=64)
    return generate_cache(out, source, OracleTeacher(), erp_height=ERP_HEIGHT, sampling=sampling, shard_size=1,
                          seed=0, progress=False)
