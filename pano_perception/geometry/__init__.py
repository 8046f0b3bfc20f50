"""Spherical geometry (numpy + torch, no ROS). Conventions: docs/CONVENTIONS.md."""
from .camera import (PerspectiveView, focal_from_fov, fov_from_centre_convention, rot_x, rot_y, rot_z,
                     view_rotation)
from .erp_ops import erp_connected_components, normals_from_depth, rotate_erp_yaw
from .projection import (clear_grid_cache, e2p, e2p_depth, e2p_normals, p2e, p2e_depth, p2e_normals,
                         view_cos_alpha)
from .sphere import (check_erp_size, erp_depth_to_points, erp_pixel_to_lonlat, erp_rays, lonlat_to_erp_pixel,
                     lonlat_to_ray, ray_to_lonlat)

__all__ = [
    "PerspectiveView", "focal_from_fov", "fov_from_centre_convention", "rot_x", "rot_y", "rot_z", "view_rotation",
    "erp_connected_components", "normals_from_depth", "rotate_erp_yaw",
    "clear_grid_cache", "e2p", "e2p_depth", "e2p_normals", "p2e", "p2e_depth", "p2e_normals", "view_cos_alpha",
    "check_erp_size", "erp_depth_to_points", "erp_pixel_to_lonlat", "erp_rays", "lonlat_to_erp_pixel",
    "lonlat_to_ray", "ray_to_lonlat",
]
