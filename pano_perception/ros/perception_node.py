"""The lifecycle skeleton shared by dense_node and sap_node (yolo_ros style).

Publishers are created on configure; the model loads on activate (a failure is reported on /diagnostics and the
node stays up) and is freed on deactivate; ``autostart`` walks the node to active. The ERP image arrives raw or
compressed, with QoS from parameters (``auto`` follows the camera's publisher), into a newest-frame mailbox read
by one worker thread. Subclasses provide the model, the worker loop and their outputs.
"""
from __future__ import annotations

import gc
import threading
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from sensor_msgs.msg import CompressedImage, Image

from ..dense import check_panorama
from ..runtime import LatestFrameMailbox
from .conversions import decode_compressed, image_to_rgb
from .diagnostics import NodeHealth
from .params import (
    DURABILITY_CHOICES,
    RELIABILITY_CHOICES,
    Param,
    ParameterError,
    declare,
    qos_profile,
    reliability_matching_publishers,
    validate,
)


def input_parameters(device_help: str = "Torch device: cpu, cuda, cuda:1, ...") -> list[Param]:
    """Parameters every perception node has: device, threads, image input and QoS, output and limits."""
    return [
        Param("device", "cpu", device_help, read_only=True),
        Param("num_threads", 0, "CPU threads for torch (0 = torch's default)", min=0, max=256, read_only=True),
        Param("input_compressed", False, "Subscribe to image/compressed (jpeg/png) instead of the raw image",
              read_only=True),
        Param("qos.reliability", "auto", "auto matches the camera's publisher (reliable when it is, else best "
              "effort); reliable is needed for 4K frames", choices=RELIABILITY_CHOICES, read_only=True),
        Param("qos.depth", 1, "Image subscription queue depth (1 = newest frame only)", min=1, max=100,
              read_only=True),
        Param("qos.durability", "volatile", "Image subscription durability", choices=DURABILITY_CHOICES,
              read_only=True),
        Param("frame_id", "", "Override the frame_id of every output (empty keeps the input's)"),
        Param("always_publish", False, "Compute and publish outputs even when nobody subscribes"),
        Param("min_height", 64, "Smallest accepted panorama height (px)", min=2, max=100000),
        Param("max_width", 8192, "Largest accepted panorama width (px)", min=4, max=100000),
        Param("diagnostics_period", 1.0, "Seconds between /diagnostics messages", min=0.05, max=60.0,
              read_only=True),
        Param("autostart", False, "Configure and activate at start-up", read_only=True),
    ]


