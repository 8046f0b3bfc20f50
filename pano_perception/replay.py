"""Replay a rosbag2 through the dense model (and SAP), as fast as possible or in real time. No ROS needed.

Frames are grouped by header stamp: the image and the ground-truth images recorded with it. Each frame goes
through the same code as the nodes (``dense_products`` with the node's parameters), is written to an output bag
under the nodes' topic names, and is scored against the ground truth present. Real-time mode delivers frames at
their recorded times into the nodes' newest-frame mailbox, so frames are dropped exactly as a live node drops them.
"""
from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .bagio import (
    COMPRESSED_TYPE,
    IMAGE_TYPE,
    POINTCLOUD_TYPE,
    BagReader,
    BagWriter,
    header,
    image_message,
    image_to_rgb,
    message_to_numpy,
    pointcloud_message,
    stamp_ns,
)
from .dense import (
    IMAGE_ENCODINGS,
    OUTPUT_TOPICS,
    DenseOptions,
    check_panorama,
    dense_products,
)
from .metrics import DenseEvaluation
from .runtime import LatestFrameMailbox

STAGES = ("decode", "model", "products", "segment", "write")
GROUND_TRUTH_DEFAULTS = {"depth": "/ground_truth/depth", "semantic": "/ground_truth/semantic",
                         "normals": "/ground_truth/normals", "instances": "/ground_truth/instances"}


@dataclass
class ReplayConfig:
    """What to read, how to run and where outputs go. ``None`` ground-truth topics are skipped; the defaults are
    used only when the bag has them."""

    image_topic: str = "/camera/image"
    ground_truth: dict[str, str | None] = field(default_factory=lambda: dict(GROUND_TRUTH_DEFAULTS))
    mode: str = "fast"
    speed: float = 1.0
    output_namespace: str = "/pano"
    dense: DenseOptions = field(default_factory=DenseOptions)
    max_frames: int | None = None
    min_height: int = 64
    max_width: int = 8192

    def __post_init__(self):
        if self.mode not in ("fast", "realtime"):
            raise ValueError(f"mode must be 'fast' or 'realtime'; got {self.mode!r}")
        if self.speed <= 0:
            raise ValueError(f"speed must be positive; got {self.speed}")


@dataclass
class BagFrame:
    """One camera frame of the bag with the ground truth recorded at the same stamp."""

    index: int
    stamp_ns: int
    log_time_ns: int
    image_msg: object
    ground_truth_msgs: dict[str, object]
    arrival: float = 0.0  # monotonic time the frame was delivered (real-time mode)


@dataclass
class FrameRecord:
    index: int
    stamp_ns: int
    stages_s: dict[str, float]
    latency_s: float
    error: str | None = None


@dataclass
class ReplayResult:
    bag: str
    mode: str
    frames_in_bag: int = 0
    records: list[FrameRecord] = field(default_factory=list)
    dropped: int = 0
    wall_s: float = 0.0
    bag_duration_s: float = 0.0
    metrics: dict = field(default_factory=dict)
    examples: list[dict] = field(default_factory=list)
    bag_error: str | None = None
    output_bag: str | None = None
    instance_ious: list[float] = field(default_factory=list)

    @property
    def processed(self) -> list[FrameRecord]:
        return [r for r in self.records if r.error is None]

    def stage_percentiles(self) -> dict[str, dict[str, float]]:
        """Per stage and end to end: p50, p95 and max in milliseconds over processed frames."""
        out = {}
        for stage in (*STAGES, "latency"):
            values = [r.latency_s if stage == "latency" else r.stages_s.get(stage, 0.0) for r in self.processed]
            if values:
                out[stage] = {q: float(np.percentile(values, p) * 1000) for q, p in (("p50", 50), ("p95", 95))}
                out[stage]["max"] = float(np.max(values) * 1000)
        return out


def _group_frames(reader: BagReader, image_topic: str, gt_topics: dict[str, str]) -> Iterator[BagFrame]:
    """Yield frames in stamp order, each once every message with its stamp has been read (bounded memory)."""
    topic_to_key = {topic: key for key, topic in gt_topics.items()}
    pending: dict[int, dict] = defaultdict(dict)
    log_times: dict[int, int] = {}
    index = 0

    def ready(upto: int | None):
        nonlocal index
        for stamp in sorted(pending):
            if upto is not None and stamp >= upto:
                break
            group = pending.pop(stamp)
            image = group.pop(None, None)
            if image is not None:
                yield BagFrame(index, stamp, log_times.pop(stamp), image, group)
                index += 1
            else:
                log_times.pop(stamp, None)

    for item in reader.messages([image_topic, *gt_topics.values()]):
        stamp = stamp_ns(item.msg)
        key = None if item.topic == image_topic else topic_to_key[item.topic]
        pending[stamp][key] = item.msg
        if key is None:
            log_times[stamp] = item.log_time_ns
        yield from ready(stamp)  # a frame is complete once a newer stamp shows up
    yield from ready(None)


