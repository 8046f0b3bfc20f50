"""Session-wide test settings."""
import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def ros_log_dir(tmp_path_factory):
    """rclpy's log files (this process and every node it starts) go to the session's temporary folder instead of
    piling up in ~/.ros/log."""
    previous = os.environ.get("ROS_LOG_DIR")
    os.environ["ROS_LOG_DIR"] = str(tmp_path_factory.mktemp("ros_log"))
    yield
    if previous is None:
        os.environ.pop("ROS_LOG_DIR")
    else:
        os.environ["ROS_LOG_DIR"] = previous
