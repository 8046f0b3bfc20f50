"""dense_node: MTPano depth, normals, semantics and a coloured point cloud from a 360-degree camera.

A lifecycle node (yolo_ros style): publishers on configure; the model loads on activate and is freed on
deactivate; ``autostart`` walks it to active by itself. Only the newest frame is processed; frames arriving
while the model runs are dropped and counted. Topics, parameters and QoS advice: docs/NODES.md.
"""
from __future__ import annotations

import gc
import threading
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from sensor_msgs.msg import CompressedImage, Image, PointCloud2

from ..dense import IMAGE_ENCODINGS, OUTPUT_TOPICS, DenseOptions, check_panorama, dense_products
from ..runtime import LatestFrameMailbox
from .conversions import ImageConversionError, compressed_to_rgb, image_to_rgb, numpy_to_image, pointcloud2
from .diagnostics import NodeHealth
from .params import (DURABILITY_CHOICES, RELIABILITY_CHOICES, Param, ParameterError, declare, qos_profile,
                     reliability_matching_publishers, validate)

PARAMETERS = [
    Param("model.config", "builtin", "MTPano configuration name ('builtin' = the weights shipped with the "
          "package; 'large' for the official checkpoint)", read_only=True),
    Param("model.checkpoint", "", "Path to an official .pth/.safetensors checkpoint (empty with 'builtin')",
          read_only=True),
    Param("model.backend", "torch", "Inference backend", choices=("torch", "onnxruntime"), read_only=True),
    Param("model.onnx_path", "", "ONNX file for the onnxruntime backend", read_only=True),
    Param("device", "cpu", "Torch device: cpu, cuda, cuda:1, ...", read_only=True),
    Param("precision", "fp32", "Inference precision (fp16 needs CUDA)", choices=("fp32", "fp16", "bf16"),
          read_only=True),
    Param("num_threads", 0, "CPU threads for torch (0 = torch's default)", min=0, max=256, read_only=True),
    Param("input_compressed", False, "Subscribe to image/compressed (jpeg/png) instead of the raw image",
          read_only=True),
    Param("qos.reliability", "auto", "auto matches the camera's publisher (reliable when it is, else best "
          "effort); reliable is needed for 4K frames", choices=RELIABILITY_CHOICES, read_only=True),
    Param("qos.depth", 1, "Subscription queue depth (1 = newest frame only)", min=1, max=100, read_only=True),
    Param("qos.durability", "volatile", "Subscription durability", choices=DURABILITY_CHOICES, read_only=True),
    Param("frame_id", "", "Override the frame_id of every output (empty keeps the input's)"),
    Param("always_publish", False, "Compute and publish outputs even when nobody subscribes"),
    Param("points.decimation", 2, "Keep every n-th row and column in depth/points", min=1, max=64),
    Param("points.min_range", 0.05, "Drop points closer than this (m)", min=0.0, max=1000.0),
    Param("points.max_range", 45.0, "Drop points farther than this (m)", min=0.1, max=10000.0),
    Param("semantic.alpha", 0.6, "Palette weight in semantic/color", min=0.0, max=1.0),
    Param("min_height", 64, "Smallest accepted panorama height (px)", min=2, max=100000),
    Param("max_width", 8192, "Largest accepted panorama width (px)", min=4, max=100000),
    Param("diagnostics_period", 1.0, "Seconds between /diagnostics messages", min=0.05, max=60.0,
          read_only=True),
    Param("autostart", False, "Configure and activate at start-up", read_only=True),
]

OUTPUTS = {topic: PointCloud2 if topic == "depth/points" else Image for topic in OUTPUT_TOPICS}


