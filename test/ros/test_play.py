"""pano-perception play: a bag published into the live graph with /clock, received over real DDS."""
import subprocess
import sys

import numpy as np
import pytest
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image

from pano_perception.bagio import BagReader, message_to_numpy, stamp_ns
from pano_perception.ros.conversions import image_to_numpy
from pano_perception.synthetic import camera_trajectory, generate_scene
from pano_perception.synthetic.bag import write_bag
from ros_harness import node_env

pytestmark = pytest.mark.ros


def test_play_publishes_the_bag_at_its_rate_with_clock(harness, tmp_path):
    scene = generate_scene(4)
    bag = tmp_path / "bag"
    write_bag(bag, scene, camera_trajectory(scene, 4, rate_hz=5.0), 32, storage="sqlite3", rate_hz=5.0)
    harness.subscribe(Image, "/camera/image")
    harness.subscribe(Clock, "/clock")
    player = subprocess.run([sys.executable, "-m", "pano_perception.cli.main", "play", str(bag),
                             "--topics", "/camera/image", "/tf", "--wait-for-subscribers", "10"],
                            env=node_env(), capture_output=True, text=True, timeout=120)
    assert player.returncode == 0, player.stderr
    assert "published 4 messages" in player.stdout
    assert "skipping /tf [tf2_msgs/msg/TFMessage]" in player.stderr  # not installed for rclpy here
    assert harness.wait_for(lambda: len(harness.messages("/camera/image")) == 4, 10)
    with BagReader(bag) as reader:
        recorded = [m.msg for m in reader.messages(["/camera/image"])]
    received = harness.messages("/camera/image")
    assert [stamp_ns(m) for m in recorded] == [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in received]
    np.testing.assert_array_equal(image_to_numpy(received[-1]), message_to_numpy(recorded[-1]))
    clocks = [c.clock.sec * 10**9 + c.clock.nanosec for c in harness.messages("/clock")]
    assert clocks == sorted(clocks) and clocks[-1] - clocks[0] == pytest.approx(0.6e9, abs=1e6)
