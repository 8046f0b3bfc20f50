"""A synthetic 360-degree world with exact ground truth (numpy, no ROS; docs/SYNTHETIC.md).

Scenes are generated deterministically from a seed (furnished rooms, street scenes), rendered by a vectorised
ray caster over analytic primitives into ERP panoramas or perspective views with radial depth, z-depth, normals,
ADE20K-150 semantics and instance ids, written to a dataset folder or a rosbag2.
"""
from .generator import camera_trajectory, generate_scene, sample_camera_poses, scene_kind
from .render import Frame, RenderOptions, render_erp, render_view
from .scene import CameraPose, Light, Scene, SceneObject

__all__ = [
    "CameraPose", "Frame", "Light", "RenderOptions", "Scene", "SceneObject", "camera_trajectory", "generate_scene",
    "render_erp", "render_view", "sample_camera_poses", "scene_kind",
]
