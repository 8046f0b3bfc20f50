"""sap_node: promptable instance segmentation of a 360-degree camera's ERP image (SAP, docs/SAP.md).

A lifecycle node like the dense node: publishers on configure; the segmenter (scan + backend) loads on activate
and is freed on deactivate; ``autostart`` walks it to active. Clicks (ERP pixels, rqt_image_view clicks, 3D
points such as RViz's Publish Point) and boxes accumulate into objects; every change re-segments the newest
panorama, and with ``track_new_frames`` every new panorama is segmented with the current prompts. Bad frames
and bad prompts give a throttled error and an ERROR diagnostic; the node keeps running.
"""
from __future__ import annotations

import copy
import threading
import time
from collections import deque

import numpy as np
from geometry_msgs.msg import Point, PointStamped, PolygonStamped
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, PointCloud2
from std_msgs.msg import ColorRGBA
from std_srvs.srv import Trigger
from visualization_msgs.msg import Marker, MarkerArray

from ..models.sap.backend import PRECISIONS, available_backends
from ..models.sap.prompts import BoxPrompt, PointPrompt
from ..models.sap.segmenter import PROMPT_FRAMES, PromptSession
from .conversions import (
    ImageConversionError,
    image_to_numpy,
    numpy_to_image,
    pointcloud2,
)
from .params import Param
from .perception_node import PerceptionNode, input_parameters, run_node

PARAMETERS = [
    Param("model.backend", "builtin", "Segmenter backend (registered names; 'builtin' ships with the package, "
          "'oracle' is for tests)", choices=tuple(available_backends()), read_only=True),
    Param("model.config", "", "Backend model configuration (sam2: tiny, small, base+, large; empty = tiny; builtin: "
          "empty)", read_only=True),
    Param("model.checkpoint", "", "Backend weights (builtin: empty = the shipped weights, or a .safetensors; sam2: "
          "the official sam2.1 .pt; oracle: an instance-id ERP)", read_only=True),
    Param("precision", "fp32", "Backend precision (fp16 needs CUDA)", choices=PRECISIONS, read_only=True),
    Param("scan.fov_deg", 90.0, "Field of view of each scan view (degrees)", min=10.0, max=170.0, read_only=True),
    Param("scan.overlap", 0.5, "Overlap of neighbouring views; the step is fov * (1 - overlap)", min=0.0,
          max=0.95, read_only=True),
    Param("scan.pitch_deg", [45.0, 0.0, -45.0], "Pitch of each row of views (degrees)", read_only=True),
    Param("scan.frame_size", 256, "Side of the square scan frames (px; builtin works at 128 and resamples, sam2 "
          "wants its input size 1024)", min=64,
          max=4096, read_only=True),
    Param("scan.prompt_frames", "visible", "Frames that get an object's prompts: every frame where a positive "
          "click is visible, or only the most central one", choices=PROMPT_FRAMES, read_only=True),
    Param("fusion.threshold", 0.5, "Fused probability at which a pixel belongs to an object", min=0.01, max=1.0,
          read_only=True),
    Param("fusion.min_component_px", 0, "Drop object fragments smaller than this (ERP px; 0 = keep all)", min=0,
          max=10000000, read_only=True),
    Param("everything.points", 64, "Prompts on the Fibonacci sphere for ~/segment_everything", min=1, max=4096),
    Param("everything.iou_threshold", 0.7, "Masks overlapping a better one by more than this IoU are dropped",
          min=0.05, max=1.0),
    Param("everything.min_area", 0.0001, "Masks smaller than this fraction of the sphere are dropped", min=0.0,
          max=1.0),
    Param("everything.batch", 16, "Objects tracked together in one scan", min=1, max=256),
    Param("track_new_frames", True, "Segment every new panorama with the current prompts (else only when the "
          "prompts change)"),
    Param("instances.alpha", 0.5, "Object colour weight in instances/color", min=0.0, max=1.0),
    Param("points.decimation", 2, "Keep every n-th row and column in instances/points", min=1, max=64),
    Param("points.max_range", 45.0, "Drop points farther than this (m)", min=0.1, max=10000.0),
    Param("points.default_range", 1.0, "Range of points and markers when no depth is known (m)", min=0.01,
          max=1000.0),
    *input_parameters(),
]

