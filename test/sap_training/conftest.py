"""Fixtures of the SAP training tests: the repository root on sys.path (``training`` is a top-level folder, and the
sam2 wheel installs an unrelated ``training`` package), one torch thread, and a tiny synthetic panorama dataset."""
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if "training" in sys.modules and not str(getattr(sys.modules["training"], "__file__", "")).startswith(str(ROOT)):
    del sys.modules["training"]


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on 2 shared cores, OpenMP hand-offs make small tensor ops much slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_panoramas(tmp_path_factory):
    """Two synthetic panoramas (an indoor and an outdoor scene) of 64 x 128 in the pano_perception format."""
    from pano_perception.synthetic.dataset import write_dataset

    out = tmp_path_factory.mktemp("panoramas")
    write_dataset(out, 2, 64, seed=9)
    return out