class DenseNode(LifecycleNode):
    """MTPano on the newest ERP frame; publishes depth, normals, semantics, their colour images and points."""

    def __init__(self, node_name: str = "dense_node", **kwargs):
        self._mailbox: LatestFrameMailbox = LatestFrameMailbox()
        self._predictor = None
        self._outputs: dict = {}
        self._messages: dict = {}  # one reusable message per output topic (no per-frame buffer allocation)
        self._subscription = None
        self._subscribed_reliability: str | None = None
        self._worker: threading.Thread | None = None
        self._running = False
        self._frame_id: str | None = None
        self._processed = 0
        self._lifecycle_label = "unconfigured"
        super().__init__(node_name, **kwargs)
        self.params = declare(self, PARAMETERS)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.health = NodeHealth(f"{self.get_name()}: dense perception", self.params["device"])
        self._diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._timer = self.create_timer(self.params["diagnostics_period"], self._on_timer)

    # ----- lifecycle -----
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        self._outputs = {topic: self.create_lifecycle_publisher(kind, topic, 1) for topic, kind in OUTPUTS.items()}
        self._lifecycle_label = "inactive"
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        try:
            self._predictor = self._load_model()
        except Exception as exc:  # a missing or mismatched checkpoint must not kill the node
            self.health.error("model", f"could not load the model: {exc}", self.get_logger())
            self._publish_diagnostics()
            return TransitionCallbackReturn.FAILURE
        self._mailbox.reopen()
        self._running = True
        self._worker = threading.Thread(target=self._work, name="dense_worker", daemon=True)
        self._worker.start()
        self._subscribe()
        self._lifecycle_label = "active"
        self.get_logger().info(f"active: {self._describe_model()} on {self.input_topic}")
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._stop_processing()
        self._lifecycle_label = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        for publisher in self._outputs.values():
            self.destroy_publisher(publisher)
        self._outputs = {}
        self._lifecycle_label = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._stop_processing()
        self._lifecycle_label = "finalized"
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self):
        self._stop_processing()
        return super().destroy_node()

    # ----- model -----
    def _load_model(self):
        import torch

        from ..models.builtin import load_mtpano_predictor

        if self.params["num_threads"] > 0:
            torch.set_num_threads(self.params["num_threads"])
        return load_mtpano_predictor(self.params["model.config"], self.params["model.checkpoint"],
                                     device=self.params["device"], precision=self.params["precision"],
                                     backend=self.params["model.backend"], onnx_path=self.params["model.onnx_path"])

    def _describe_model(self) -> str:
        if self._predictor is None:
            return "no model"
        return f"MTPano {self._predictor.config.name} ({self.params['precision']}, {self.params['device']})"

    def _free_model(self) -> None:
        self._predictor = None
        gc.collect()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # ----- input -----
    @property
    def input_topic(self) -> str:
        return "image/compressed" if self.params["input_compressed"] else "image"

    def _subscribe(self) -> None:
        reliability = self.params["qos.reliability"]
        if reliability == "auto":
            reliability = reliability_matching_publishers(self, self.resolve_topic_name(self.input_topic)) \
                or "reliable"
        if self._subscription is not None:
            self.destroy_subscription(self._subscription)
        qos = qos_profile(reliability, self.params["qos.depth"], self.params["qos.durability"])
        kind = CompressedImage if self.params["input_compressed"] else Image
        self._subscription = self.create_subscription(kind, self.input_topic, self._on_image, qos)
        self._subscribed_reliability = reliability

    def _follow_publisher_qos(self) -> None:
        """In ``auto`` mode, re-subscribe when the camera's publishers need another reliability."""
        if self.params["qos.reliability"] != "auto" or self._subscription is None:
            return
        wanted = reliability_matching_publishers(self, self.resolve_topic_name(self.input_topic))
        if wanted is not None and wanted != self._subscribed_reliability:
            self.get_logger().warning(f"{self.input_topic}: publisher QoS needs a {wanted} subscription; "
                                      "re-subscribing")
            self._subscribe()

    def _on_image(self, msg) -> None:
        self.health.input_rate.tick()
        self._mailbox.put((msg, time.monotonic()))

    # ----- processing -----
    def _work(self) -> None:
        while self._running:
            item = self._mailbox.take(timeout=0.2)
            if item is None or not self._running:
                continue
            msg, received = item
            try:
                self._process(msg, received)
            except (ImageConversionError, ValueError) as exc:
                self.health.error(type(exc).__name__, f"bad input frame: {exc}", self.get_logger())
            except Exception as exc:  # keep running on anything the model or a publisher throws
                self.health.error("internal", f"processing failed: {exc!r}", self.get_logger())

    def _wanted(self) -> set[str]:
        if self.params["always_publish"]:
            return set(self._outputs)
        return {topic for topic, pub in self._outputs.items() if pub.get_subscription_count() > 0}

    def _process(self, msg, received: float) -> None:
        rgb = compressed_to_rgb(msg) if isinstance(msg, CompressedImage) else image_to_rgb(msg)
        check_panorama(rgb, self.params["min_height"], self.params["max_width"])
        self._check_frame_id(msg.header.frame_id)
        wanted = self._wanted()
        predictor = self._predictor
        if not wanted or predictor is None:
            return
        prediction = predictor.predict(np.ascontiguousarray(rgb))
        header = msg.header
        if self.params["frame_id"]:
            header.frame_id = self.params["frame_id"]
        for topic, product in dense_products(rgb, prediction, wanted, self._dense_options()).items():
            previous = self._messages.get(topic)
            if topic == "depth/points":
                self._messages[topic] = pointcloud2(product.points, header, rgb=product.rgb, msg=previous)
            else:
                self._messages[topic] = numpy_to_image(product, IMAGE_ENCODINGS[topic], header, msg=previous)
        for topic in wanted:  # publishing copies the message out, so the buffers can be refilled next frame
            self._outputs[topic].publish(self._messages[topic])
        self._processed += 1
        self.health.processed_rate.tick()
        self.health.latency.add(time.monotonic() - received)

    def _dense_options(self) -> DenseOptions:
        return DenseOptions(decimation=self.params["points.decimation"], min_range=self.params["points.min_range"],
                            max_range=self.params["points.max_range"], semantic_alpha=self.params["semantic.alpha"])

    def _check_frame_id(self, frame_id: str) -> None:
        previous, self._frame_id = self._frame_id, frame_id
        if previous is not None and frame_id != previous:
            self.health.error("frame_id", f"input frame_id changed from {previous!r} to {frame_id!r}; outputs "
                              "follow the new frame", self.get_logger())

    def _stop_processing(self) -> None:
        self._running = False
        self._mailbox.close()
        if self._subscription is not None:
            self.destroy_subscription(self._subscription)
            self._subscription = None
        worker, self._worker = self._worker, None
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=5.0)
        if self._predictor is not None:
            self._free_model()

    # ----- parameters and diagnostics -----
    def _on_set_parameters(self, changes):
        from rcl_interfaces.msg import SetParametersResult

        table = {p.name: p for p in PARAMETERS}
        try:
            for change in changes:
                validate(table[change.name], change.value)
        except ParameterError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        for change in changes:
            self.params[change.name] = change.value
        return SetParametersResult(successful=True)

    def _on_timer(self) -> None:
        self._follow_publisher_qos()
        self._publish_diagnostics()

    def _publish_diagnostics(self) -> None:
        array = self.health.status(self._lifecycle_label, {
            "model": self._describe_model(),
            "device": self.params["device"],
            "precision": self.params["precision"],
            "input_topic": self.resolve_topic_name(self.input_topic),
            "input_reliability": self._subscribed_reliability or "",
            "received_frames": self._mailbox.received,
            "dropped_frames": self._mailbox.dropped,
            "processed_frames": self._processed,
        })
        array.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics.publish(array)


def main(args=None) -> None:
    """Entry point of the ``dense_node`` executable."""
    rclpy.init(args=args)
    node = None
    try:
        try:
            node = DenseNode()
        except ParameterError as exc:
            rclpy.logging.get_logger("dense_node").fatal(f"invalid parameter: {exc}")
            raise SystemExit(2) from None
        if node.params["autostart"]:
            node.trigger_configure()
            node.trigger_activate()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
