"""Start pano_perception on a robot: the dense node, optionally SAP (and RViz) on a 360-degree camera's ERP image.

    ros2 launch pano_perception pano.launch.py image_topic:=/theta/image_raw rviz:=true
    ros2 launch pano_perception pano.launch.py enable_sap:=true   # the built-in segmenter
    ros2 launch pano_perception pano.launch.py enable_sap:=true sap_backend:=sam2 sap_frame_size:=1024 \
        sap_checkpoint:=/models/sam2.1_hiera_tiny.pt

Arguments are listed in ARGUMENTS (name, default, description); docs/NODES.md explains topics and parameters.
The launch imports stay inside generate_launch_description() so the tests can read this file without launch.
"""
import os

ARGUMENTS = [
    ("namespace", "pano", "Namespace of every node and topic"),
    ("image_topic", "/camera/image", "ERP image topic of the 360-degree camera (raw; '/compressed' is appended "
     "when compressed:=true)"),
    ("compressed", "false", "Subscribe to <image_topic>/compressed (jpeg/png) instead of the raw image"),
    ("device", "cpu", "Torch device: cpu, cuda, cuda:N"),
    ("precision", "fp32", "fp32, bf16, or fp16 (CUDA only)"),
    ("dense_config", "", "Parameter file of the dense node (empty: the installed config/dense.yaml)"),
    ("dense_model", "builtin", "MTPano configuration: 'builtin' (shipped weights) or 'large' (official)"),
    ("dense_checkpoint", "", "Official MTPano checkpoint (.pth/.safetensors) when dense_model is not builtin"),
    ("enable_sap", "false", "Also start sap_node (promptable panoramic instance segmentation, docs/SAP.md)"),
    ("sap_config", "", "Parameter file of sap_node (empty: the installed config/sap.yaml)"),
    ("sap_backend", "builtin", "SAP backend: 'builtin' (ships with the package) or 'sam2' (the official sam2 package)"),
    ("sap_model", "", "SAP backend configuration (sam2: tiny, small, base+, large; empty = tiny; builtin: empty)"),
    ("sap_checkpoint", "", "SAP backend weights (builtin: empty = shipped; sam2: the official sam2.1 .pt)"),
    ("sap_frame_size", "256", "Side of SAP's square scan frames in pixels (builtin: 256; sam2: 1024, its input size)"),
    ("use_sim_time", "false", "Use /clock (bag replay with pano-perception play)"),
    ("rviz", "false", "Start RViz with the installed rviz/pano.rviz"),
]

EXECUTABLES = ("dense_node", "sap_node")


def generate_launch_description():
    from ament_index_python.packages import get_package_share_directory
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument
    from launch.conditions import IfCondition
    from launch.substitutions import LaunchConfiguration, PythonExpression
    from launch_ros.actions import Node

    share = get_package_share_directory("pano_perception")
    arg = LaunchConfiguration
    default_dense_config = os.path.join(share, "config", "dense.yaml")
    dense_config = PythonExpression(["'", arg("dense_config"), "' or '", default_dense_config, "'"])
    sim_time = PythonExpression(["'", arg("use_sim_time"), "'.lower() == 'true'"])
    dense = Node(
        package="pano_perception",
        executable="dense_node",
        name="dense_node",
        namespace=arg("namespace"),
        output="screen",
        parameters=[dense_config, {
            "device": arg("device"),
            "precision": arg("precision"),
            "input_compressed": PythonExpression(["'", arg("compressed"), "'.lower() == 'true'"]),
            "model.config": arg("dense_model"),
            "model.checkpoint": arg("dense_checkpoint"),
            "use_sim_time": sim_time,
            "autostart": True,
        }],
        remappings=[("image", arg("image_topic")), ("image/compressed", [arg("image_topic"), "/compressed"])],
    )
    default_sap_config = os.path.join(share, "config", "sap.yaml")
    sap_config = PythonExpression(["'", arg("sap_config"), "' or '", default_sap_config, "'"])
    sap = Node(
        package="pano_perception",
        executable="sap_node",
        name="sap_node",
        namespace=arg("namespace"),
        output="screen",
        parameters=[sap_config, {
            "device": arg("device"),
            "precision": arg("precision"),
            "input_compressed": PythonExpression(["'", arg("compressed"), "'.lower() == 'true'"]),
            "model.backend": arg("sap_backend"),
            "model.config": arg("sap_model"),
            "model.checkpoint": arg("sap_checkpoint"),
            "scan.frame_size": PythonExpression([arg("sap_frame_size")]),
            "use_sim_time": sim_time,
            "autostart": True,
        }],
        # depth comes from the dense node in the same namespace; clicks from rqt_image_view on the overlay.
        remappings=[("image", arg("image_topic")), ("image/compressed", [arg("image_topic"), "/compressed"]),
                    ("prompt/click", "instances/color_mouse_left")],
        condition=IfCondition(arg("enable_sap")),
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        arguments=["-d", os.path.join(share, "rviz", "pano.rviz")],
        parameters=[{"use_sim_time": sim_time}],
        condition=IfCondition(arg("rviz")),
    )
    declared = [DeclareLaunchArgument(name, default_value=default, description=description)
                for name, default, description in ARGUMENTS]
    return LaunchDescription(declared + [dense, sap, rviz])
