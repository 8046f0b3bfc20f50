"""The ROS workspace install path: colcon build, source install/setup.bash, find the share files."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SKIP_DIRS = {".venv", ".git", "build", "install", "log", "test", "benchmarks", "training", "__pycache__"}


@pytest.mark.slow
def test_colcon_build_installs_launch_config_and_executables(tmp_path):
    colcon = Path(sys.executable).with_name("colcon")
    if not colcon.exists():
        pytest.fail("colcon is not installed in this environment (scripts/setup.sh installs it)")
    source = tmp_path / "src" / "pano_perception"
    shutil.copytree(REPO, source, ignore=lambda d, names: [n for n in names if n in SKIP_DIRS
                                                          or n.endswith(".egg-info")])
    env = {k: v for k, v in os.environ.items() if k != "_ROS_WHEELS_BOOTSTRAP_COMPLETE"}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    build = subprocess.run([str(colcon), "build", "--base-paths", "src", "--event-handlers", "console_direct-"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    check = (
        "source install/setup.bash && python -c \""
        "from ament_index_python.packages import get_package_share_directory as share; import os; "
        "d = share('pano_perception'); print(d); print(sorted(os.listdir(d))); "
        "print(sorted(os.listdir(os.path.join(d, 'launch')))); print(sorted(os.listdir(os.path.join(d, 'config'))))\""
        " && ls install/pano_perception/lib/pano_perception")
    result = subprocess.run(["bash", "-c", check], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].endswith("install/pano_perception/share/pano_perception")
    assert "launch" in lines[1] and "config" in lines[1] and "rviz" in lines[1] and "package.xml" in lines[1]
    assert "pano.launch.py" in lines[2]
    assert any(name.endswith(".yaml") for name in eval(lines[3]))
    assert "pano-perception" in lines[4:]
