"""The launch file, configs and RViz file, checked without launch/launch_ros (not installable here)."""
import ast
import configparser
import importlib.util
import re
from pathlib import Path

import yaml

from pano_perception.resources import node_parameters

REPO = Path(__file__).resolve().parents[1]


def load_launch_module():
    spec = importlib.util.spec_from_file_location("pano_launch", REPO / "launch" / "pano.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # launch imports live inside generate_launch_description()
    return module


def entry_points() -> set[str]:
    tree = ast.parse((REPO / "setup.py").read_text())
    scripts = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
               and isinstance(node.value, str) and re.match(r"^[\w-]+ = pano_perception[\w.]*:\w+$", node.value)]
    return {s.split(" = ")[0] for s in scripts}


def test_every_argument_has_a_default_and_a_description():
    module = load_launch_module()
    names = [name for name, _, _ in module.ARGUMENTS]
    assert len(names) == len(set(names))
    for name, default, description in module.ARGUMENTS:
        assert isinstance(default, str) and description.strip(), name
    required = {"namespace", "image_topic", "compressed", "device", "precision", "dense_config",
                "dense_checkpoint", "use_sim_time", "rviz"}
    assert required <= set(names)
    source = (REPO / "launch" / "pano.launch.py").read_text()
    for name in names:  # every declared argument is used
        assert source.count(f'arg("{name}")') >= 1, name


def test_every_executable_is_an_installed_entry_point():
    module = load_launch_module()
    scripts = entry_points()
    assert set(module.EXECUTABLES) <= scripts
    source = (REPO / "launch" / "pano.launch.py").read_text()
    named = set(re.findall(r'executable="([\w-]+)"', source)) - {"rviz2"}
    assert named == set(module.EXECUTABLES)
    setup_cfg = configparser.ConfigParser()
    setup_cfg.read(REPO / "setup.cfg")
    assert setup_cfg["install"]["install_scripts"] == "$base/lib/pano_perception"


def test_config_and_rviz_files_exist_and_are_installed():
    setup_source = (REPO / "setup.py").read_text()
    for folder, pattern in (("launch", "*.py"), ("config", "*.yaml"), ("rviz", "*.rviz")):
        assert f'glob("{folder}/{pattern}")' in setup_source
        assert list((REPO / folder).glob(pattern))
    rviz = yaml.safe_load((REPO / "rviz" / "pano.rviz").read_text())
    topics = {d["Topic"]["Value"] for d in rviz["Visualization Manager"]["Displays"] if "Topic" in d}
    assert {"/pano/depth/points", "/pano/semantic/color", "/pano/depth", "/camera/image"} <= topics


def test_every_yaml_parameter_is_declared_by_its_node():
    from pano_perception.ros.dense_node import PARAMETERS

    declared = {p.name: p for p in PARAMETERS}
    params = node_parameters(REPO / "config" / "dense.yaml", "dense_node")
    assert set(params) == set(declared), set(params) ^ set(declared)
    for name, value in params.items():
        default = declared[name].default
        assert type(value) is type(default), f"{name}: {value!r} is not a {type(default).__name__}"


def test_nodes_doc_lists_every_parameter():
    from pano_perception.ros.dense_node import PARAMETERS

    doc = (REPO / "docs" / "NODES.md").read_text()
    missing = [p.name for p in PARAMETERS if f"`{p.name}`" not in doc]
    assert not missing, f"docs/NODES.md does not document {missing}"
