"""pano_perception: full-sphere perception for a robot with one 360-degree camera.

Layers (imports go one way): ``geometry`` (spherical math) <- ``synthetic``/``models`` (no ROS)
<- ``ros`` (thin rclpy adapters) and ``cli``. See docs/CONVENTIONS.md for pixels, angles and frames.
"""

__version__ = "0.1.0"
