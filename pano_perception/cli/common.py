"""Arguments shared by the subcommands that run the models, read from the dense node's parameter file."""
from __future__ import annotations

import argparse
from dataclasses import replace

from ..dense import DenseOptions
from ..resources import node_parameters, share_path


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model (defaults: the dense node's parameter file)")
    group.add_argument("--params", default=None,
                       help="dense node parameter YAML (default: the installed config/dense.yaml)")
    group.add_argument("--model", default=None, help="MTPano config: builtin, large, small-cpu, ...")
    group.add_argument("--checkpoint", default=None, help="official MTPano .pth/.safetensors")
    group.add_argument("--device", default=None, help="cpu, cuda, cuda:N")
    group.add_argument("--precision", default=None, choices=("fp32", "bf16", "fp16"))


def dense_settings(args) -> dict[str, object]:
    """The dense node's parameters from ``--params`` (or the installed file), overridden by the flags."""
    params = node_parameters(args.params or share_path("config/dense.yaml"), "dense_node")
    overrides = {"model.config": args.model, "model.checkpoint": args.checkpoint, "device": args.device,
                 "precision": args.precision}
    params.update({k: v for k, v in overrides.items() if v is not None})
    return params


def dense_options(params: dict) -> DenseOptions:
    """The node's product options at the input resolution: replay and infer score against full-size ground truth."""
    return replace(DenseOptions.from_parameters(params), max_width=0)


def add_sap_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("SAP segmenter (defaults: the sap node's parameter file)")
    group.add_argument("--sap-params", default=None,
                       help="sap node parameter YAML (default: the installed config/sap.yaml)")
    group.add_argument("--sap-backend", default=None, help="builtin, sam2, ...")
    group.add_argument("--sap-model", default=None, help="backend configuration (sam2: tiny, small, base+, large)")
    group.add_argument("--sap-checkpoint", default=None, help="backend weights (sam2: the official .pt)")
    group.add_argument("--sap-frame-size", type=int, default=None, help="scan frame side in pixels")


def sap_settings(args) -> dict[str, object]:
    """The sap node's parameters from ``--sap-params`` (or the installed file), overridden by the flags."""
    params = node_parameters(args.sap_params or share_path("config/sap.yaml"), "sap_node")
    overrides = {"model.backend": args.sap_backend, "model.config": args.sap_model,
                 "model.checkpoint": args.sap_checkpoint, "scan.frame_size": args.sap_frame_size,
                 "device": getattr(args, "device", None), "precision": getattr(args, "precision", None)}
    params.update({k: v for k, v in overrides.items() if v is not None})
    return params
