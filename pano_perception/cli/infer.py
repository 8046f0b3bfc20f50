"""``pano-perception infer IMAGE...``: depth, normals, semantics and a point cloud for panorama files."""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from ..dense import depth_to_cloud, normals_to_color, semantic_overlay
from ..labels import colorize_semantic
from ..models.builtin import mtpano_from_settings, sap_from_settings
from ..models.sap.products import instance_overlay
from ..replay import prompt_session
from ..report import colorize_depth
from .common import add_model_arguments, add_sap_arguments, dense_settings, sap_settings


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("infer", help="run the dense model on ERP image files", description=__doc__)
    parser.add_argument("images", nargs="+", help="2:1 equirectangular images (png, jpg, ...)")
    parser.add_argument("--out", default="infer_out", help="output folder")
    parser.add_argument("--click", action="append", default=[], metavar="X,Y",
                        help="segment the object at this ERP pixel with SAP (repeat for more objects)")
    add_model_arguments(parser)
    add_sap_arguments(parser)
    return parser


def parse_click(text: str) -> list[float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--click takes X,Y in pixels (e.g. 512.5,300); got {text!r}") from None
    return [x, y]


def write_ply(path: Path, points: np.ndarray, colours: np.ndarray) -> None:
    """Binary little-endian PLY of finite points (N, 3) metres with uint8 colours (N, 3)."""
    keep = np.isfinite(points).all(axis=1)
    vertex = np.empty(int(keep.sum()), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                                              ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    for i, axis in enumerate("xyz"):
        vertex[axis] = points[keep, i]
    for i, channel in enumerate(("red", "green", "blue")):
        vertex[channel] = colours[keep, i]
    head = ("ply\nformat binary_little_endian 1.0\n"
            f"element vertex {len(vertex)}\nproperty float x\nproperty float y\nproperty float z\n"
            "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n")
    with open(path, "wb") as f:
        f.write(head.encode("ascii"))
        f.write(vertex.tobytes())


def read_rgb(path: str) -> np.ndarray:
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read an image from {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def run(args) -> int:
    params = dense_settings(args)
    predictor = mtpano_from_settings(params)
    spec = {"objects": [{"points": [parse_click(c)]} for c in args.click]}
    segmenter = sap_from_settings(sap_settings(args)) if args.click else None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for image_path in args.images:
        rgb = read_rgb(image_path)
        prediction = predictor.predict(rgb)
        stem = out / Path(image_path).stem
        depth_mm = np.where(np.isfinite(prediction.depth), np.round(prediction.depth * 1000), 0)
        cv2.imwrite(f"{stem}_depth_mm.png", np.clip(depth_mm, 0, 65535).astype(np.uint16))
        np.save(f"{stem}_depth.npy", prediction.depth)
        cv2.imwrite(f"{stem}_depth.png", colorize_depth(prediction.depth)[..., ::-1])
        np.save(f"{stem}_normals.npy", prediction.normals)
        cv2.imwrite(f"{stem}_normals.png", normals_to_color(prediction.normals)[..., ::-1])
        cv2.imwrite(f"{stem}_semantic_ids.png", prediction.semantic)
        cv2.imwrite(f"{stem}_semantic.png", colorize_semantic(prediction.semantic)[..., ::-1])
        cv2.imwrite(f"{stem}_semantic_overlay.png",
                    semantic_overlay(rgb, prediction.semantic, params["semantic.alpha"])[..., ::-1])
        cloud = depth_to_cloud(prediction.depth, rgb, decimation=1, min_range=params["points.min_range"],
                               max_range=params["points.max_range"])
        write_ply(Path(f"{stem}.ply"), cloud.points[..., :3].reshape(-1, 3), cloud.rgb.reshape(-1, 3))
        if segmenter is not None:
            session = prompt_session(spec, *rgb.shape[:2])
            segmenter.set_image(rgb)
            instances = segmenter.segment(session.objects).instances
            cv2.imwrite(f"{stem}_instances.png", instances)
            overlay = instance_overlay(rgb, instances, 0.5, session.objects)
            cv2.imwrite(f"{stem}_instances_overlay.png", overlay[..., ::-1])
        print(f"{image_path}: wrote {stem}_*.png/.npy and {stem}.ply")
    return 0
