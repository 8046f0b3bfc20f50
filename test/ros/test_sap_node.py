"""sap_node in its own process over real DDS: prompts, services, outputs, bad input, lifecycle, sam2 plumbing.

Geometry tests use the oracle backend (ground truth from an instance-id ERP of spherical caps, one across the
seam and one over the north pole), so what they check is the node's and SAP's geometry, not a model. The sam2
test runs the official sam2 package with the tiny config, random weights saved as an official-layout
checkpoint, 8 views of 128 px: it checks the plumbing, not the accuracy.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Point, Point32, PointStamped, Polygon, PolygonStamped
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from ros_harness import NodeProcess
from sensor_msgs.msg import Image, PointCloud2
from std_msgs.msg import Header
from std_srvs.srv import Trigger
from visualization_msgs.msg import Marker, MarkerArray

from pano_perception.geometry import erp_rays, lonlat_to_ray
from pano_perception.ros.conversions import image_to_numpy, numpy_to_image, pointcloud2_to_numpy

pytestmark = pytest.mark.ros

H, W = 96, 192
SEAM = (math.pi, 0.15, 25.0)  # lon, lat (radians), cap radius (degrees)
POLE = (0.0, math.pi / 2, 30.0)
SIDE = (1.2, -0.2, 22.0)
FAST_SCAN = {"scan.frame_size": 96}  # 24 views; the 8-view scan (overlap 0) leaves holes at the equator


def cap_mask(lon: float, lat: float, radius_deg: float) -> np.ndarray:
    centre = np.asarray(lonlat_to_ray(lon, lat))
    return erp_rays(H, W, numpy=True) @ centre > math.cos(math.radians(radius_deg))


def ground_truth() -> np.ndarray:
    ids = np.zeros((H, W), np.uint16)
    for object_id, cap in enumerate((SEAM, POLE, SIDE), start=1):
        ids[cap_mask(*cap)] = object_id
    return ids


def pixel_of(lon: float, lat: float) -> tuple[float, float]:
    return (lon + math.pi) / (2 * math.pi) * W % W, (math.pi / 2 - lat) / math.pi * H


def panorama() -> np.ndarray:
    y, x = np.mgrid[0:H, 0:W]
    return np.stack([x * 255 // W, y * 255 // H, (x + y) % 256], -1).astype(np.uint8)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def header(frame_id: str = "theta", sec: int = 5) -> Header:
    h = Header(frame_id=frame_id)
    h.stamp.sec = sec
    return h


def statuses(harness) -> list:
    return [s for m in harness.messages("/diagnostics") for s in m.status if "panoramic segmentation" in s.name]


def values(status) -> dict:
    return {kv.key: kv.value for kv in status.values}


@pytest.fixture(scope="module")
def truth_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sap") / "instances.npy"
    np.save(path, ground_truth())
    return path


@pytest.fixture
def sap(harness, request, truth_file):
    """A sap_node with the oracle backend (marker ``params`` overrides) in namespace /<test name>."""
    namespace = "/" + request.node.name.replace("[", "_").replace("]", "").replace("-", "_")[:40]
    params = {"model.backend": "oracle", "model.checkpoint": str(truth_file), "autostart": True,
              "diagnostics_period": 0.25, "always_publish": True, "num_threads": 1, **FAST_SCAN}
    marker = request.node.get_closest_marker("params")
    if marker:
        params.update(marker.args[0])
    node = NodeProcess("pano_perception.ros.sap_node", namespace, params)
    harness.subscribe(DiagnosticArray, "/diagnostics")
    yield namespace, node
    node.stop()


def wait_active(harness, node, timeout=60.0):
    ok = harness.wait_for(lambda: node.process.poll() is not None or any(
        values(s).get("state") == "active" for s in statuses(harness)), timeout)
    assert ok and node.process.poll() is None, "node never became active:\n" + node.output()


def wait_error(harness, node, text: str, seen: int, timeout=20.0) -> None:
    reported = harness.wait_for(lambda: any(s.level == b"\x02" and text in s.message
                                            for s in statuses(harness)[seen:]), timeout)
    assert reported, f"no ERROR diagnostic naming {text!r}:\n{node.output()[-3000:]}"


def latest_ids(harness, topic, predicate, timeout=30.0) -> np.ndarray:
    """Wait until the newest instances image satisfies ``predicate(ids)``; return its ids."""
    def ok():
        messages = harness.messages(topic)
        return bool(messages) and predicate(image_to_numpy(messages[-1]))

    assert harness.wait_for(ok, timeout, poll=0.2), "no instances image as expected"
    return image_to_numpy(harness.messages(topic)[-1])


def wait_received(harness, frames: int, timeout=20.0) -> None:
    assert harness.wait_for(lambda: any(int(values(s).get("received_frames", 0)) >= frames
                                        for s in statuses(harness)), timeout)


def test_clicks_objects_undo_reset_and_everything_with_the_oracle(harness, sap):
    namespace, node = sap
    topic = f"{namespace}/instances"
    for name, kind in (("instances", Image), ("instances/color", Image), ("instances/points", PointCloud2),
                       ("instances/markers", MarkerArray)):
        harness.subscribe(kind, f"{namespace}/{name}")
    wait_active(harness, node)
    image_pub = harness.publisher(Image, f"{namespace}/image")
    depth_pub = harness.publisher(Image, f"{namespace}/depth")
    pixel_pub = harness.publisher(PointStamped, f"{namespace}/prompt/pixel")
    negative_pub = harness.publisher(PointStamped, f"{namespace}/prompt/pixel/negative")
    click_pub = harness.publisher(Point, f"{namespace}/prompt/click")
    depth_pub.publish(numpy_to_image(np.full((H, W), 2.5, np.float32), "32FC1", header()))
    image_pub.publish(numpy_to_image(panorama(), "rgb8", header()))
    truth = ground_truth()

    wait_received(harness, 1)

    # A click on the cap that straddles the seam: exactly that cap, across both borders.
    x, y = pixel_of(math.pi - 0.02, 0.15)
    pixel_pub.publish(PointStamped(header=header(), point=Point(x=x, y=y)))
    ids = latest_ids(harness, topic, lambda ids: (ids == 1).any())
    out = harness.messages(topic)[-1]
    assert out.encoding == "mono16" and out.header.frame_id == "theta" and out.header.stamp.sec == 5
    assert iou(ids == 1, truth == 1) >= 0.98 and ids[:, 0].any() and ids[:, -1].any()

    # A second object by an rqt-style click (pixel indices) on the north-pole cap.
    assert harness.call(Trigger, f"{namespace}/sap_node/new_object", Trigger.Request()).success
    px, py = pixel_of(2.0, math.pi / 2 - 0.1)
    click_pub.publish(Point(x=float(int(px)), y=float(int(py))))
    ids = latest_ids(harness, topic, lambda ids: (ids == 2).any())
    assert iou(ids == 1, truth == 1) >= 0.98 and iou(ids == 2, truth == 2) >= 0.98

    # A negative click on object 2's instance takes it away; undo brings it back.
    negative_pub.publish(PointStamped(point=Point(x=px, y=py)))
    ids = latest_ids(harness, topic, lambda ids: not (ids == 2).any())
    assert (ids == 1).any()
    assert harness.call(Trigger, f"{namespace}/sap_node/undo", Trigger.Request()).success
    ids = latest_ids(harness, topic, lambda ids: (ids == 2).any())
    assert iou(ids == 2, truth == 2) >= 0.98

    # Colour overlay, points at the dense node's depth, one labelled marker per object (plus DELETEALL).
    colour = image_to_numpy(harness.messages(f"{namespace}/instances/color")[-1])
    assert colour.shape == (H, W, 3) and (colour[ids == 1] != panorama()[ids == 1]).any()
    cloud = pointcloud2_to_numpy(harness.messages(f"{namespace}/instances/points")[-1])
    radii = np.sqrt(cloud["x"] ** 2 + cloud["y"] ** 2 + cloud["z"] ** 2)
    np.testing.assert_allclose(radii, 2.5, rtol=1e-5)
    assert set(np.unique(cloud["instance"]).tolist()) == {1, 2}
    markers = harness.messages(f"{namespace}/instances/markers")[-1].markers
    assert markers[0].action == Marker.DELETEALL
    labels = {m.id: m for m in markers[1:]}
    assert set(labels) == {1, 2} and labels[2].text == "object 2"
    assert labels[2].pose.position.z == pytest.approx(2.5, rel=0.02)  # the pole cap's centroid is straight up
    seam_anchor = labels[1].pose.position
    assert seam_anchor.x < -2.0 and abs(seam_anchor.y) < 0.1  # behind the camera, not dragged to a border

    # Reset clears everything; segment everything finds the three caps.
    assert harness.call(Trigger, f"{namespace}/sap_node/reset", Trigger.Request()).success
    latest_ids(harness, topic, lambda ids: not ids.any())
    reply = harness.call(Trigger, f"{namespace}/sap_node/segment_everything", Trigger.Request())
    assert reply.success and "64 prompts" in reply.message
    ids = latest_ids(harness, topic, lambda ids: len(np.unique(ids)) >= 4, timeout=60)
    found = [max(iou(ids == k, truth == t) for k in np.unique(ids[ids > 0])) for t in (1, 2, 3)]
    assert min(found) >= 0.98, found
    assert harness.wait_for(lambda: values(statuses(harness)[-1]).get("last_mode") == "everything", 5)
    assert int(values(statuses(harness)[-1])["last_scan_frames"]) == 4 * 24  # 64 prompts in batches of 16
    assert not harness.call(Trigger, f"{namespace}/sap_node/undo", Trigger.Request()).success  # nothing left
    assert node.process.poll() is None


def test_bad_prompts_and_frames_are_reported_and_the_node_keeps_going(harness, sap):
    namespace, node = sap
    topic = f"{namespace}/instances"
    harness.subscribe(Image, topic)
    wait_active(harness, node)
    pixel_pub = harness.publisher(PointStamped, f"{namespace}/prompt/pixel")
    point_pub = harness.publisher(PointStamped, f"{namespace}/prompt/point")
    box_pub = harness.publisher(PolygonStamped, f"{namespace}/prompt/box")
    image_pub = harness.publisher(Image, f"{namespace}/image")

    seen = len(statuses(harness))
    pixel_pub.publish(PointStamped(point=Point(x=10.0, y=10.0)))
    wait_error(harness, node, "before any panorama", seen)
    reply = harness.call(Trigger, f"{namespace}/sap_node/segment_everything", Trigger.Request())
    assert not reply.success and "no panorama" in reply.message

    seen = len(statuses(harness))
    image_pub.publish(numpy_to_image(np.zeros((50, 120, 3), np.uint8), "rgb8", header()))
    wait_error(harness, node, "not a 2:1", seen)
    image_pub.publish(numpy_to_image(panorama(), "rgb8", header("theta")))
    wait_received(harness, 2)

    bad = [
        (pixel_pub, PointStamped(point=Point(x=float(W) + 3, y=10.0)), "outside the 192x96 panorama"),
        (pixel_pub, PointStamped(point=Point(x=math.nan, y=10.0)), "not finite"),
        (point_pub, PointStamped(header=header("map"), point=Point(x=1.0)), "in frame 'map'"),
        (point_pub, PointStamped(header=header("theta"), point=Point()), "camera centre"),
        (box_pub, PolygonStamped(polygon=Polygon(points=[Point32(x=1.0, y=1.0)] * 3)), "2 corners"),
        (box_pub, PolygonStamped(polygon=Polygon(points=[Point32(x=1.0, y=9.0), Point32(x=5.0, y=2.0)])), "below"),
    ]
    for publisher, msg, text in bad:
        seen = len(statuses(harness))
        publisher.publish(msg)
        wait_error(harness, node, text, seen)
    assert not harness.messages(topic)

    # A 3D point straight up (RViz's Publish Point in the camera frame) selects the pole cap.
    point_pub.publish(PointStamped(header=header("theta"), point=Point(x=0.1, y=0.0, z=3.0)))
    ids = latest_ids(harness, topic, lambda ids: (ids == 1).any())
    assert iou(ids == 1, ground_truth() == 2) >= 0.98
    # A box across the seam around the seam cap makes a second object.
    (x0, y0), (x1, y1) = pixel_of(math.pi - 0.35, 0.5), pixel_of(-math.pi + 0.35, -0.2)
    box_pub.publish(PolygonStamped(polygon=Polygon(points=[Point32(x=x0, y=y0), Point32(x=x1, y=y1)])))
    ids = latest_ids(harness, topic, lambda ids: (ids == 2).any())
    assert iou(ids == 2, ground_truth() == 1) >= 0.98
    assert "prompt before any panorama" in node.output() and node.process.poll() is None


@pytest.mark.params({"autostart": False, "track_new_frames": False})
def test_lifecycle_and_prompts_kept_across_frames(harness, sap):
    namespace, node = sap
    service = f"{namespace}/sap_node"
    topic = f"{namespace}/instances"
    harness.subscribe(Image, topic)

    def transition(tid):
        return harness.call(ChangeState, f"{service}/change_state",
                            ChangeState.Request(transition=Transition(id=tid))).success

    def state():
        return harness.call(GetState, f"{service}/get_state", GetState.Request()).current_state.label

    assert harness.wait_for(lambda: statuses(harness), 60), node.output()
    assert state() == "unconfigured"
    reply = harness.call(Trigger, f"{service}/segment_everything", Trigger.Request())
    assert not reply.success and "not active" in reply.message
    assert transition(Transition.TRANSITION_CONFIGURE) and transition(Transition.TRANSITION_ACTIVATE)
    assert state() == "active"
    image_pub = harness.publisher(Image, f"{namespace}/image")
    pixel_pub = harness.publisher(PointStamped, f"{namespace}/prompt/pixel")
    image_pub.publish(numpy_to_image(panorama(), "rgb8", header(sec=1)))
    wait_received(harness, 1)
    x, y = pixel_of(*SIDE[:2])
    pixel_pub.publish(PointStamped(point=Point(x=x, y=y)))
    latest_ids(harness, topic, lambda ids: (ids == 1).any())
    count = len(harness.messages(topic))
    image_pub.publish(numpy_to_image(panorama(), "rgb8", header(sec=2)))  # not tracked: no new output
    harness.wait_for(lambda: False, 1.5)
    assert len(harness.messages(topic)) == count
    assert transition(Transition.TRANSITION_DEACTIVATE) and state() == "inactive"
    assert harness.wait_for(lambda: values(statuses(harness)[-1])["model"] == "no model", 5)  # freed
    assert transition(Transition.TRANSITION_ACTIVATE)
    # The prompts survive deactivation: the next prompt change segments the newest panorama with all of them.
    image_pub.publish(numpy_to_image(panorama(), "rgb8", header(sec=3)))
    wait_received(harness, 3)
    assert harness.call(Trigger, f"{service}/new_object", Trigger.Request()).success
    sx, sy = pixel_of(math.pi - 0.02, 0.15)
    pixel_pub.publish(PointStamped(point=Point(x=sx, y=sy)))
    ids = latest_ids(harness, topic, lambda ids: (ids == 2).any())
    assert harness.messages(topic)[-1].header.stamp.sec == 3 and (ids == 1).any()
    assert node.interrupt() < 10.0


@pytest.mark.params({"scan.prompt_frames": "everywhere"})
def test_invalid_parameter_exits_with_code_2(harness, sap):
    _, node = sap
    node.process.wait(60)
    assert node.process.returncode == 2
    assert "scan.prompt_frames" in node.output() and "['visible', 'central']" in node.output()


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """sam2.1 tiny with random weights, saved in the official layout."""
    import torch

    from pano_perception.models.sap.sam2_backend import build_sam2_predictor, save_sam2_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("sam2") / "sam2.1_hiera_tiny_random.pt"
    save_sam2_checkpoint(build_sam2_predictor("tiny", None, "cpu", 128), path)
    return path


def test_sam2_backend_end_to_end_and_a_mismatched_checkpoint(harness, tiny_checkpoint):
    """Plumbing only (random weights): the real checkpoint loader, in-memory frames, outputs with the header."""
    harness.subscribe(DiagnosticArray, "/diagnostics")
    params = {"model.backend": "sam2", "model.config": "tiny", "model.checkpoint": str(tiny_checkpoint),
              "autostart": True, "diagnostics_period": 0.25, "always_publish": True, "num_threads": 1,
              "scan.frame_size": 128, "scan.overlap": 0.0, "scan.pitch_deg": "[45.0, -45.0]"}
    node = NodeProcess("pano_perception.ros.sap_node", "/sam2_e2e", params)
    wrong = NodeProcess("pano_perception.ros.sap_node", "/sam2_wrong", {**params, "model.config": "small"})
    try:
        harness.subscribe(Image, "/sam2_e2e/instances")
        wait_active(harness, node, timeout=90)
        assert any("SAP sam2.1 tiny, 8 views of 128 px" in values(s)["model"] for s in statuses(harness))
        image_pub = harness.publisher(Image, "/sam2_e2e/image")
        pixel_pub = harness.publisher(PointStamped, "/sam2_e2e/prompt/pixel")
        image_pub.publish(numpy_to_image(panorama(), "rgb8", header("theta", 9)))
        wait_received(harness, 1)
        pixel_pub.publish(PointStamped(point=Point(x=50.0, y=40.0)))
        assert harness.wait_for(lambda: harness.messages("/sam2_e2e/instances"), 120), node.output()[-3000:]
        out = harness.messages("/sam2_e2e/instances")[0]
        assert (out.height, out.width, out.encoding) == (H, W, "mono16") and out.header.stamp.sec == 9
        assert set(np.unique(image_to_numpy(out)).tolist()) <= {0, 1}
        wrong.process.poll()
        assert harness.wait_for(lambda: any("does not fit the sam2.1 'small' model" in s.message
                                            for s in statuses(harness)), 90), wrong.output()[-3000:]
        message = next(s.message for s in statuses(harness) if "does not fit" in s.message)
        assert "looks like a sam2.1 'tiny' checkpoint" in message
        assert wrong.process.poll() is None  # activation failed; the node lives on, inactive
    finally:
        node.stop()
        wrong.stop()


def test_default_builtin_backend_segments_out_of_the_box(harness):
    """No model parameters: the built-in backend and its shipped weights segment a clicked object of a held-out
    synthetic room (128 x 256, default 256-px scan frames; the accuracy of the small built-in model is modest,
    docs/SAP_TRAINING.md)."""
    from scipy import ndimage

    from pano_perception.synthetic import generate_scene, render_erp, sample_camera_poses

    scene = generate_scene(900003)
    frame = render_erp(scene, sample_camera_poses(scene, 1)[0], 128)
    things = [o.instance_id for o in scene.objects if o.is_thing]
    counts = np.bincount(frame.instance.ravel(), minlength=max(things) + 1)
    target = max((i for i in things if counts[i] < 0.02 * frame.instance.size), key=lambda i: counts[i])
    truth = frame.instance == target  # a mid-sized object (a building); measured IoU 0.38
    harness.subscribe(DiagnosticArray, "/diagnostics")
    node = NodeProcess("pano_perception.ros.sap_node", "/builtin_default",
                       {"autostart": True, "always_publish": True, "num_threads": 1, "diagnostics_period": 0.25})
    try:
        harness.subscribe(Image, "/builtin_default/instances")
        wait_active(harness, node, timeout=90)
        assert any("SAP builtin 128 px, 24 views of 256 px" in values(s)["model"] for s in statuses(harness))
        harness.publisher(Image, "/builtin_default/image").publish(
            numpy_to_image(frame.rgb, "rgb8", header("theta", 11)))
        wait_received(harness, 1)
        row, col = np.unravel_index(np.argmax(ndimage.distance_transform_edt(truth)), truth.shape)
        x, y = col + 0.5, row + 0.5
        harness.publisher(PointStamped, "/builtin_default/prompt/pixel").publish(PointStamped(point=Point(x=x, y=y)))
        ids = latest_ids(harness, "/builtin_default/instances", lambda ids: (ids == 1).any(), timeout=90)
        assert iou(ids == 1, truth) > 0.25
    finally:
        node.stop()
