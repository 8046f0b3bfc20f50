"""dense_node costs: node overhead vs the model forward, PointCloud2 vs memcpy, and a live 4K stream.

1. Per frame at 1024x512 and 3840x1920 (outputs at the input size, and at output.max_width 1920 and 1024; raw
   rgb8 and JPEG input; synthetic-world panoramas, outdoor with sky unless said), in one process, each stage
   timed within the node's real frame sequence: decoding the message, the predictor's pre- and post-processing,
   and building all six output messages (every output subscribed), against the network forward; with the time
   merely filling the messages' bytes takes, the floor, and (not counted in the overhead: transport, like the
   receiving side) the time rclpy takes to publish the six messages.
2. A 512x1024 xyz+rgb PointCloud2 built from numpy against a plain memcpy of the same number of bytes.
3. (--stream-seconds > 0) dense_node as a real process fed 3840x1920 rgb8 frames at 30 Hz over Fast DDS:
   latency (header stamp -> depth received), node memory over time and the drop count from /diagnostics.

Run: .venv/bin/python benchmarks/dense_node.py [--config micro-cpu] [--stream-seconds 120] (default: the built-in
model; a config alone times its randomly initialised network)
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import torch

from timing import median_time

from pano_perception.dense import (OUTPUT_TOPICS, PREDICTED_TOPICS, DenseOptions, check_panorama, dense_products,
                                   decode_reduction, depth_to_cloud, output_size, product_images)
from pano_perception.models.builtin import BUILTIN_MTPANO_CONFIG, BUILTIN_MTPANO_WEIGHTS
from pano_perception.models.mtpano.postprocess import postprocess
from pano_perception.models.mtpano.predictor import MTPanoPredictor
from pano_perception.ros.conversions import (decode_compressed, image_to_rgb, numpy_to_image, pointcloud2,
                                             rgb_to_compressed)
from pano_perception.ros.dense_node import message_views
from pano_perception.synthetic.generator import generate_scene, sample_camera_poses
from pano_perception.synthetic.render import render_erp

REPO = Path(__file__).resolve().parents[1]


@lru_cache(maxsize=None)
def panorama(height: int, kind: str) -> np.ndarray:
    """A synthetic-world ERP of one ``kind`` of scene (seeds as the held-out evaluation set): an outdoor one has
    sky, whose pixels the node masks and fills, an indoor one none; random pixels would give a sky-free
    prediction and an unrealistically large JPEG."""
    scene = generate_scene(90002, kind)
    return render_erp(scene, sample_camera_poses(scene, 1, seed=90002)[0], height).rgb


def overhead(predictor: MTPanoPredictor, height: int, repeats: int, max_width: int = 0, jpeg: bool = False,
             kind: str = "outdoor", publisher_node=None) -> None:
    """Each stage timed inside a real per-frame sequence, as dense_node runs it (decode, pre-process, forward,
    post-processing into the messages' buffers, the other products and the PointCloud2), every output subscribed.
    Medians over ``repeats`` frames after two warm-up frames; timing stages in isolated loops would keep their data
    in the caches and under-count. The frame is a synthetic-world panorama of ``kind``, as an rgb8 Image or a JPEG
    CompressedImage (quality 90)."""
    rgb = panorama(height, kind)
    msg = rgb_to_compressed(rgb, "jpeg") if jpeg else numpy_to_image(rgb, "rgb8")
    reduction = decode_reduction(2 * height, max_width, predictor.config.image_size[1])  # as the node decodes

    def decode(msg):
        return decode_compressed(msg, reduction)[0] if jpeg else image_to_rgb(msg)

    options = DenseOptions(max_width=max_width)
    size = output_size(height, 2 * height, max_width)
    messages: dict = {}  # one reused message per topic, as the node keeps them
    stages = {name: [] for name in ("decode", "preprocess", "forward", "postprocess", "messages")}
    for frame in range(repeats + 2):
        start = time.perf_counter()
        rgb = np.ascontiguousarray(decode(msg))
        check_panorama(rgb, 64, 16384, reduction if jpeg else 1)
        decoded = time.perf_counter()
        with torch.inference_mode():
            colours, network_source = product_images(rgb, size, predictor.config.image_size[1])
            pixel_values = predictor.preprocess(network_source)
            preprocessed = time.perf_counter()
            outputs = predictor._forward(pixel_values)
            forwarded = time.perf_counter()
            views = message_views(messages, OUTPUT_TOPICS, size, options.decimation)
            prediction = postprocess(outputs, size, [{topic: views[topic] for topic in PREDICTED_TOPICS}])[0]
        postprocessed = time.perf_counter()
        products = dense_products(colours, prediction, OUTPUT_TOPICS, options, out=views)
        cloud = products["depth/points"]
        pointcloud2(cloud.points, rgb=cloud.rgb, msg=messages["depth/points"])
        done = time.perf_counter()
        if frame >= 2:
            for name, value in zip(stages, np.diff([start, decoded, preprocessed, forwarded, postprocessed, done])):
                stages[name].append(value)
    t = {name: statistics.median(values) for name, values in stages.items()}
    node_part = t["decode"] + t["preprocess"] + t["postprocess"] + t["messages"]
    frame_time = node_part + t["forward"]
    print(f"\n{2 * height}x{height} {kind}{' JPEG' if jpeg else ''} -> outputs {size[1]}x{size[0]}: "
          + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in t.items()))
    print(f"  overhead (all but forward) {node_part * 1000:.1f} ms = {100 * node_part / frame_time:.1f} % of a "
          f"{frame_time * 1000:.0f} ms frame")
    floor = product_write_floor(messages, repeats)
    print(f"  floor: filling the six messages' {floor[0] / 1e6:.0f} MB takes {floor[1] * 1000:.1f} ms = "
          f"{100 * floor[1] / (floor[1] + t['forward']):.1f} % of a frame with this forward")
    if publisher_node is not None:
        publishing = publish_time(publisher_node, messages, repeats)
        print(f"  not counted above (transport): rclpy publishing the six messages, no subscriber, "
              f"{publishing * 1000:.1f} ms")


def product_write_floor(messages: dict, repeats: int) -> tuple[int, float]:
    """(bytes of the published products, median seconds to fill that many bytes on all torch threads): what
    writing the products costs at this machine's memory bandwidth before anything is computed."""
    target = torch.empty(sum(len(msg.data) for msg in messages.values()), dtype=torch.uint8)
    return target.numel(), median_time(lambda: target.fill_(1), repeats)[0]


def publish_time(node, messages: dict, repeats: int) -> float:
    """Median seconds rclpy takes to publish ``messages`` (topic -> message) once each with no subscriber: its
    conversion of every message to C and Fast DDS's serialisation, which the node pays after building them."""
    publishers = {topic: node.create_publisher(type(msg), f"/bench_publish/h{msg.height}/{topic}", 1)
                  for topic, msg in messages.items()}

    def publish_all():
        for topic, msg in messages.items():
            publishers[topic].publish(msg)

    seconds = median_time(publish_all, repeats)[0]
    for publisher in publishers.values():
        node.destroy_publisher(publisher)
    return seconds


def pointcloud_vs_memcpy(repeats: int) -> None:
    rng = np.random.default_rng(1)
    depth = rng.uniform(0.5, 10, (512, 1024)).astype(np.float32)
    rgb = rng.integers(0, 256, (512, 1024, 3), dtype=np.uint8)
    cloud = depth_to_cloud(depth, rgb, decimation=1, max_range=100)
    msg = pointcloud2(cloud.points, rgb=cloud.rgb)
    t_cloud = median_time(lambda: pointcloud2(cloud.points, rgb=cloud.rgb, msg=msg), repeats)[0]
    t_full = median_time(lambda: depth_to_cloud(depth, rgb, decimation=1, max_range=100), repeats)[0]
    source = np.ones(len(msg.data), np.uint8)
    target = np.empty_like(source)
    t_copy = median_time(lambda: np.copyto(target, source), repeats)[0]
    print(f"\nPointCloud2 512x1024 xyz+rgb ({source.nbytes / 1e6:.1f} MB) into a reused message: "
          f"{t_cloud * 1000:.2f} ms, memcpy of the same bytes {t_copy * 1000:.2f} ms, ratio {t_cloud / t_copy:.1f}x "
          f"(depth -> points before it: {t_full * 1000:.1f} ms)")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def stream(config: str, checkpoint: str | None, seconds: float) -> None:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    env = {k: v for k, v in os.environ.items() if k != "_ROS_WHEELS_BOOTSTRAP_COMPLETE"}
    params = ["-p", "autostart:=true", "-p", f"model.config:={config}", "-p", "diagnostics_period:=1.0"]
    if checkpoint:
        params += ["-p", f"model.checkpoint:={checkpoint}"]
    node = subprocess.Popen([sys.executable, "-m", "pano_perception.ros.dense_node", "--ros-args",
                             "-r", "__ns:=/bench", *params], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    rclpy.init()
    harness = rclpy.create_node("bench_stream")
    latencies, memory, diagnostics = [], [], {}
    reliable = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)

    def on_depth(msg):
        now = harness.get_clock().now().nanoseconds
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        latencies.append((time.monotonic(), (now - stamp) / 1e6))

    def on_diag(msg):
        for status in msg.status:
            if "dense perception" in status.name:
                diagnostics.update({kv.key: kv.value for kv in status.values})

    harness.create_subscription(Image, "/bench/depth", on_depth, reliable)
    harness.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
    publisher = harness.create_publisher(Image, "/bench/image", reliable)
    executor = SingleThreadedExecutor()
    executor.add_node(harness)
    threading.Thread(target=executor.spin, daemon=True).start()
    while diagnostics.get("state") != "active":
        time.sleep(0.2)
    msg = numpy_to_image(panorama(1920, "outdoor"), "rgb8")
    msg.header.frame_id = "camera_link"
    start, sent, next_memory = time.monotonic(), 0, 0.0
    while time.monotonic() - start < seconds:
        msg.header.stamp = harness.get_clock().now().to_msg()
        publisher.publish(msg)
        sent += 1
        elapsed = time.monotonic() - start
        if elapsed >= next_memory:
            memory.append((elapsed, rss_mb(node.pid)))
            next_memory += 5.0
        time.sleep(max(0.0, start + sent / 30.0 - time.monotonic()))
    time.sleep(3.0)
    node.send_signal(2)
    node.wait(10)
    executor.shutdown()
    rclpy.try_shutdown()
    quarter = len(latencies) // 4 or 1
    first = [lat for _, lat in latencies[:quarter]]
    last = [lat for _, lat in latencies[-quarter:]]
    print(f"\n4K stream, {seconds:.0f} s at 30 Hz: sent {sent} ({sent / seconds:.1f} Hz achieved by the publisher), "
          f"node received {diagnostics.get('received_frames')}, processed {diagnostics.get('processed_frames')}, "
          f"dropped {diagnostics.get('dropped_frames')}; outputs received {len(latencies)}")
    if latencies:
        print(f"  latency median first quarter {statistics.median(first):.0f} ms, last quarter "
              f"{statistics.median(last):.0f} ms; node p95 {diagnostics.get('latency_p95_ms')} ms")
    print(f"  node RSS MB over time: {', '.join(f'{t:.0f}s:{m:.0f}' for t, m in memory)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None,
                        help="MTPano config (random weights without --checkpoint; default: the built-in model)")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--stream-seconds", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=0, help="torch and OpenCV threads (0: their defaults)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    import warnings

    warnings.simplefilter("ignore", UserWarning)
    if args.config is None:
        args.config, args.checkpoint = BUILTIN_MTPANO_CONFIG, str(BUILTIN_MTPANO_WEIGHTS)
    if args.checkpoint is None:  # timing only: save the randomly initialised network for the node process
        from safetensors.torch import save_file

        from pano_perception.models.mtpano.model import build_mtpano

        args.checkpoint = "/tmp/pano_benchmark_random_weights.safetensors"
        save_file(build_mtpano(args.config).state_dict(), args.checkpoint)
    predictor = MTPanoPredictor(args.config, args.checkpoint)
    print(f"MTPano {args.config}, torch {torch.__version__}, {torch.get_num_threads()} torch threads")
    import rclpy

    rclpy.init()
    publisher_node = rclpy.create_node("bench_publish")
    for height, max_width, jpeg, kind in ((512, 0, False, "indoor"), (512, 0, False, "outdoor"),
                                          (512, 0, True, "outdoor"), (1920, 0, False, "outdoor"),
                                          (1920, 1920, False, "outdoor"), (1920, 1920, True, "outdoor"),
                                          (1920, 1024, False, "outdoor")):
        overhead(predictor, height, args.repeats, max_width, jpeg, kind, publisher_node)
    publisher_node.destroy_node()
    rclpy.shutdown()
    pointcloud_vs_memcpy(args.repeats)
    if args.stream_seconds > 0:
        stream(args.config, args.checkpoint, args.stream_seconds)


if __name__ == "__main__":
    main()
