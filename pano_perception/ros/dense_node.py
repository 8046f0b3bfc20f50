"""dense_node: MTPano depth, normals, semantics and a coloured point cloud from a 360-degree camera.

A lifecycle node (see perception_node.py): the model loads on activate and is freed on deactivate; only the newest
frame is processed, frames arriving while the model runs are dropped and counted. Topics, parameters and QoS
advice: docs/NODES.md.
"""
from __future__ import annotations

from sensor_msgs.msg import Image, PointCloud2

from ..dense import (IMAGE_ENCODINGS, OUTPUT_TOPICS, DenseOptions, cloud_grid, decode_reduction, output_size,
                     predict_dense)
from .conversions import ImageConversionError, image_view, pointcloud2, pointcloud2_points_view
from .params import Param
from .perception_node import PerceptionNode, input_parameters, run_node

PARAMETERS = [
    Param("model.config", "builtin", "MTPano configuration name ('builtin' = the weights shipped with the "
          "package; 'large' for the official checkpoint)", read_only=True),
    Param("model.checkpoint", "", "Path to an official .pth/.safetensors checkpoint (empty with 'builtin')",
          read_only=True),
    Param("model.backend", "torch", "Inference backend", choices=("torch", "onnxruntime"), read_only=True),
    Param("model.onnx_path", "", "ONNX file for the onnxruntime backend", read_only=True),
    Param("precision", "fp32", "Inference precision (fp16 needs CUDA)", choices=("fp32", "fp16", "bf16"),
          read_only=True),
    *input_parameters(),
    Param("points.decimation", 2, "Keep every n-th row and column in depth/points", min=1, max=64),
    Param("points.min_range", 0.05, "Drop points closer than this (m)", min=0.0, max=1000.0),
    Param("points.max_range", 45.0, "Drop points farther than this (m)", min=0.1, max=10000.0),
    Param("semantic.alpha", 0.6, "Palette weight in semantic/color", min=0.0, max=1.0),
    Param("output.max_width", 0, "Publish images and points at most this wide (height = width / 2, the same "
          "sphere); 0 = the input's resolution. 1920 cuts a 4K camera's node overhead about 3x", min=0,
          max=16384),
]


def message_views(messages: dict, wanted, size: tuple[int, int], decimation: int, header=None) -> dict:
    """For each wanted topic, the array its product is written into: a view of the topic's reused message in
    ``messages`` (created when missing) sized for this frame, so nothing is copied before publishing. Image topics
    get their (h, w[, c]) image; ``depth/points`` the (h, w, 4) x, y, z + rgb block that ``pointcloud2`` completes."""
    views = {topic: image_view(messages.setdefault(topic, Image()), *size, encoding, header)
             for topic, encoding in IMAGE_ENCODINGS.items() if topic in wanted}
    if "depth/points" in wanted:
        views["depth/points"] = pointcloud2_points_view(messages.setdefault("depth/points", PointCloud2()),
                                                        *cloud_grid(*size, decimation))
    return views


class DenseNode(PerceptionNode):
    """MTPano on the newest ERP frame; publishes depth, normals, semantics, their colour images and points."""

    PARAMETERS = PARAMETERS
    OUTPUTS = {topic: PointCloud2 if topic == "depth/points" else Image for topic in OUTPUT_TOPICS}
    HEALTH_NAME = "dense perception"

    def __init__(self, node_name: str = "dense_node", **kwargs):
        self._messages: dict = {}  # one reusable message per output topic (no per-frame buffer allocation)
        super().__init__(node_name, **kwargs)

    def _load_model(self):
        from ..models.builtin import mtpano_from_settings

        return mtpano_from_settings(self.params)

    def _describe_model(self) -> str:
        return f"MTPano {self._model.config.name} ({self.params['precision']}, {self.params['device']})"

    def _jpeg_reduction(self) -> int:
        if not self._input_width or self._model is None:
            return 1
        return decode_reduction(self._input_width, self.params["output.max_width"], self._model.config.image_size[1])

    def _diagnostic_values(self) -> dict[str, object]:
        return {"precision": self.params["precision"]}

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

    def _process(self, msg, received: float) -> None:
        rgb = self._decode(msg)
        wanted = self._wanted()
        predictor = self._model
        if not wanted or predictor is None:
            return
        header = self._output_header(msg.header)
        options = DenseOptions.from_parameters(self.params)
        size = output_size(rgb.shape[0], rgb.shape[1], options.max_width)
        views = message_views(self._messages, wanted, size, options.decimation, header)
        products = predict_dense(predictor, rgb, wanted, options, out=views)
        if "depth/points" in products:
            cloud = products["depth/points"]
            pointcloud2(cloud.points, header, rgb=cloud.rgb, msg=self._messages["depth/points"])
        for topic in wanted:  # publishing copies the message out, so the buffers can be refilled next frame
            self._outputs[topic].publish(self._messages[topic])
        self._frame_done(received)


def main(args=None) -> None:
    """Entry point of the ``dense_node`` executable."""
    run_node(DenseNode, args)


if __name__ == "__main__":
    main()
