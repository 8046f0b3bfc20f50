"""Scene data: primitives with labels, objects (instances), materials, the light, camera poses.

World frame: REP-103 ``map`` (x forward, y left, z up), metres; the floor or ground is ``z = 0``.
Instance ids: every labelled surface region is an instance, ``1..n`` in creation order and stable for the scene:
objects ("things": furniture, doors, windows, cars, trees, buildings, people) and also the room's walls (one per
wall plane), floor and ceiling, and outdoors the road, sidewalks and grass strips ("stuff",
``SceneObject.is_thing == False``). Sky is instance 0. Consumers that want objects only filter by ``is_thing``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from ..geometry import rot_x, rot_y, rot_z
from ..labels import ADE20K_CLASSES, class_id
from .materials import Material
from .primitives import Box, Cylinder, Primitive, Sphere


@dataclass(frozen=True)
class CameraPose:
    """Pose of the 360-degree camera: ``position`` (3,) in the world (metres) and ``rotation`` (3, 3)
    world_from_camera, the camera frame being REP-103 (x forward, y left, z up; docs/CONVENTIONS.md)."""

    position: np.ndarray
    rotation: np.ndarray

    @classmethod
    def from_ypr(cls, position, yaw: float, pitch: float = 0.0, roll: float = 0.0) -> CameraPose:
        """REP-103 angles in radians: ``R = Rz(yaw) Ry(pitch) Rx(roll)``; yaw is counter-clockwise seen from
        above (the ERP longitude of a world direction is minus its yaw relative to the camera)."""
        rotation = rot_z(yaw) @ rot_y(pitch) @ rot_x(roll)
        return cls(np.asarray(position, dtype=np.float64), rotation)

    @classmethod
    def from_json(cls, data: dict) -> CameraPose:
        rotation = Rotation.from_quat(data["quaternion_xyzw"]).as_matrix()
        return cls(np.asarray(data["position"], dtype=np.float64), rotation)

    @property
    def quaternion_xyzw(self) -> np.ndarray:
        """Rotation as a unit quaternion (x, y, z, w), w >= 0 (the ROS order)."""
        q = Rotation.from_matrix(self.rotation).as_quat()
        return -q if q[3] < 0 else q

    def matrix(self) -> np.ndarray:
        """4x4 world_from_camera transform."""
        m = np.eye(4)
        m[:3, :3], m[:3, 3] = self.rotation, self.position
        return m

    def to_json(self) -> dict:
        return {"position": np.asarray(self.position).tolist(), "quaternion_xyzw": self.quaternion_xyzw.tolist()}


@dataclass
class SceneObject:
    """One instance: id, ADE20K-150 semantic id, a name, thing/stuff, and the primitives it is made of."""

    instance_id: int
    semantic_id: int
    name: str
    is_thing: bool
    primitives: list[int] = field(default_factory=list)

    @property
    def class_name(self) -> str:
        return ADE20K_CLASSES[self.semantic_id]


@dataclass(frozen=True)
class Light:
    """The key light. ``falloff`` (metres) > 0: a point light at ``position`` whose irradiance scales with
    ``falloff^2 / (falloff^2 + distance^2)``; ``falloff`` None: the sun, a distant point light at ``position``."""

    position: np.ndarray
    intensity: float
    falloff: float | None
    ambient: float

    def to_json(self) -> dict:
        return {"position": np.asarray(self.position).tolist(), "intensity": self.intensity,
                "falloff": self.falloff, "ambient": self.ambient}


@dataclass
class Scene:
    """A generated world: everything needed to render it and its ground truth."""

    seed: int
    kind: str  # "indoor" or "outdoor"
    primitives: list[Primitive]
    objects: list[SceneObject]
    materials: list[Material]
    light: Light
    camera_region: tuple[float, float, float, float]  # x_min, x_max, y_min, y_max for camera positions
    camera_heights: tuple[float, float]  # metres above the floor
    sun_direction: np.ndarray | None = None  # unit, world; outdoor scenes

    def object_by_instance(self, instance_id: int) -> SceneObject:
        return self.objects[instance_id - 1]

    def clearance(self, points: np.ndarray) -> np.ndarray:
        """Distance (m,) in metres from points (m, 3) to the nearest surface (negative inside a solid)."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        return np.min([prim.signed_distance(points) for prim in self.primitives], axis=0)

    def to_json(self) -> dict:
        return {
            "seed": self.seed, "kind": self.kind, "frame_id": "map",
            "light": self.light.to_json(),
            "sun_direction": None if self.sun_direction is None else self.sun_direction.tolist(),
            "materials": [m.to_json() for m in self.materials],
            "objects": [{"instance_id": o.instance_id, "semantic_id": o.semantic_id, "class": o.class_name,
                         "name": o.name, "is_thing": o.is_thing, "primitives": o.primitives,
                         "aabb": self._object_aabb(o)} for o in self.objects],
            "primitives": [dict(p.to_json(), labels=p.labels.tolist()) for p in self.primitives],
        }

    def _object_aabb(self, obj: SceneObject) -> list | None:
        """World axis-aligned bounds [[x, y, z] min, max] of an object in metres (None if unbounded: stuff)."""
        lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
        for index in obj.primitives:
            bounds = self.primitives[index].aabb()
            if bounds is None:
                return None
            lo, hi = np.minimum(lo, bounds[0]), np.maximum(hi, bounds[1])
        return [lo.tolist(), hi.tolist()]


