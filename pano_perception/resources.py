"""Files installed with the package (config/, launch/, rviz/): found in a ROS install or in the source tree."""
from __future__ import annotations

from pathlib import Path

import yaml

SOURCE_ROOT = Path(__file__).resolve().parents[1]


def share_path(relative: str) -> Path:
    """``share/pano_perception/<relative>`` of a ROS (colcon) install, else the file in the source checkout."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            candidate = Path(get_package_share_directory("pano_perception")) / relative
            if candidate.exists():
                return candidate
        except (PackageNotFoundError, OSError):  # not installed, or no AMENT_PREFIX_PATH at all
            pass
    except ImportError:
        pass
    candidate = SOURCE_ROOT / relative
    if not candidate.exists():
        raise FileNotFoundError(f"{relative} is neither in a ROS install of pano_perception nor at {candidate}")
    return candidate


def node_parameters(path: str | Path, node_name: str) -> dict[str, object]:
    """Flattened ``ros__parameters`` of ``node_name`` (dotted names) from a ROS 2 parameter YAML file."""
    content = yaml.safe_load(Path(path).read_text()) or {}
    for key, section in content.items():
        if key.split("/")[-1] == node_name and isinstance(section, dict) and "ros__parameters" in section:
            return _flatten(section["ros__parameters"])
    raise ValueError(f"{path} has no ros__parameters for a node named {node_name!r}")


def _flatten(params: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for key, value in params.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
