"""rosbag2 written with mcap and sqlite3 reads back with rosbags message for message."""
import numpy as np
import pytest
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from pano_perception.synthetic import camera_trajectory, generate_scene, render_erp
from pano_perception.bagio import header, image_message, message_to_numpy
from pano_perception.synthetic.bag import DEFAULT_START_NS, JPEG_FORMAT, TOPICS, bag_custom_data, read_bag, write_bag

HEIGHT, FRAMES = 24, 4


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    scene = generate_scene(3)
    poses = camera_trajectory(scene, FRAMES)
    root = tmp_path_factory.mktemp("bags")
    stamps = {storage: write_bag(root / storage, scene, poses, HEIGHT, storage=storage)
              for storage in ("mcap", "sqlite3")}
    return scene, poses, root, stamps


def _raw(path):
    with Reader(path) as reader:
        return [(c.topic, c.msgtype, t, bytes(d)) for c, t, d in reader.messages()]


def test_bags_have_the_expected_topics_and_counts(recording):
    _, _, root, stamps = recording
    assert stamps["mcap"] == [DEFAULT_START_NS + k * 100_000_000 for k in range(FRAMES)]  # 10 Hz
    for storage in ("mcap", "sqlite3"):
        with Reader(root / storage) as reader:
            topics = {c.topic: (c.msgtype, c.msgcount) for c in reader.connections}
            assert reader.message_count == 1 + FRAMES * 8
            assert reader.start_time == DEFAULT_START_NS
        assert topics == {topic: (msgtype, 1 if key == "tf_static" else FRAMES)
                          for key, (topic, msgtype) in TOPICS.items()}
    assert (root / "mcap" / "mcap.mcap").exists() and (root / "sqlite3" / "sqlite3.db3").exists()


def test_mcap_and_sqlite3_hold_the_same_messages(recording):
    scene, _, root, _ = recording
    assert _raw(root / "mcap") == _raw(root / "sqlite3")
    for storage in ("mcap", "sqlite3"):
        custom = bag_custom_data(root / storage)
        assert custom["pano_perception.scene_seed"] == "3" and custom["pano_perception.scene_kind"] == "indoor"
        things = [int(i) for i in custom["pano_perception.thing_instances"].split(",")]
        assert things == [o.instance_id for o in scene.objects if o.is_thing]


def test_messages_match_the_rendered_frames(recording):
    scene, poses, root, stamps = recording
    frames = [render_erp(scene, pose, HEIGHT) for pose in poses]
    typestore = get_typestore(Stores.ROS2_KILTED)
    with Reader(root / "mcap") as reader:
        messages = [(c.topic, t, typestore.deserialize_cdr(d, c.msgtype)) for c, t, d in reader.messages()]
    by_topic = {}
    for topic, log_ns, msg in messages:
        by_topic.setdefault(topic, []).append((log_ns, msg))
    static = by_topic["/tf_static"][0][1].transforms[0]
    assert (static.header.frame_id, static.child_frame_id) == ("map", "odom") and static.transform.rotation.w == 1
    for k, (frame, pose, stamp) in enumerate(zip(frames, poses, stamps["mcap"])):
        for topic in ("/camera/image", "/camera/image/compressed", "/ground_truth/depth", "/ground_truth/normals",
                      "/ground_truth/semantic", "/ground_truth/instances"):
            log_ns, msg = by_topic[topic][k]
            assert log_ns == stamp
            assert msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == stamp
            assert msg.header.frame_id == "camera_link"
        image = by_topic["/camera/image"][k][1]
        assert (image.encoding, image.height, image.width, image.step) == ("rgb8", HEIGHT, 2 * HEIGHT, 6 * HEIGHT)
        assert np.array_equal(message_to_numpy(image), frame.rgb)
        compressed = by_topic["/camera/image/compressed"][k][1]
        assert compressed.format == JPEG_FORMAT
        assert np.abs(message_to_numpy(compressed).astype(int) - frame.rgb).mean() < 10
        depth = by_topic["/ground_truth/depth"][k][1]
        assert depth.encoding == "32FC1" and depth.is_bigendian == 0
        np.testing.assert_array_equal(message_to_numpy(depth), frame.depth)
        np.testing.assert_array_equal(message_to_numpy(by_topic["/ground_truth/normals"][k][1]), frame.normals)
        semantic = by_topic["/ground_truth/semantic"][k][1]
        assert semantic.encoding == "mono8" and np.array_equal(message_to_numpy(semantic), frame.semantic)
        instances = by_topic["/ground_truth/instances"][k][1]
        assert instances.encoding == "mono16" and np.array_equal(message_to_numpy(instances), frame.instance)
        pose_msg = by_topic["/ground_truth/pose"][k][1]
        assert pose_msg.header.frame_id == "map"
        np.testing.assert_allclose([pose_msg.pose.position.x, pose_msg.pose.position.y, pose_msg.pose.position.z],
                                   pose.position)
        tf = by_topic["/tf"][k][1].transforms[0]
        assert (tf.header.frame_id, tf.child_frame_id) == ("odom", "camera_link")
        q = tf.transform.rotation
        np.testing.assert_allclose([q.x, q.y, q.z, q.w], pose.quaternion_xyzw)
    assert [topic for topic, _, _ in read_bag(root / "sqlite3")][:2] == ["/tf_static", "/camera/image"]


def test_image_message_round_trip_and_checks():
    rng = np.random.default_rng(0)
    for encoding, array in [("mono16", rng.integers(0, 65535, (3, 5)).astype(np.uint16)),
                            ("32FC3", rng.normal(size=(3, 5, 3)).astype(np.float32)),
                            ("mono8", rng.integers(0, 255, (3, 5)).astype(np.uint8))]:
        np.testing.assert_array_equal(message_to_numpy(image_message(array, encoding, header(5, "cam"))), array)
    with pytest.raises(ValueError):
        image_message(np.zeros((3, 5)), "rgb8", header(0, "cam"))
    with pytest.raises(ValueError):
        write_bag("/nonexistent/bag", generate_scene(3), [], 8, storage="rosbag1")
