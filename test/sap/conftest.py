"""One torch thread per SAP test (the fixture of test/training/training_fixtures.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from training_fixtures import one_thread  # noqa: E402,F401 (autouse)