class Replayer:
    """Runs frames of a bag through a dense predictor (and an optional segmentation step) and collects results.

    ``segment`` (a SegmentationStep, or None) is called as ``segment(rgb, frame)`` and returns extra images to
    write, ``{topic: (array, encoding)}``; with ground-truth instances its objects are scored too.
    """

    def __init__(self, predictor, config: ReplayConfig, *, segment: Callable | None = None,
                 example_count: int = 3):
        self.predictor = predictor
        self.config = config
        self.segment = segment
        self.example_count = example_count

    def run(self, bag_path: str | Path, out_bag: str | Path | None = None, storage: str = "mcap",
            progress: Callable[[int], None] | None = None) -> ReplayResult:
        config = self.config
        with BagReader(bag_path) as reader:
            reader.require(config.image_topic, (IMAGE_TYPE, COMPRESSED_TYPE))
            gt_topics = {}
            for key, topic in config.ground_truth.items():
                if topic is None:
                    continue
                if topic in reader.topics:
                    gt_topics[key] = topic
                elif topic != GROUND_TRUTH_DEFAULTS.get(key):
                    reader.require(topic, (IMAGE_TYPE,))  # an explicitly named topic must exist
            result = ReplayResult(bag=str(bag_path), mode=config.mode,
                                  frames_in_bag=reader.message_count(config.image_topic))
            writer = BagWriter(out_bag, storage) if out_bag is not None else None
            evaluation = DenseEvaluation()
            frames = _group_frames(reader, config.image_topic, gt_topics)
            if config.max_frames is not None:
                frames = (f for f in frames if f.index < config.max_frames)
            start = time.monotonic()
            try:
                source = self._realtime(frames, result) if config.mode == "realtime" else frames
                for frame in source:
                    record = self._process(frame, writer, evaluation, result)
                    result.records.append(record)
                    if progress is not None:
                        progress(1)
            finally:
                if writer is not None:
                    writer.close()
                    result.output_bag = str(out_bag)
            result.wall_s = time.monotonic() - start
            result.bag_error = reader.error
        result.metrics = evaluation.result()
        if result.instance_ious:
            result.metrics["instances"] = {"mIoU": float(np.mean(result.instance_ious) * 100),
                                           "objects_scored": len(result.instance_ious)}
        if result.records:
            stamps = [r.stamp_ns for r in result.records]
            result.bag_duration_s = (max(stamps) - min(stamps)) / 1e9
        return result

    def _realtime(self, frames: Iterator[BagFrame], result: ReplayResult) -> Iterator[BagFrame]:
        """Deliver frames at their recorded log times (divided by ``speed``) through a newest-frame mailbox."""
        mailbox: LatestFrameMailbox[BagFrame] = LatestFrameMailbox()
        finished = threading.Event()

        def feed():
            first_log, t0 = None, time.monotonic()
            try:
                for frame in frames:
                    if first_log is None:
                        first_log = frame.log_time_ns
                    due = t0 + (frame.log_time_ns - first_log) / 1e9 / self.config.speed
                    time.sleep(max(0.0, due - time.monotonic()))
                    frame.arrival = time.monotonic()
                    mailbox.put(frame)
            finally:
                finished.set()
                mailbox.close()

        feeder = threading.Thread(target=feed, name="replay_feeder", daemon=True)
        feeder.start()
        while True:
            frame = mailbox.take(timeout=0.5)
            if frame is not None:
                yield frame
            elif finished.is_set():
                break
        feeder.join()
        result.dropped = mailbox.dropped

    def _process(self, frame: BagFrame, writer: BagWriter | None, evaluation: DenseEvaluation,
                 result: ReplayResult) -> FrameRecord:
        config = self.config
        arrival = frame.arrival or time.monotonic()
        stages: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(stage: str):
            nonlocal clock
            now = time.perf_counter()
            stages[stage] = now - clock
            clock = now

        try:
            rgb = np.ascontiguousarray(image_to_rgb(frame.image_msg))
            check_panorama(rgb, config.min_height, config.max_width)
        except ValueError as exc:
            return FrameRecord(frame.index, frame.stamp_ns, stages, 0.0, error=str(exc))
        lap("decode")
        prediction = self.predictor.predict(rgb)
        lap("model")
        products = dense_products(rgb, prediction, OUTPUT_TOPICS, config.dense)
        lap("products")
        extra = self.segment(rgb, frame) if self.segment is not None else {}
        lap("segment")
        if writer is not None:
            self._write(writer, frame, products, extra)
        lap("write")
        gt = {key: message_to_numpy(msg) for key, msg in frame.ground_truth_msgs.items()}
        if "instances" in extra and "instances" in gt:
            result.instance_ious.extend(self.segment.instance_ious(extra["instances"][0], gt["instances"]))
        evaluation.add(semantic=prediction.semantic, semantic_gt=gt.get("semantic"),
                       depth=prediction.depth, depth_gt=gt.get("depth"),
                       normals=prediction.normals, normals_gt=gt.get("normals"))
        if len(result.examples) < self.example_count:
            result.examples.append({"index": frame.index, "rgb": rgb, "prediction": prediction, "gt": gt,
                                    "extra": extra})
        return FrameRecord(frame.index, frame.stamp_ns, stages, time.monotonic() - arrival)

    def _write(self, writer: BagWriter, frame: BagFrame, products: dict, extra: dict) -> None:
        namespace = self.config.output_namespace.rstrip("/")
        msg_header = header(frame.stamp_ns, frame.image_msg.header.frame_id)
        writer.write(self.config.image_topic, frame.image_msg.__msgtype__, frame.log_time_ns, frame.image_msg)
        for topic, product in products.items():
            if topic == "depth/points":
                msg = pointcloud_message(product.points, product.rgb, msg_header)
                writer.write(f"{namespace}/{topic}", POINTCLOUD_TYPE, frame.log_time_ns, msg)
            else:
                msg = image_message(product, IMAGE_ENCODINGS[topic], msg_header)
                writer.write(f"{namespace}/{topic}", IMAGE_TYPE, frame.log_time_ns, msg)
        for topic, (array, encoding) in extra.items():
            writer.write(f"{namespace}/{topic}", IMAGE_TYPE, frame.log_time_ns,
                         image_message(array, encoding, msg_header))


