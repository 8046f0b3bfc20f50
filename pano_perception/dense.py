"""Dense products for display and transport, from a prediction and its RGB panorama. No ROS here.

Colour images for RViz (semantic overlay, normals), and the point cloud arrays behind ``depth/points``:
camera frame (REP-103), metres, one point per kept pixel.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from .cpu import check_destination, set_nan
from .geometry import erp_rays
from .labels import colorize_semantic


def semantic_overlay(rgb: np.ndarray, semantic: np.ndarray, alpha: float,
                     out: np.ndarray | None = None) -> np.ndarray:
    """RGB uint8 blend: ``alpha`` * ADE20K palette colour + (1 - alpha) * image (a new array, or ``out``).

    ``semantic``: ids at the image's size, or at another size of the same panorama (e.g. the network's output),
    resized to it by nearest neighbour with half-pixel centres like ``resize_labels``, which gives the same bytes
    as colouring the resized ids (colouring 128x256 ids instead of 4K ones: 4.9 against 8.8 ms)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1]; got {alpha}")
    height, width = rgb.shape[:2]
    check_destination(out, (height, width, 3), np.uint8)
    colours = colorize_semantic(semantic, size=(height, width), out=out)
    return cv2.addWeighted(colours, alpha, np.ascontiguousarray(rgb), 1.0 - alpha, 0.0, dst=out)


