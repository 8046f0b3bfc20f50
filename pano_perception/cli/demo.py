"""``pano-perception demo``: a synthetic 360-degree bag replayed through the built-in models, with a report."""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..bagio import BagReader, message_to_numpy
from ..models.builtin import mtpano_from_settings, sap_from_settings
from ..replay import ReplayConfig, Replayer, SegmentationStep
from ..report import write_report
from ..synthetic import camera_trajectory, generate_scene
from ..synthetic.bag import bag_custom_data, write_bag
from .common import (
    add_model_arguments,
    add_sap_arguments,
    dense_options,
    dense_settings,
    sap_settings,
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("demo", help="render a synthetic bag, replay it through the models, report",
                                   description=__doc__)
    parser.add_argument("--out", default="demo_out", help="output folder (replaced if it exists)")
    parser.add_argument("--frames", type=int, default=8, help="frames in the synthetic bag")
    parser.add_argument("--height", type=int, default=256, help="panorama height in pixels (width = 2 x height)")
    parser.add_argument("--seed", type=int, default=7, help="scene seed")
    parser.add_argument("--objects", type=int, default=3, help="objects clicked for SAP (the largest ones)")
    add_model_arguments(parser)
    add_sap_arguments(parser)
    return parser


def click_objects(bag: Path, count: int) -> dict:
    """SAP prompts for the ``count`` largest objects of the bag's first frame: one click each at the pixel
    farthest from the object's boundary (the papers' 1-click protocol), in ERP pixels."""
    with BagReader(bag) as reader:
        instances = message_to_numpy(next(reader.messages(["/ground_truth/instances"])).msg)
    things = {int(i) for i in bag_custom_data(bag)["pano_perception.thing_instances"].split(",") if i}
    ids, areas = np.unique(instances, return_counts=True)
    largest = [int(i) for _, i in sorted(zip(areas, ids), reverse=True) if int(i) in things][:count]
    objects = []
    for instance_id in largest:
        inside = np.pad(instances == instance_id, 1)
        distance = cv2.distanceTransform(inside.astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
        y, x = np.unravel_index(int(np.argmax(distance)), distance.shape)
        objects.append({"points": [[float(x) + 0.5, float(y) + 0.5]], "ground_truth_instance": instance_id})
    return {"objects": objects}


def run(args) -> int:
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    params = dense_settings(args)
    predictor = mtpano_from_settings(params)
    scene = generate_scene(args.seed)
    poses = camera_trajectory(scene, args.frames)
    bag = out / "synthetic_bag"
    with tqdm(total=args.frames, desc="render", unit="frame") as bar:
        write_bag(bag, scene, poses, args.height, on_frame=lambda: bar.update(1))
    spec = click_objects(bag, args.objects)
    (out / "prompts.json").write_text(json.dumps(spec, indent=1))
    sap = sap_settings(args)
    segment = SegmentationStep(sap_from_settings(sap), spec, alpha=sap["instances.alpha"])
    config = ReplayConfig(dense=dense_options(params))
    with tqdm(total=args.frames, desc="replay", unit="frame") as bar:
        result = Replayer(predictor, config, segment=segment).run(bag, out / "output_bag", progress=bar.update)
    report = write_report(result, out / "report")
    m = result.metrics
    print(f"\nSynthetic bag: {bag} ({args.frames} frames of {2 * args.height}x{args.height}, scene seed {args.seed})")
    print(f"Output bag with the nodes' topics: {out / 'output_bag'} (open it in Foxglove or play it into RViz "
          f"with 'pano-perception play')")
    print(f"Depth AbsRel {m['depth']['AbsRel']:.3f}, RMSE {m['depth']['RMSE']:.3f} m; normals mean "
          f"{m['normals']['mean']:.1f} deg; semantics mIoU {m['semantic']['mIoU']:.1f} %; SAP instance mIoU "
          f"{m.get('instances', {}).get('mIoU', float('nan')):.1f} % for {len(spec['objects'])} clicked objects "
          f"({out / 'prompts.json'})")
    print(f"Report: {report}")
    return 0
