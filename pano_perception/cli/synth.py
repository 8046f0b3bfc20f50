"""``pano-perception synth``: render a synthetic ERP dataset (and optionally a rosbag2 of a moving camera)."""
from __future__ import annotations

import argparse
import re

from tqdm import tqdm

from ..synthetic import RenderOptions, camera_trajectory, generate_scene
from ..synthetic.bag import STORAGES, write_bag
from ..synthetic.dataset import write_dataset


def _size(text: str) -> tuple[int, int]:
    """'WIDTHxHEIGHT' (2:1) -> (width, height)."""
    match = re.fullmatch(r"(\d+)[xX](\d+)", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"size must look like 1024x512; got {text!r}")
    width, height = int(match.group(1)), int(match.group(2))
    if height < 2 or width != 2 * height:
        raise argparse.ArgumentTypeError(f"an ERP size must be 2:1 (width = 2 x height); got {text}")
    return width, height


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "synth", help="render a synthetic 360-degree dataset with exact ground truth",
        description="Render N procedural scenes (seeds S..S+N-1) as ERP panoramas with radial depth, normals, "
                    "ADE20K-150 semantics and instance ids into OUT (layout: docs/SYNTHETIC.md); with --bag, "
                    "also record a camera moving through scene S to a rosbag2.")
    parser.add_argument("--scenes", type=int, default=1, help="number of scenes (default 1)")
    parser.add_argument("--size", type=_size, default=(1024, 512), metavar="WxH",
                        help="ERP size, 2:1 (default 1024x512)")
    parser.add_argument("--out", required=True, help="output directory of the dataset")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first scene (default 0)")
    parser.add_argument("--views-per-scene", type=int, default=1, help="camera poses per scene (default 1)")
    parser.add_argument("--jpeg", action="store_true", help="store RGB as JPEG (quality 95) instead of PNG")
    parser.add_argument("--noise", type=float, default=0.0, help="Gaussian sensor noise std in 8-bit levels")
    parser.add_argument("--no-shadows", action="store_true", help="skip shadow rays (faster)")
    parser.add_argument("--bag", help="also write a rosbag2 (a new directory) of a camera moving through scene S")
    parser.add_argument("--storage", choices=sorted(STORAGES), default="mcap", help="rosbag2 storage (default mcap)")
    parser.add_argument("--bag-frames", type=int, default=20, help="frames in the bag (default 20)")
    parser.add_argument("--bag-size", type=_size, metavar="WxH", help="ERP size of the bag's frames (default --size)")
    parser.add_argument("--rate", type=float, default=10.0, help="bag frame rate in Hz (default 10)")
    return parser


def run(args: argparse.Namespace) -> int:
    if args.scenes < 0 or args.views_per_scene < 1 or args.bag_frames < 1 or args.rate <= 0:
        raise ValueError("--scenes must be >= 0, --views-per-scene and --bag-frames >= 1, --rate > 0")
    _, height = args.size
    options = RenderOptions(shadows=not args.no_shadows, noise_std=args.noise)
    total = args.scenes * args.views_per_scene + (args.bag_frames if args.bag else 0)
    with tqdm(total=total, unit="frame", desc="synth") as progress:
        if args.scenes:
            write_dataset(args.out, args.scenes, height, seed=args.seed, views_per_scene=args.views_per_scene,
                          options=options, jpeg_quality=95 if args.jpeg else None,
                          on_frame=lambda: progress.update(1))
        if args.bag:
            scene = generate_scene(args.seed)
            poses = camera_trajectory(scene, args.bag_frames, rate_hz=args.rate)
            bag_height = (args.bag_size or args.size)[1]
            write_bag(args.bag, scene, poses, bag_height, storage=args.storage, rate_hz=args.rate, options=options,
                      on_frame=lambda: progress.update(1))
    return 0
