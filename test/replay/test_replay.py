"""Replay: synthetic bag in -> output bag, report and metrics out; real-time drops; broken bags."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pano_perception.bagio import BagError, BagReader, message_to_numpy, stamp_ns
from pano_perception.metrics import DenseEvaluation
from pano_perception.models.mtpano.predictor import MTPanoPredictor
from pano_perception.replay import ReplayConfig, Replayer
from pano_perception.report import write_report
from pano_perception.synthetic import camera_trajectory, generate_scene
from pano_perception.synthetic.bag import write_bag

REPO = Path(__file__).resolve().parents[2]
WEIGHTS = REPO / "test" / "data" / "mtpano" / "tiny_state_dict.safetensors"
HEIGHT, FRAMES = 64, 5


@pytest.fixture(scope="module")
def predictor():
    return MTPanoPredictor("tiny-fixture", WEIGHTS)


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("replay") / "synthetic"
    scene = generate_scene(11)
    write_bag(path, scene, camera_trajectory(scene, FRAMES), HEIGHT)
    return path


def test_output_bag_has_the_node_topics_with_input_stamps(bag, predictor, tmp_path):
    out = tmp_path / "out"
    result = Replayer(predictor, ReplayConfig()).run(bag, out)
    assert len(result.processed) == FRAMES and result.dropped == 0 and result.bag_error is None
    with BagReader(bag) as reader:
        inputs = [m.msg for m in reader.messages(["/camera/image"])]
    with BagReader(out) as reader:
        assert reader.topics == {
            "/camera/image": "sensor_msgs/msg/Image", "/pano/depth": "sensor_msgs/msg/Image",
            "/pano/depth/points": "sensor_msgs/msg/PointCloud2", "/pano/normals": "sensor_msgs/msg/Image",
            "/pano/normals/color": "sensor_msgs/msg/Image", "/pano/semantic": "sensor_msgs/msg/Image",
            "/pano/semantic/color": "sensor_msgs/msg/Image"}
        messages = list(reader.messages(list(reader.topics)))
    by_topic = {}
    for m in messages:
        by_topic.setdefault(m.topic, []).append(m.msg)
    assert all(len(v) == FRAMES for v in by_topic.values())
    input_stamps = [stamp_ns(m) for m in inputs]
    for topic, msgs in by_topic.items():
        assert [stamp_ns(m) for m in msgs] == input_stamps, topic
        assert all(m.header.frame_id == "camera_link" for m in msgs)
    encodings = {t: by_topic[t][0].encoding for t in by_topic if t.startswith("/pano/") and "points" not in t}
    assert encodings == {"/pano/depth": "32FC1", "/pano/normals": "32FC3", "/pano/normals/color": "rgb8",
                         "/pano/semantic": "mono8", "/pano/semantic/color": "rgb8"}
    expected = predictor.predict(message_to_numpy(inputs[2]))
    np.testing.assert_array_equal(message_to_numpy(by_topic["/pano/depth"][2]), expected.depth)
    cloud = by_topic["/pano/depth/points"][0]
    assert (cloud.height, cloud.width, cloud.point_step) == (HEIGHT // 2, HEIGHT, 16)


def test_report_metrics_equal_direct_computation(bag, predictor, tmp_path):
    result = Replayer(predictor, ReplayConfig()).run(bag)
    report = write_report(result, tmp_path / "report")
    saved = json.loads((tmp_path / "report" / "metrics.json").read_text())
    direct = DenseEvaluation()
    with BagReader(bag) as reader:
        gt = {}
        for m in reader.messages(["/camera/image", "/ground_truth/depth", "/ground_truth/semantic",
                                  "/ground_truth/normals"]):
            gt.setdefault(stamp_ns(m.msg), {})[m.topic] = message_to_numpy(m.msg)
    for frame in gt.values():
        p = predictor.predict(frame["/camera/image"])
        direct.add(semantic=p.semantic, semantic_gt=frame["/ground_truth/semantic"], depth=p.depth,
                   depth_gt=frame["/ground_truth/depth"], normals=p.normals, normals_gt=frame["/ground_truth/normals"])
    for task, values in direct.result().items():
        for name, value in values.items():
            assert saved["metrics"][task][name] == pytest.approx(value, rel=1e-12), (task, name)
    html = report.read_text()
    assert html.index("<img") < html.index("Accuracy")  # the report opens with pictures
    assert (tmp_path / "report" / "latency.png").stat().st_size > 1000
    assert saved["frames_processed"] == FRAMES and set(saved["latency_ms"]) >= {"model", "latency"}


def test_realtime_mode_drops_frames_instead_of_lagging(tmp_path, predictor):
    path = tmp_path / "fast_camera"
    scene = generate_scene(5)
    write_bag(path, scene, camera_trajectory(scene, 30, rate_hz=10.0), HEIGHT)
    # Played 20x faster than recorded (200 Hz): frames come faster than the model runs.
    result = Replayer(predictor, ReplayConfig(mode="realtime", speed=20.0)).run(path)
    assert result.dropped > 0
    assert len(result.processed) + result.dropped == 30
    longest = max(sum(r.stages_s.values()) for r in result.processed)
    # No backlog: a frame waits for at most the one in progress (a queue would add up to 29 frames of work),
    # and the run ends with the recording.
    assert max(r.latency_s for r in result.processed) < 2 * longest + 0.05
    assert result.wall_s < 29 / 200 + 2 * longest + 0.2


def test_truncated_bag_keeps_the_readable_part(bag, predictor, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(bag, broken)
    mcap = next(broken.glob("*.mcap"))
    data = mcap.read_bytes()
    mcap.write_bytes(data[: int(len(data) * 0.6)])
    (broken / "metadata.yaml").unlink()  # a recorder killed mid-write leaves no metadata
    result = Replayer(predictor, ReplayConfig()).run(mcap)
    assert result.bag_error and "truncated or corrupt" in result.bag_error
    assert 0 < len(result.processed) < FRAMES
    report = write_report(result, tmp_path / "report")
    assert "truncated or corrupt" in report.read_text()


def test_unknown_topic_lists_the_bag_topics(bag, predictor):
    with pytest.raises(BagError, match=r"(?s)'/camera/wrong' is not in .*/camera/image/compressed"):
        Replayer(predictor, ReplayConfig(image_topic="/camera/wrong")).run(bag)
    with pytest.raises(BagError, match="bag not found"):
        Replayer(predictor, ReplayConfig()).run(bag.parent / "missing")


def test_cli_replay_compressed_and_infer(bag, tmp_path):
    cli = [sys.executable, "-m", "pano_perception.cli.main"]
    model = ["--model", "tiny-fixture", "--checkpoint", str(WEIGHTS)]
    done = subprocess.run([*cli, "replay", str(bag), "--compressed", "--out-bag", str(tmp_path / "o"),
                           "--report", str(tmp_path / "r"), *model], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "5 frames processed" in done.stdout and (tmp_path / "r" / "report.html").exists()
    wrong = subprocess.run([*cli, "replay", str(bag), "--image-topic", "/nope", *model], capture_output=True,
                           text=True, timeout=300)
    assert wrong.returncode == 2 and "/camera/image/compressed" in wrong.stderr
    with BagReader(bag) as reader:
        rgb = message_to_numpy(next(reader.messages(["/camera/image"])).msg)
    import cv2

    cv2.imwrite(str(tmp_path / "pano.png"), rgb[..., ::-1])
    done = subprocess.run([*cli, "infer", str(tmp_path / "pano.png"), "--out", str(tmp_path / "inf"), *model],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    depth_mm = cv2.imread(str(tmp_path / "inf" / "pano_depth_mm.png"), cv2.IMREAD_UNCHANGED)
    depth = np.load(tmp_path / "inf" / "pano_depth.npy")
    assert depth_mm.dtype == np.uint16 and depth_mm.shape == (HEIGHT, 2 * HEIGHT)
    np.testing.assert_allclose(depth_mm[np.isfinite(depth)], np.round(depth[np.isfinite(depth)] * 1000), atol=1)
    ply = (tmp_path / "inf" / "pano.ply").read_bytes()
    assert ply.startswith(b"ply\nformat binary_little_endian 1.0\nelement vertex ")
    with BagReader(bag) as reader:
        gt = message_to_numpy(next(reader.messages(["/ground_truth/instances"])).msg)
    np.save(tmp_path / "gt.npy", gt)
    ids, areas = np.unique(gt[gt > 0], return_counts=True)
    target = ids[np.argmax(areas)]
    ys, xs = np.nonzero(gt == target)
    click = f"{xs[len(xs) // 2] + 0.5},{ys[len(ys) // 2] + 0.5}"
    done = subprocess.run([*cli, "infer", str(tmp_path / "pano.png"), "--out", str(tmp_path / "inf"), *model,
                           "--click", click, "--sap-backend", "oracle", "--sap-checkpoint", str(tmp_path / "gt.npy"),
                           "--sap-frame-size", "64"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    instances = cv2.imread(str(tmp_path / "inf" / "pano_instances.png"), cv2.IMREAD_UNCHANGED)
    assert instances.dtype == np.uint16
    iou = ((instances == 1) & (gt == target)).sum() / ((instances == 1) | (gt == target)).sum()
    assert iou > 0.8
    bad = subprocess.run([*cli, "infer", str(tmp_path / "pano.png"), *model, "--click", "nope"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "--click takes X,Y" in bad.stderr


def test_sap_prompts_segment_every_frame_and_are_scored(tmp_path, predictor):
    """The same clicks segment each frame; with the oracle backend (ground-truth masks) the objects score high."""
    from pano_perception.cli.demo import click_objects
    from pano_perception.models.sap import build_segmenter
    from pano_perception.replay import SegmentationStep

    scene = generate_scene(7)
    pose = camera_trajectory(scene, 1)[0]
    path = tmp_path / "still"
    write_bag(path, scene, [pose, pose, pose], 128)  # a still camera: one ground truth fits every frame
    spec = click_objects(path, 2)
    assert len(spec["objects"]) == 2
    with BagReader(path) as reader:
        gt = message_to_numpy(next(reader.messages(["/ground_truth/instances"])).msg)
    np.save(tmp_path / "instances.npy", gt)
    segmenter = build_segmenter("oracle", checkpoint=str(tmp_path / "instances.npy"), frame_size=128)
    step = SegmentationStep(segmenter, spec)
    result = Replayer(predictor, ReplayConfig(), segment=step).run(path, tmp_path / "out")
    assert result.metrics["instances"]["objects_scored"] == 6
    assert result.metrics["instances"]["mIoU"] > 95
    with BagReader(tmp_path / "out") as reader:
        assert reader.topics["/pano/instances"] == "sensor_msgs/msg/Image"
        masks = [m.msg for m in reader.messages(["/pano/instances"])]
    ids = message_to_numpy(masks[0])
    assert masks[0].encoding == "mono16" and set(np.unique(ids)) == {0, 1, 2}
    first = spec["objects"][0]["ground_truth_instance"]
    assert (ids == 1).sum() > 0.9 * (gt == first).sum()


def test_prompt_spec_errors_name_the_object():
    from pano_perception.replay import prompt_session

    with pytest.raises(ValueError, match="non-empty 'objects'"):
        prompt_session({}, 64, 128)
    with pytest.raises(ValueError, match="prompt object 1 has neither"):
        prompt_session({"objects": [{"points": [[3, 4]]}, {"negative": [[1, 1]]}]}, 64, 128)
    with pytest.raises(ValueError, match="prompt object 0"):
        prompt_session({"objects": [{"points": [[500, 4]]}]}, 64, 128)
    session = prompt_session({"objects": [{"points": [[3, 4]], "negative": [[9, 9]]}, {"box": [120, 5, 8, 20]}]},
                             64, 128)
    assert [o.object_id for o in session.objects] == [1, 2]