def normals_to_color(normals: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Unit normals (H, W, 3) -> RGB uint8 encoding (n + 1) / 2 (a new array, or ``out``); invalid (NaN) pixels
    are black."""
    check_destination(out, (*normals.shape[:2], 3), np.uint8)
    return cv2.convertScaleAbs(normals, dst=out, alpha=127.5, beta=127.5)  # OpenCV saturates NaN to 0: black


@lru_cache(maxsize=8)
def _decimated_rays(height: int, width: int, step: int) -> np.ndarray:
    """(h, w, 4) float32: the unit rays of every ``step``-th pixel and a zero 4th column (the points' spare
    column; multiplying whole 16-byte rows is 2.5x faster than writing three of four columns)."""
    rays = erp_rays(height, width, numpy=True)[::step, ::step]
    padded = np.zeros(rays.shape[:2] + (4,), np.float32)
    padded[..., :3] = rays
    padded.setflags(write=False)
    return padded


@dataclass
class PointCloudArrays:
    """An organised cloud on the decimated pixel grid (h, w): points (h, w, 4) float32 (x, y, z in metres, camera
    frame, NaN where a pixel was dropped; the 4th column is spare room for a packed colour, so PointCloud2 can copy
    the block in one pass); per-point RGB (h, w, 3) uint8, optional normals and labels."""

    points: np.ndarray
    rgb: np.ndarray
    normals: np.ndarray | None = None
    labels: np.ndarray | None = None


def cloud_grid(height: int, width: int, decimation: int) -> tuple[int, int]:
    """(h, w) of the organised cloud ``depth_to_cloud`` makes from an H×W depth image."""
    return -(-height // decimation), -(-width // decimation)


def depth_to_cloud(depth: np.ndarray, rgb: np.ndarray, *, decimation: int = 1, min_range: float = 0.05,
                   max_range: float = 45.0, normals: np.ndarray | None = None, labels: np.ndarray | None = None,
                   out: np.ndarray | None = None) -> PointCloudArrays:
    """Radial ERP depth (H, W) -> organised points on every ``decimation``-th row and column.

    Points outside [min_range, max_range] or with invalid depth are NaN (the cloud keeps its shape, so a node
    can reuse one message buffer). The rays are those of the kept pixels' centres: decimation never shifts a point.
    ``out``: a float32 (h, w, 4) destination for the points (``cloud_grid``), e.g. a PointCloud2 buffer.
    """
    if decimation < 1:
        raise ValueError(f"decimation must be >= 1; got {decimation}")
    height, width = depth.shape
    grid = cloud_grid(height, width, decimation)
    check_destination(out, (*grid, 4), np.float32)
    rays = _decimated_rays(height, width, decimation)
    d = np.array(depth[::decimation, ::decimation], dtype=np.float32, order="C")  # a copy: NaN goes in below
    set_nan(d, cv2.bitwise_not(cv2.inRange(d, min_range, max_range)))  # NaN is in no range
    points = cv2.merge([d] * 4, dst=out)  # then times the rays in place: 2x numpy's broadcast over 4 columns
    cv2.multiply(points, rays, dst=points)

    def pick(image):
        return None if image is None else image[::decimation, ::decimation]

    return PointCloudArrays(points=points, rgb=pick(rgb), normals=pick(normals), labels=pick(labels))


def check_panorama(rgb: np.ndarray, min_height: int, max_width: int, scale: int = 1) -> None:
    """Raise ValueError naming the problem unless ``rgb`` is a 2:1 uint8 RGB panorama within the size limits.
    ``scale``: ``rgb`` was decoded at 1/scale of the camera's size, which the limits apply to."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 panorama (H, W, 3); got {rgb.dtype} {rgb.shape}")
    height, width = rgb.shape[0] * scale, rgb.shape[1] * scale
    if width != 2 * height:
        raise ValueError(f"the image is {width}x{height}, not a 2:1 equirectangular panorama")
    if height < min_height:
        raise ValueError(f"the panorama is {width}x{height}: smaller than the minimum height {min_height}")
    if width > max_width:
        raise ValueError(f"the panorama is {width}x{height}: wider than the maximum width {max_width}")


OUTPUT_TOPICS = ("depth", "depth/points", "normals", "normals/color", "semantic", "semantic/color")
#: Topics whose image is a product of the predictor itself (MTPanoPrediction fields of the same names).
PREDICTED_TOPICS = ("depth", "normals", "semantic")
IMAGE_ENCODINGS = {"depth": "32FC1", "normals": "32FC3", "normals/color": "rgb8", "semantic": "mono8",
                   "semantic/color": "rgb8"}


@dataclass(frozen=True)
class DenseOptions:
    """How predictions become products: the dense node's parameters of the same names. ``max_width``: products
    at most this wide (an ERP of the same sphere, height = width / 2); 0 keeps the input's resolution."""

    decimation: int = 2
    min_range: float = 0.05
    max_range: float = 45.0
    semantic_alpha: float = 0.6
    max_width: int = 0

    @classmethod
    def from_parameters(cls, params) -> DenseOptions:
        """From the dense node's parameters (``points.decimation``, ``points.min_range``, ``points.max_range``,
        ``semantic.alpha``, ``output.max_width``)."""
        return cls(decimation=params["points.decimation"], min_range=params["points.min_range"],
                   max_range=params["points.max_range"], semantic_alpha=params["semantic.alpha"],
                   max_width=params.get("output.max_width", 0))


def output_size(height: int, width: int, max_width: int) -> tuple[int, int]:
    """(h, w) of the products for an H×W panorama: the input size, or ``max_width`` × ``max_width / 2`` if smaller."""
    if max_width <= 0 or width <= max_width:
        return height, width
    return max_width // 2, max_width // 2 * 2


def decode_reduction(camera_width: int, max_width: int, network_width: int) -> int:
    """The largest k in 2, 4, 8 such that a panorama ``camera_width`` pixels wide, decoded at 1/k of its size (a
    JPEG's DCT scaling), still has at least the pixels the products (``max_width``, see ``output_size``) and the
    network input (``network_width``) take; 1 if none. E.g. 2 for a 3840-wide camera with max_width 1920."""
    needed = max(output_size(camera_width // 2, camera_width, max_width)[1], network_width)
    return next((k for k in (8, 4, 2) if camera_width % (2 * k) == 0 and camera_width // k >= needed), 1)


def predict_dense(predictor, rgb: np.ndarray, wanted, options: DenseOptions,
                  out: dict[str, np.ndarray] | None = None) -> dict[str, object]:
    """Run ``predictor`` (an MTPanoPredictor) on ``rgb`` and return ``dense_products`` at the output size; the
    colours of the overlay and the cloud come from the image averaged down to that size (``product_images``).
    ``out``: destination arrays by topic (see ``dense_products``; ``depth``, ``normals`` and ``semantic`` go to the
    predictor)."""
    out = out or {}
    size = output_size(rgb.shape[0], rgb.shape[1], options.max_width)
    colours, network_source = product_images(rgb, size, predictor.config.image_size[1])
    prediction = predictor.predict(network_source, size,
                                   out={topic: out[topic] for topic in PREDICTED_TOPICS if topic in out})
    return dense_products(colours, prediction, wanted, options, out)


def product_images(rgb: np.ndarray, size: tuple[int, int], network_width: int) -> tuple[np.ndarray, np.ndarray]:
    """(``rgb`` averaged down to the products' ``size``: their colours; the image the network input is resized
    from: that smaller image while it keeps ``network_width`` columns, else ``rgb``). A 4K frame is then averaged
    down once to 1920 or 1024 columns and the network input made from that, not from the 4K frame again
    (3840 -> 256 directly: 3.1 ms on 2 cores)."""
    colours = shrink_rgb(rgb, size)
    return colours, colours if size[1] >= network_width else rgb


def shrink_rgb(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 [H, W, 3] → ``size`` = (h, w), no larger: halved by OpenCV's area average (its fast path) while at
    least twice the size, then bilinear for the remaining factor below 2, whose two taps per axis span about the
    pixels each output pixel covers. 3840 → 1024: 1.1 ms, against 4.6 ms for torch's antialiased resize and 7.5 ms
    for OpenCV's generic area path, and nearer to the exact area average (mean difference 1.8 against 2.2 levels
    on a test pattern)."""
    while rgb.shape[0] >= 2 * size[0] and rgb.shape[1] >= 2 * size[1]:
        rgb = cv2.resize(rgb, (rgb.shape[1] // 2, rgb.shape[0] // 2), interpolation=cv2.INTER_AREA)
    if rgb.shape[:2] != tuple(size):
        rgb = cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return rgb


def _coarsest_semantic(prediction) -> np.ndarray:
    """The prediction's ids at the network's resolution when it has them (``semantic`` is their resizing)."""
    return prediction.semantic if prediction.model_semantic is None else prediction.model_semantic


def dense_products(rgb: np.ndarray, prediction, wanted, options: DenseOptions,
                   out: dict[str, np.ndarray] | None = None) -> dict[str, object]:
    """The dense node's outputs for one frame: topic -> image array (see IMAGE_ENCODINGS) or PointCloudArrays.

    ``prediction`` has ``depth``, ``normals`` and ``semantic`` (an MTPanoPrediction); only ``wanted`` topics are
    computed. ``out`` may give the destination arrays of ``normals/color``, ``semantic/color`` and the points of
    ``depth/points`` (views of message buffers: the node fills its messages without a copy). The node and
    ``pano-perception replay`` both call this, so they publish the same bytes.
    """
    unknown = set(wanted) - set(OUTPUT_TOPICS)
    if unknown:
        raise ValueError(f"unknown output topics {sorted(unknown)}; known: {list(OUTPUT_TOPICS)}")
    out = out or {}
    makers = {
        "depth": lambda: prediction.depth,
        "normals": lambda: prediction.normals,
        "normals/color": lambda: normals_to_color(prediction.normals, out=out.get("normals/color")),
        "semantic": lambda: prediction.semantic,
        "semantic/color": lambda: semantic_overlay(rgb, _coarsest_semantic(prediction), options.semantic_alpha,
                                                   out=out.get("semantic/color")),
        "depth/points": lambda: depth_to_cloud(prediction.depth, rgb, decimation=options.decimation,
                                               min_range=options.min_range, max_range=options.max_range,
                                               out=out.get("depth/points")),
    }
    return {topic: makers[topic]() for topic in OUTPUT_TOPICS if topic in wanted}
