import pytest
import rclpy

from ros_harness import Harness


@pytest.fixture(scope="session")
def ros_context():
    rclpy.init()
    yield
    rclpy.try_shutdown()


@pytest.fixture
def harness(ros_context):
    h = Harness()
    yield h
    h.close()
