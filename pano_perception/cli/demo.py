"""``pano-perception demo``: a synthetic 360-degree bag replayed through the built-in models, with a report."""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from tqdm import tqdm

from ..replay import ReplayConfig, Replayer
from ..report import write_report
from ..synthetic import camera_trajectory, generate_scene
from ..synthetic.bag import write_bag
from .common import add_model_arguments, dense_options, dense_settings, load_predictor


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("demo", help="render a synthetic bag, replay it through the models, report",
                                   description=__doc__)
    parser.add_argument("--out", default="demo_out", help="output folder (replaced if it exists)")
    parser.add_argument("--frames", type=int, default=8, help="frames in the synthetic bag")
    parser.add_argument("--height", type=int, default=256, help="panorama height in pixels (width = 2 x height)")
    parser.add_argument("--seed", type=int, default=7, help="scene seed")
    add_model_arguments(parser)
    return parser


def run(args) -> int:
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    params = dense_settings(args)
    predictor = load_predictor(params)
    scene = generate_scene(args.seed)
    poses = camera_trajectory(scene, args.frames)
    bag = out / "synthetic_bag"
    with tqdm(total=args.frames, desc="render", unit="frame") as bar:
        write_bag(bag, scene, poses, args.height, on_frame=lambda: bar.update(1))
    config = ReplayConfig(dense=dense_options(params))
    with tqdm(total=args.frames, desc="replay", unit="frame") as bar:
        result = Replayer(predictor, config).run(bag, out / "output_bag", progress=bar.update)
    report = write_report(result, out / "report")
    m = result.metrics
    print(f"\nSynthetic bag: {bag} ({args.frames} frames of {2 * args.height}x{args.height}, scene seed {args.seed})")
    print(f"Output bag with the nodes' topics: {out / 'output_bag'} (open it in Foxglove or play it into RViz "
          f"with 'pano-perception play')")
    print(f"Depth AbsRel {m['depth']['AbsRel']:.3f}, RMSE {m['depth']['RMSE']:.3f} m; normals mean "
          f"{m['normals']['mean']:.1f} deg; semantics mIoU {m['semantic']['mIoU']:.1f} %")
    print(f"Report: {report}")
    return 0
