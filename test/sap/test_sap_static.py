"""sap_node's config, docs, launch arguments and RViz displays agree with the node (no ROS started)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

from pano_perception.ros.sap_node import OUTPUTS, PARAMETERS

REPO = Path(__file__).resolve().parents[2]


def flatten(params: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in params.items():
        out.update(flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def test_sap_yaml_sets_every_declared_parameter_with_its_type():
    declared = {p.name: p for p in PARAMETERS}
    config = flatten(yaml.safe_load((REPO / "config" / "sap.yaml").read_text())["/**/sap_node"]["ros__parameters"])
    assert set(config) == set(declared), set(config) ^ set(declared)
    for name, value in config.items():
        default = declared[name].default
        assert type(value) is type(default), f"{name}: {value!r} is not a {type(default).__name__}"
        if declared[name].choices:
            assert value in declared[name].choices, name


def test_docs_name_every_parameter_topic_and_service():
    docs = (REPO / "docs" / "SAP.md").read_text()
    for p in PARAMETERS:
        assert f"| `{p.name}` |" in docs, p.name
    for topic in list(OUTPUTS) + ["prompt/pixel", "prompt/click", "prompt/point", "prompt/box", "depth"]:
        assert f"`{topic}`" in docs or f"`{topic}`," in docs, topic
    for service in ("~/reset", "~/undo", "~/new_object", "~/segment_everything"):
        assert f"`{service}`" in docs, service


def test_launch_and_rviz_know_sap():
    spec = importlib.util.spec_from_file_location("pano_launch", REPO / "launch" / "pano.launch.py")
    launch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launch)
    names = {name for name, _, _ in launch.ARGUMENTS}
    assert {"enable_sap", "sap_config", "sap_backend", "sap_model", "sap_checkpoint", "sap_frame_size"} <= names
    assert "sap_node" in launch.EXECUTABLES
    rviz = yaml.safe_load((REPO / "rviz" / "pano.rviz").read_text())
    topics = {d["Topic"]["Value"] for d in rviz["Visualization Manager"]["Displays"] if "Topic" in d}
    assert {"/pano/instances/color", "/pano/instances/points", "/pano/instances/markers"} <= topics
