"""``pano-perception replay BAG``: the dense model (and SAP) over a rosbag2; output bag, metrics and a report."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from ..bagio import BagError
from ..models.builtin import mtpano_from_settings, sap_from_settings
from ..replay import GROUND_TRUTH_DEFAULTS, ReplayConfig, Replayer, SegmentationStep
from ..report import write_report
from .common import (
    add_model_arguments,
    add_sap_arguments,
    dense_options,
    dense_settings,
    sap_settings,
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("replay", help="run the models over a rosbag2 and report accuracy and speed",
                                   description=__doc__)
    parser.add_argument("bag", help="rosbag2 folder or .mcap/.db3 file")
    parser.add_argument("--image-topic", default="/camera/image", help="ERP image topic (sensor_msgs/Image)")
    parser.add_argument("--compressed", action="store_true", help="read <image-topic>/compressed instead")
    for key, topic in GROUND_TRUTH_DEFAULTS.items():
        parser.add_argument(f"--{key}-topic", default=topic,
                            help=f"ground-truth {key} topic, used when present ('' to ignore)")
    parser.add_argument("--mode", choices=("fast", "realtime"), default="fast",
                        help="fast: every frame as fast as possible; realtime: at the recorded rate, dropping "
                             "frames like the node")
    parser.add_argument("--speed", type=float, default=1.0, help="real-time playback speed factor")
    parser.add_argument("--out-bag", default=None, help="write the nodes' topics to this new bag")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    parser.add_argument("--report", default=None, help="report folder (default: <bag>_report)")
    parser.add_argument("--max-frames", type=int, default=None)
    parser.add_argument("--prompts", default=None,
                        help="SAP prompts (JSON: {\"objects\": [{\"points\": [[x, y]], \"negative\": [], "
                             "\"box\": [x0, y0, x1, y1]}]} in ERP pixels); segments every frame with them")
    add_model_arguments(parser)
    add_sap_arguments(parser)
    return parser


def run(args) -> int:
    params = dense_settings(args)
    config = ReplayConfig(
        image_topic=args.image_topic + ("/compressed" if args.compressed else ""),
        ground_truth={key: getattr(args, f"{key}_topic") or None for key in GROUND_TRUTH_DEFAULTS},
        mode=args.mode, speed=args.speed, dense=dense_options(params), max_frames=args.max_frames,
        min_height=params["min_height"], max_width=params["max_width"])
    predictor = mtpano_from_settings(params)
    segment = None
    if args.prompts:
        sap = sap_settings(args)
        segment = SegmentationStep(sap_from_settings(sap), json.loads(Path(args.prompts).read_text()),
                                   alpha=sap["instances.alpha"])
    try:
        with tqdm(desc="replay", unit="frame") as bar:
            result = Replayer(predictor, config, segment=segment).run(args.bag, args.out_bag, args.storage,
                                                                      progress=bar.update)
    except BagError as exc:
        print(f"pano-perception replay: {exc}", file=sys.stderr)
        return 2
    report = write_report(result, args.report or f"{str(args.bag).rstrip('/')}_report")
    depth, semantic = result.metrics["depth"], result.metrics["semantic"]
    instances = result.metrics.get("instances")
    print(f"{len(result.processed)} frames processed, {result.dropped} dropped; AbsRel {depth['AbsRel']:.3f}, "
          f"mIoU {semantic['mIoU']:.1f}" + (f", instance mIoU {instances['mIoU']:.1f}" if instances else "")
          + f"; report: {report}")
    if result.bag_error:
        print(f"warning: {result.bag_error}; results cover the readable part", file=sys.stderr)
        return 1
    return 0
