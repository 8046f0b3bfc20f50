"""Shared by the conftests of test/training and test/sap_training: importing it puts this repository's ``training``
package first on the import path (``training`` is a top-level folder, and the sam2 wheel installs an unrelated
``training`` package); ``one_thread``, imported into a conftest, gives every test there one torch thread."""
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
    """One intra-op torch thread per test: on a shared 2-core machine more threads spin against other processes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