def prompt_session(spec: dict, height: int, width: int):
    """A SAP PromptSession from a prompt spec in ERP pixels of a ``width`` x ``height`` panorama.

    ``spec = {"objects": [{"points": [[x, y], ...], "negative": [[x, y], ...], "box": [x0, y0, x1, y1]}, ...]}``;
    each object needs a point or a box. Pixel coordinates are continuous (pixel centres at +0.5).
    """
    from .models.sap import BoxPrompt, PointPrompt, PromptSession

    session = PromptSession()
    objects = spec.get("objects")
    if not isinstance(objects, list) or not objects:
        raise ValueError("a prompt spec needs a non-empty 'objects' list")
    for i, obj in enumerate(objects):
        if not (obj.get("points") or obj.get("box")):
            raise ValueError(f"prompt object {i} has neither 'points' nor a 'box'")
        try:
            if obj.get("box"):  # a box starts its object; the clicks below then refine it
                session.add_box(BoxPrompt.from_erp_pixels(*map(float, obj["box"]), height, width))
            else:
                session.new_object()
            for x, y in obj.get("points", []):
                session.add_point(PointPrompt.from_erp_pixel(float(x), float(y), height, width, positive=True))
            for x, y in obj.get("negative", []):
                session.add_point(PointPrompt.from_erp_pixel(float(x), float(y), height, width, positive=False))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"prompt object {i}: {exc}") from None
    return session


class SegmentationStep:
    """SAP in replay: the same prompts segment every frame, as the sap_node does with ``track_new_frames``.

    Returns the sap_node's ``instances`` (mono16) and ``instances/color`` (rgb8) for the output bag, and keeps
    the clicked pixels so ``instance_ious`` can score each object against the ground-truth instance under its
    first click.
    """

    def __init__(self, segmenter, spec: dict, alpha: float = 0.5):
        self.segmenter = segmenter
        self.spec = spec
        self.alpha = alpha
        self._sessions: dict[tuple[int, int], object] = {}

    def session(self, height: int, width: int):
        if (height, width) not in self._sessions:
            self._sessions[(height, width)] = prompt_session(self.spec, height, width)
        return self._sessions[(height, width)]

    def __call__(self, rgb: np.ndarray, frame: BagFrame) -> dict[str, tuple[np.ndarray, str]]:
        from .models.sap.products import instance_overlay

        session = self.session(*rgb.shape[:2])
        self.segmenter.set_image(rgb)
        result = self.segmenter.segment(session.objects)
        overlay = instance_overlay(rgb, result.instances, self.alpha, session.objects)
        return {"instances": (result.instances, "mono16"), "instances/color": (overlay, "rgb8")}

    def instance_ious(self, instances: np.ndarray, gt_instances: np.ndarray) -> list[float]:
        """IoU of each prompted object with the ground-truth instance under its first positive click."""
        ious = []
        for object_id, obj in enumerate(self.spec["objects"], start=1):
            x, y = (obj.get("points") or [[(obj["box"][0] + obj["box"][2]) / 2,
                                           (obj["box"][1] + obj["box"][3]) / 2]])[0]
            target_id = gt_instances[min(int(y), gt_instances.shape[0] - 1), min(int(x), gt_instances.shape[1] - 1)]
            target = gt_instances == target_id
            predicted = instances == object_id
            union = np.logical_or(target, predicted).sum()
            ious.append(float(np.logical_and(target, predicted).sum() / union) if union else 0.0)
        return ious