OUTPUTS = {"instances": Image, "instances/color": Image, "instances/points": PointCloud2,
           "instances/markers": MarkerArray}
PROMPT_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
DEPTH_HISTORY = 4  # recent depth images kept to find the one with the panorama's stamp


class SapNode(PerceptionNode):
    """SAP on the newest ERP frame, driven by prompt topics and services; publishes instance ids and views."""

    PARAMETERS = PARAMETERS
    OUTPUTS = OUTPUTS
    HEALTH_NAME = "panoramic segmentation"

    def __init__(self, node_name: str = "sap_node", **kwargs):
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._session = PromptSession()
        self._mode = "prompts"  # or "everything"
        self._request = False  # the prompts or the mode changed: segment the newest panorama again
        self._image = None  # (rgb, header, received, serial) of the newest good panorama
        self._image_serial = 0
        self._segmented_serial = -1
        self._size: tuple[int, int] | None = None  # (H, W) of the newest panorama, for pixel prompts
        self._image_frame: str | None = None
        self._depths: deque = deque(maxlen=DEPTH_HISTORY)
        self._last_run: dict[str, object] = {}
        super().__init__(node_name, **kwargs)
        self._trigger_services = [
            self.create_service(Trigger, "~/reset", self._on_reset),
            self.create_service(Trigger, "~/undo", self._on_undo),
            self.create_service(Trigger, "~/new_object", self._on_new_object),
            self.create_service(Trigger, "~/segment_everything", self._on_segment_everything),
        ]

    # ----- model -----
    def _load_model(self):
        from ..models.builtin import sap_from_settings

        self._segmented_serial = -1
        return sap_from_settings(self.params)

    def _describe_model(self) -> str:
        return (f"SAP {self._model.backend.describe()}, {len(self._model.trajectory)} views of "
                f"{self.params['scan.frame_size']} px ({self.params['precision']}, {self.params['device']})")

    def _wake_worker(self) -> None:
        self._wake.set()

    # ----- subscriptions -----
    def _subscribe_inputs(self) -> None:
        """Prompt topics and the dense node's depth (for instances/points and markers)."""

        def sub(kind, topic, callback):
            self._extra_subscriptions.append(self.create_subscription(kind, topic, callback, PROMPT_QOS))

        sub(PointStamped, "prompt/pixel", lambda m: self._on_pixel(m.point.x, m.point.y, True, "prompt/pixel"))
        sub(PointStamped, "prompt/pixel/negative",
            lambda m: self._on_pixel(m.point.x, m.point.y, False, "prompt/pixel/negative"))
        # rqt_image_view's <image>_mouse_left: integer pixel indices, so the click is at the pixel's centre.
        sub(Point, "prompt/click", lambda m: self._on_pixel(m.x + 0.5, m.y + 0.5, True, "prompt/click"))
        sub(PointStamped, "prompt/point", lambda m: self._on_point(m, True, "prompt/point"))
        sub(PointStamped, "prompt/point/negative", lambda m: self._on_point(m, False, "prompt/point/negative"))
        sub(PolygonStamped, "prompt/box", self._on_box)
        sub(Image, "depth", self._on_depth)

    def _on_image(self, msg) -> None:
        if isinstance(msg, Image) and msg.height > 0 and msg.width == 2 * msg.height:
            with self._lock:  # pixel prompts may refer to this frame before the worker has decoded it
                self._size = (msg.height, msg.width)
                self._image_frame = msg.header.frame_id
        super()._on_image(msg)
        self._wake.set()

    def _on_depth(self, msg: Image) -> None:
        try:
            depth = image_to_numpy(msg)
            if msg.encoding != "32FC1" or depth.shape[1] != 2 * depth.shape[0]:
                raise ImageConversionError(f"expected a 2:1 32FC1 depth panorama; got {msg.encoding} "
                                           f"{msg.width}x{msg.height}")
        except ImageConversionError as exc:
            self.health.error("depth", f"depth: {exc}", self.get_logger())
            return
        self._depths.append(((msg.header.stamp.sec, msg.header.stamp.nanosec), depth.copy()))

    # ----- prompts and services -----
    def _prompt_error(self, message: str) -> None:
        self.health.error("prompt", message, self.get_logger(), throttle_s=1.0)

    def _accept(self, add, description: str) -> None:
        """Apply ``add(session)`` (returns the object id), switch to prompt mode and wake the worker."""
        with self._lock:
            object_id = add(self._session)
            self._mode = "prompts"
            self._request = True
        self.get_logger().info(f"object {object_id}: {description}")
        self._wake.set()

    def _on_pixel(self, x: float, y: float, positive: bool, topic: str) -> None:
        with self._lock:
            size = self._size
        if size is None:
            self._prompt_error(f"{topic}: prompt before any panorama was received; dropped")
            return
        try:
            point = PointPrompt.from_erp_pixel(x, y, *size, positive=positive)
        except ValueError as exc:
            self._prompt_error(f"{topic}: {exc}; dropped")
            return
        self._accept(lambda s: s.add_point(point), f"{'positive' if positive else 'negative'} click at "
                     f"({x:.1f}, {y:.1f}) px")

    def _on_point(self, msg: PointStamped, positive: bool, topic: str) -> None:
        with self._lock:
            size, image_frame = self._size, self._image_frame
        if size is None:
            self._prompt_error(f"{topic}: prompt before any panorama was received; dropped")
            return
        frames = {"", image_frame, self.params["frame_id"]} - {None}
        if msg.header.frame_id not in frames:
            self._prompt_error(f"{topic}: the point is in frame {msg.header.frame_id!r} but the panorama is in "
                               f"{image_frame!r}; publish points in the camera frame (no TF lookup here); dropped")
            return
        try:
            point = PointPrompt(np.array([msg.point.x, msg.point.y, msg.point.z]), positive)
        except ValueError as exc:
            self._prompt_error(f"{topic}: {exc} (the point must not be the camera centre); dropped")
            return
        self._accept(lambda s: s.add_point(point), f"{'positive' if positive else 'negative'} direction "
                     f"{np.round(point.ray, 3).tolist()}")

    def _on_box(self, msg: PolygonStamped) -> None:
        with self._lock:
            size = self._size
        if size is None:
            self._prompt_error("prompt/box: prompt before any panorama was received; dropped")
            return
        corners = msg.polygon.points
        try:
            if len(corners) != 2:
                raise ValueError(f"a box needs 2 corners (top-left, bottom-right); got {len(corners)}")
            box = BoxPrompt.from_erp_pixels(corners[0].x, corners[0].y, corners[1].x, corners[1].y, *size)
        except ValueError as exc:
            self._prompt_error(f"prompt/box: {exc}; dropped")
            return
        self._accept(lambda s: s.add_box(box), "box")

    def _on_reset(self, request, response):
        with self._lock:
            self._session.reset()
            self._mode = "prompts"
            self._request = True
        self._wake.set()
        response.success, response.message = True, "all prompts cleared"
        return response

    def _on_undo(self, request, response):
        with self._lock:
            undone = self._session.undo()
            self._request = self._request or undone
        self._wake.set()
        response.success = undone
        response.message = "took back the last prompt" if undone else "nothing to undo"
        return response

    def _on_new_object(self, request, response):
        with self._lock:
            object_id = self._session.new_object()
        response.success, response.message = True, f"the next clicks go to object {object_id}"
        return response

    def _on_segment_everything(self, request, response):
        if self._model is None:
            response.success, response.message = False, "the node is not active"
        elif self._size is None:
            response.success, response.message = False, "no panorama received yet"
        else:
            with self._lock:
                self._mode = "everything"
                self._request = True
            self._wake.set()
            response.success = True
            response.message = (f"segmenting everything on the newest panorama "
                                f"({self.params['everything.points']} prompts)")
        return response

    # ----- processing -----
    def _work(self) -> None:
        while self._running:
            self._wake.wait(0.2)
            self._wake.clear()
            if not self._running:
                break
            new_image = self._take_image()
            with self._lock:
                run = self._request or (new_image and self.params["track_new_frames"]
                                        and (self._mode == "everything" or self._session.has_prompts))
                self._request = False
                mode, objects = self._mode, copy.deepcopy(self._session.objects)
            if not run or self._image is None:
                continue
            try:
                self._segment(mode, objects)
            except ValueError as exc:
                self.health.error(type(exc).__name__, f"cannot segment: {exc}", self.get_logger())
            except Exception as exc:  # keep running on anything the backend or a publisher throws
                self.health.error("internal", f"segmentation failed: {exc!r}", self.get_logger())

    def _take_image(self) -> bool:
        """Decode the newest frame, if any; True when a good new panorama is available."""
        item = self._mailbox.take(timeout=0.0)
        if item is None:
            return False
        msg, received = item
        try:
            rgb = self._decode(msg)
        except ValueError as exc:  # ImageConversionError included
            self.health.error(type(exc).__name__, f"bad input frame: {exc}", self.get_logger())
            return False
        self._image_serial += 1
        self._image = (rgb, msg.header, received, self._image_serial)
        with self._lock:
            self._size = rgb.shape[:2]
            self._image_frame = msg.header.frame_id
        return True

    def _segment(self, mode: str, objects) -> None:
        wanted = self._wanted()
        segmenter = self._model
        if not wanted or segmenter is None:
            return
        rgb, header, received, serial = self._image
        started = time.monotonic()
        if self._segmented_serial != serial:
            segmenter.set_image(rgb)
            self._segmented_serial = serial
        p = self.params
        if mode == "everything":
            result = segmenter.segment_everything(p["everything.points"], p["everything.iou_threshold"],
                                                  p["everything.min_area"], p["everything.batch"])
            objects = []
        else:
            result = segmenter.segment(objects)
        header = self._output_header(copy.deepcopy(header))
        self._publish(wanted, result.instances, rgb, header, objects)
        self._frame_done(received)
        self._last_run = {"mode": mode, "objects": len(result.object_ids), "scan_frames": result.frames,
                          "segment_s": f"{time.monotonic() - started:.3f}",
                          **{f"{k}_s": f"{v:.3f}" for k, v in result.timings.items()}}

    def _depth_for(self, header) -> np.ndarray | None:
        """The depth with the panorama's stamp when one arrived, else the newest depth, else None."""
        if not self._depths:
            return None
        stamp = (header.stamp.sec, header.stamp.nanosec)
        return next((d for s, d in reversed(self._depths) if s == stamp), self._depths[-1][1])

    def _publish(self, wanted: set[str], instances: np.ndarray, rgb: np.ndarray, header, objects) -> None:
        from ..models.sap.products import (
            instance_colours,
            instance_overlay,
            object_centroids,
            object_cloud,
        )

        p = self.params
        if "instances" in wanted:
            self._outputs["instances"].publish(numpy_to_image(instances, "mono16", header))
        if "instances/color" in wanted:
            overlay = instance_overlay(rgb, instances, p["instances.alpha"], objects)
            self._outputs["instances/color"].publish(numpy_to_image(overlay, "rgb8", header))
        depth = self._depth_for(header) if {"instances/points", "instances/markers"} & wanted else None
        if "instances/points" in wanted:
            cloud = object_cloud(instances, rgb, depth, decimation=p["points.decimation"],
                                 max_range=p["points.max_range"], default_range=p["points.default_range"])
            self._outputs["instances/points"].publish(
                pointcloud2(cloud.points, header, rgb=cloud.rgb, labels=cloud.labels, label_name="instance"))
        if "instances/markers" in wanted:
            anchors = object_centroids(instances, depth, p["points.default_range"])
            palette = instance_colours(int(instances.max())) / 255.0
            markers = [Marker(header=header, ns="sap", action=Marker.DELETEALL)]
            for object_id, position in anchors.items():
                marker = Marker(header=header, ns="sap", id=object_id, type=Marker.TEXT_VIEW_FACING,
                                action=Marker.ADD, text=f"object {object_id}")
                marker.pose.position = Point(x=float(position[0]), y=float(position[1]), z=float(position[2]))
                marker.pose.orientation.w = 1.0
                marker.scale.z = max(0.05, 0.08 * float(np.linalg.norm(position)))
                r, g, b = palette[object_id]
                marker.color = ColorRGBA(r=float(r), g=float(g), b=float(b), a=1.0)
                markers.append(marker)
            self._outputs["instances/markers"].publish(MarkerArray(markers=markers))

    def _diagnostic_values(self) -> dict[str, object]:
        with self._lock:
            objects = sum(not o.is_empty for o in self._session.objects)
            mode = self._mode
        return {"precision": self.params["precision"], "prompt_mode": mode, "prompted_objects": objects,
                **{f"last_{k}": v for k, v in self._last_run.items()}}


def main(args=None) -> None:
    """Entry point of the ``sap_node`` executable."""
    run_node(SapNode, args)


if __name__ == "__main__":
    main()