class PerceptionNode(LifecycleNode):
    """Base of the perception nodes. Subclasses set PARAMETERS, OUTPUTS (topic -> type) and HEALTH_NAME, and
    implement ``_load_model``, ``_describe_model`` and ``_work``."""

    PARAMETERS: list[Param] = []
    OUTPUTS: dict = {}
    HEALTH_NAME = "perception"

    def __init__(self, node_name: str, **kwargs):
        self._mailbox: LatestFrameMailbox = LatestFrameMailbox()
        self._model = None
        self._outputs: dict = {}
        self._image_subscription = None
        self._extra_subscriptions: list = []
        self._subscribed_reliability: str | None = None
        self._worker: threading.Thread | None = None
        self._running = False
        self._frame_id: str | None = None
        self._input_width = 0  # camera width of the last good frame, pixels
        self._decode_scale = 1  # it was decoded at 1/_decode_scale of that size
        self._processed = 0
        self._lifecycle_label = "unconfigured"
        super().__init__(node_name, **kwargs)
        self.params = declare(self, self.PARAMETERS)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.health = NodeHealth(f"{self.get_name()}: {self.HEALTH_NAME}", self.params["device"])
        self._diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._timer = self.create_timer(self.params["diagnostics_period"], self._on_timer)

    # ----- subclass hooks -----
    def _load_model(self):
        raise NotImplementedError

    def _describe_model(self) -> str:
        raise NotImplementedError

    def _work(self) -> None:
        """The worker loop; runs while ``self._running``."""
        raise NotImplementedError

    def _subscribe_inputs(self) -> None:
        """Subscriptions besides the image (add them to ``self._extra_subscriptions``)."""

    def _diagnostic_values(self) -> dict[str, object]:
        return {}

    def _wake_worker(self) -> None:
        """Interrupt a worker waiting for something other than the mailbox."""

    # ----- lifecycle -----
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        self._outputs = {topic: self.create_lifecycle_publisher(kind, topic, 1) for topic, kind in self.OUTPUTS.items()}
        self._lifecycle_label = "inactive"
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        try:
            if self.params["num_threads"] > 0:
                import torch

                torch.set_num_threads(self.params["num_threads"])
            self._model = self._load_model()
        except Exception as exc:  # a missing or mismatched checkpoint must not kill the node
            self.health.fail("model", f"could not load the model: {exc}", self.get_logger())
            self._publish_diagnostics()
            return TransitionCallbackReturn.FAILURE
        self.health.recover()
        self._mailbox.reopen()
        self._running = True
        self._worker = threading.Thread(target=self._work, name=f"{self.get_name()}_worker", daemon=True)
        self._worker.start()
        self._subscribe_image()
        self._subscribe_inputs()
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

    def _stop_processing(self) -> None:
        self._running = False
        self._mailbox.close()
        self._wake_worker()
        for subscription in self._extra_subscriptions + [self._image_subscription]:
            if subscription is not None:
                self.destroy_subscription(subscription)
        self._extra_subscriptions, self._image_subscription = [], None
        worker, self._worker = self._worker, None
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=10.0)
        if self._model is not None:
            close = getattr(self._model, "close", None)
            if close is not None:
                close()
            self._model = None
            gc.collect()
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    # ----- image input -----
    @property
    def input_topic(self) -> str:
        return "image/compressed" if self.params["input_compressed"] else "image"

    def _subscribe_image(self) -> None:
        reliability = self.params["qos.reliability"]
        if reliability == "auto":
            reliability = reliability_matching_publishers(self, self.resolve_topic_name(self.input_topic)) \
                or "reliable"
        if self._image_subscription is not None:
            self.destroy_subscription(self._image_subscription)
        qos = qos_profile(reliability, self.params["qos.depth"], self.params["qos.durability"])
        kind = CompressedImage if self.params["input_compressed"] else Image
        self._image_subscription = self.create_subscription(kind, self.input_topic, self._on_image, qos)
        self._subscribed_reliability = reliability

    def _follow_publisher_qos(self) -> None:
        """In ``auto`` mode, re-subscribe when the camera's publishers need another reliability."""
        if self.params["qos.reliability"] != "auto" or self._image_subscription is None:
            return
        wanted = reliability_matching_publishers(self, self.resolve_topic_name(self.input_topic))
        if wanted is not None and wanted != self._subscribed_reliability:
            self.get_logger().warning(f"{self.input_topic}: publisher QoS needs a {wanted} subscription; "
                                      "re-subscribing")
            self._subscribe_image()

    def _on_image(self, msg) -> None:
        self.health.input_rate.tick()
        self._mailbox.put((msg, time.monotonic()))

    def _decode(self, msg) -> np.ndarray:
        """RGB uint8 panorama of an image message; ValueError (ImageConversionError) naming what is wrong. A JPEG
        is decoded at 1/``_jpeg_reduction()`` of its size, unless the camera's size changed since the last frame."""
        scale = 1
        if isinstance(msg, CompressedImage):
            rgb, scale = decode_compressed(msg, self._jpeg_reduction())
            if scale > 1 and (rgb.shape[1] * scale != self._input_width or rgb.shape[1] != 2 * rgb.shape[0]):
                rgb, scale = decode_compressed(msg)  # a new camera size: decode it whole, reduce from the next one
        else:
            rgb = image_to_rgb(msg)
        check_panorama(rgb, self.params["min_height"], self.params["max_width"], scale)
        self._check_frame_id(msg.header.frame_id)
        self._input_width, self._decode_scale = rgb.shape[1] * scale, scale
        return np.ascontiguousarray(rgb)

    def _jpeg_reduction(self) -> int:
        """Factor by which the next JPEG frame is decoded smaller (1: whole). Nodes that use fewer pixels than
        the camera sends override it, from ``_input_width``: the camera's width of the last good frame (0 before)."""
        return 1

    def _check_frame_id(self, frame_id: str) -> None:
        previous, self._frame_id = self._frame_id, frame_id
        if previous is not None and frame_id != previous:
            self.health.error("frame_id", f"input frame_id changed from {previous!r} to {frame_id!r}; outputs "
                              "follow the new frame", self.get_logger())

    def _output_header(self, header):
        """The input header, with ``frame_id`` replaced when the parameter is set."""
        if self.params["frame_id"]:
            header.frame_id = self.params["frame_id"]
        return header

    def _wanted(self) -> set[str]:
        if self.params["always_publish"]:
            return set(self._outputs)
        return {topic for topic, pub in self._outputs.items() if pub.get_subscription_count() > 0}

    def _frame_done(self, received: float) -> None:
        self._processed += 1
        self.health.processed_rate.tick()
        self.health.latency.add(time.monotonic() - received)

    # ----- parameters and diagnostics -----
    def _on_set_parameters(self, changes):
        table = {p.name: p for p in self.PARAMETERS}
        try:
            for change in changes:
                if change.name in table:
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
            "model": self._describe_model() if self._model is not None else "no model",
            "device": self.params["device"],
            "input_topic": self.resolve_topic_name(self.input_topic),
            "input_reliability": self._subscribed_reliability or "",
            "input_width": self._input_width,
            "decoded_at": f"1/{self._decode_scale}",
            "received_frames": self._mailbox.received,
            "dropped_frames": self._mailbox.dropped,
            "processed_frames": self._processed,
            **self._diagnostic_values(),
        })
        array.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics.publish(array)


def run_node(node_class, args=None) -> None:
    """Entry point body: start ``node_class``, autostart it if asked, spin until SIGINT; exit 2 on bad params."""
    rclpy.init(args=args)
    node = None
    try:
        try:
            node = node_class()
        except ParameterError as exc:
            rclpy.logging.get_logger(node_class.__name__).fatal(f"invalid parameter: {exc}")
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