@dataclass(frozen=True)
class Placement:
    """Where an object's local frame sits: (x, y, z) of its origin and yaw (radians, counter-clockwise)."""

    x: float
    y: float
    yaw: float = 0.0
    z: float = 0.0

    def point(self, local) -> np.ndarray:
        return np.array([self.x, self.y, self.z]) + rot_z(self.yaw) @ np.asarray(local, dtype=np.float64)

    def rotation(self, local_rotation=None) -> np.ndarray:
        r = rot_z(self.yaw)
        return r if local_rotation is None else r @ local_rotation


class ObjectBuilder:
    """Adds primitives of one object, given in the object's local frame (see ``Placement``)."""

    def __init__(self, scene: SceneBuilder, obj: SceneObject, placement: Placement):
        self._scene, self.obj, self.placement = scene, obj, placement

    def _labels(self, material: int) -> list[int]:
        return [self.obj.semantic_id, self.obj.instance_id, material]

    def box(self, centre, size, material: int, local_rotation=None) -> ObjectBuilder:
        """Box of full ``size`` (x, y, z) metres centred at local ``centre``."""
        prim = Box(self.placement.point(centre), np.asarray(size, dtype=np.float64) / 2, self._labels(material),
                   _clean_rotation(self.placement.rotation(local_rotation)))
        self._scene.add_primitive(prim, self.obj)
        return self

    def cylinder(self, centre, radius: float, height: float, material: int, local_rotation=None) -> ObjectBuilder:
        """Cylinder of ``radius`` and full ``height`` along its local z, centred at local ``centre``."""
        prim = Cylinder(self.placement.point(centre), radius, height / 2, self._labels(material),
                        _clean_rotation(self.placement.rotation(local_rotation)))
        self._scene.add_primitive(prim, self.obj)
        return self

    def sphere(self, centre, radius: float, material: int) -> ObjectBuilder:
        self._scene.add_primitive(Sphere(self.placement.point(centre), radius, self._labels(material)), self.obj)
        return self


def _clean_rotation(r: np.ndarray) -> np.ndarray:
    """Snap entries within 1e-12 of 0 or +-1 (yaws that are multiples of 90 degrees give axis-aligned boxes)."""
    snapped = np.where(np.abs(r) < 1e-12, 0.0, r)
    return np.where(np.abs(np.abs(snapped) - 1.0) < 1e-12, np.sign(snapped), snapped)


class SceneBuilder:
    """Accumulates materials, objects and primitives; instance ids are assigned in creation order."""

    def __init__(self, seed: int, kind: str):
        self.seed, self.kind = seed, kind
        self.primitives: list[Primitive] = []
        self.objects: list[SceneObject] = []
        self.materials: list[Material] = []
        self._material_seed = seed * 1000

    def material(self, pattern: str, color, color2=(0.0, 0.0, 0.0), scale: float = 1.0,
                 emission: float = 0.0) -> int:
        self._material_seed += 1
        self.materials.append(Material(pattern, tuple(float(c) for c in color), tuple(float(c) for c in color2),
                                       float(scale), self._material_seed, float(emission)))
        return len(self.materials) - 1

    def new_object(self, class_name: str, *, is_thing: bool = True, name: str | None = None) -> SceneObject:
        obj = SceneObject(len(self.objects) + 1, class_id(class_name), name or class_name, is_thing)
        self.objects.append(obj)
        return obj

    def object(self, class_name: str, placement: Placement, *, name: str | None = None) -> ObjectBuilder:
        return ObjectBuilder(self, self.new_object(class_name, name=name), placement)

    def add_primitive(self, prim: Primitive, *objects: SceneObject) -> None:
        for obj in objects:
            obj.primitives.append(len(self.primitives))
        self.primitives.append(prim)

    def build(self, light: Light, camera_region, camera_heights, sun_direction=None) -> Scene:
        if len(self.objects) > 65535:
            raise ValueError("more than 65535 instances do not fit a mono16 image")
        return Scene(self.seed, self.kind, self.primitives, self.objects, self.materials, light,
                     tuple(float(v) for v in camera_region), tuple(float(v) for v in camera_heights),
                     sun_direction)
