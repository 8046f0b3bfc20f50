"""Procedural street scenes: ground strips (road, sidewalks, grass), building blocks, trees, cars, street lights,
people and a sun in a procedural sky.

The road runs along the world x axis centred on y = 0; the ground is a 1 km square at z = 0. Everything is drawn
from one ``numpy.random.Generator`` seeded with the scene seed.
"""
from __future__ import annotations

import math

import numpy as np

from ..geometry import rot_x
from .primitives import GroundRect
from .scene import Light, Placement, Scene, SceneBuilder

FACADE_COLORS = [(0.75, 0.7, 0.62), (0.62, 0.6, 0.58), (0.82, 0.78, 0.7), (0.55, 0.35, 0.28), (0.7, 0.72, 0.75),
                 (0.85, 0.83, 0.8), (0.5, 0.5, 0.52)]
CAR_COLORS = [(0.7, 0.1, 0.1), (0.1, 0.2, 0.5), (0.85, 0.85, 0.85), (0.15, 0.15, 0.15), (0.5, 0.5, 0.55),
              (0.8, 0.7, 0.2), (0.2, 0.4, 0.3)]
GROUND_EXTENT = 500.0  # metres from the origin in x and y
STREET_LENGTH = 90.0  # buildings, trees and cars line the street for |x| < this


def _pick(rng, options):
    return options[int(rng.integers(len(options)))]


class _StreetGenerator:
    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.b = SceneBuilder(seed, "outdoor")
        self.road_half = float(self.rng.uniform(3.0, 4.5))
        self.walk = float(self.rng.uniform(2.0, 3.5))

    def ground(self) -> None:
        rng, b = self.rng, self.b
        g = float(rng.uniform(0.8, 1.2))
        grass_mat = b.material("grass", (0.25 * g, 0.45 * g, 0.15 * g), (0.35 * g, 0.5 * g, 0.2 * g), scale=0.7)
        p = float(rng.uniform(0.55, 0.75))
        walk_mat = b.material("pavement", (p, p * 0.98, p * 0.95), (p * 0.6,) * 3, scale=float(rng.uniform(0.3, 0.5)))
        a = float(rng.uniform(0.28, 0.4))
        road_mat = b.material("asphalt", (a, a, a * 1.03), (a * 0.8,) * 3, scale=self.road_half)
        road = b.new_object("road", is_thing=False)
        walks = [b.new_object("sidewalk", is_thing=False, name=f"sidewalk_{i}") for i in range(2)]
        grass = [b.new_object("grass", is_thing=False, name=f"grass_{i}") for i in range(2)]
        rh, w = self.road_half, self.walk
        labels = [(grass[0], grass_mat), (walks[0], walk_mat), (road, road_mat), (walks[1], walk_mat),
                  (grass[1], grass_mat)]
        b.add_primitive(GroundRect(0.0, (-GROUND_EXTENT, GROUND_EXTENT), (-GROUND_EXTENT, GROUND_EXTENT),
                                   [-rh - w, -rh, rh, rh + w],
                                   [[o.semantic_id, o.instance_id, m] for o, m in labels]),
                        road, *walks, *grass)

    def buildings(self, side: int) -> None:
        rng, b = self.rng, self.b
        x = -STREET_LENGTH + float(rng.uniform(0, 10))
        while x < STREET_LENGTH:
            width, depth = float(rng.uniform(8, 25)), float(rng.uniform(8, 20))
            height = float(rng.uniform(6, 35))
            setback = float(rng.uniform(4.5, 10))
            front = side * (self.road_half + self.walk + setback)
            c = _pick(rng, FACADE_COLORS)
            if rng.random() < 0.3:
                wall = b.material("brick", c, (0.8, 0.78, 0.72), scale=0.25)
            else:
                wall = b.material("facade", c, tuple(v * 0.85 for v in c), scale=float(rng.uniform(2.5, 4.0)))
            yaw = -math.pi / 2 if side > 0 else math.pi / 2  # local +x (front) towards the road
            place = Placement(x + width / 2, front, yaw)
            building = b.object("building", place)
            building.box([-depth / 2, 0, height / 2], [depth, width, height], wall)
            if rng.random() < 0.4:
                top = float(rng.uniform(3, 10))
                building.box([-depth / 2 - 1, 0, height + top / 2], [depth - 3, width * 0.6, top], wall)
            door = b.object("door", place)
            door.box([0.03, float(rng.uniform(-width / 2 + 1, width / 2 - 1)), 1.1], [0.06, 1.2, 2.2],
                     b.material("wood", (0.35, 0.22, 0.12), (0.25, 0.15, 0.08), scale=0.1))
            x += width + float(rng.uniform(2, 10))

    def trees(self, side: int) -> None:
        rng, b = self.rng, self.b
        x = -STREET_LENGTH + float(rng.uniform(0, 8))
        while x < STREET_LENGTH:
            y = side * (self.road_half + self.walk + float(rng.uniform(0.8, 1.5)))
            tree = b.object("tree", Placement(x, y))
            trunk_h = float(rng.uniform(2.2, 3.2))
            bark = b.material("bark", (0.35, 0.25, 0.18), (0.22, 0.16, 0.1), scale=0.3)
            leaves = b.material("leaves", (0.2, 0.42, 0.12), (0.08, 0.25, 0.06), scale=float(rng.uniform(0.3, 0.6)))
            tree.cylinder([0, 0, trunk_h / 2], float(rng.uniform(0.12, 0.22)), trunk_h, bark)
            radius = float(rng.uniform(1.2, 2.0))
            tree.sphere([0, 0, trunk_h + 0.7 * radius], radius, leaves)
            for _ in range(int(rng.integers(0, 3))):
                offset = rng.uniform(-0.6, 0.6, size=2) * radius
                tree.sphere([offset[0], offset[1], trunk_h + radius * float(rng.uniform(0.9, 1.4))],
                            radius * float(rng.uniform(0.5, 0.8)), leaves)
            x += float(rng.uniform(7, 15))

    def cars(self) -> None:
        rng, b = self.rng, self.b
        for side in (-1, 1):
            x = -STREET_LENGTH / 2 + float(rng.uniform(0, 20))
            while x < STREET_LENGTH / 2:
                if rng.random() < 0.6:
                    yaw = 0.0 if side < 0 else math.pi  # drive on the right
                    car = b.object("car", Placement(x, side * (self.road_half - 1.1), yaw))
                    paint = b.material("metal", _pick(rng, CAR_COLORS), (0.1, 0.1, 0.1), scale=0.5)
                    glass = b.material("metal", (0.15, 0.18, 0.22), (0.3, 0.35, 0.4), scale=0.3)
                    tyre = b.material("metal", (0.08, 0.08, 0.08), (0.15, 0.15, 0.15), scale=0.1)
                    car.box([0, 0, 0.62], [4.2, 1.8, 0.6], paint)
                    car.box([-0.2, 0, 1.16], [2.2, 1.6, 0.5], glass)
                    for wx in (-1.35, 1.35):
                        for wy in (-0.8, 0.8):
                            car.cylinder([wx, wy, 0.33], 0.33, 0.22, tyre, local_rotation=rot_x(math.pi / 2))
                x += float(rng.uniform(5.5, 12))

    def street_lights(self) -> None:
        rng, b = self.rng, self.b
        metal = b.material("metal", (0.3, 0.32, 0.33), (0.2, 0.2, 0.2), scale=0.5)
        spacing = float(rng.uniform(20, 30))
        for side in (-1, 1):
            for x in np.arange(-STREET_LENGTH + float(rng.uniform(0, spacing)), STREET_LENGTH, spacing):
                yaw = -math.pi / 2 if side > 0 else math.pi / 2
                lamp = b.object("streetlight", Placement(float(x), side * (self.road_half + 0.4), yaw))
                lamp.cylinder([0, 0, 3.0], 0.07, 6.0, metal)
                lamp.box([0.7, 0, 5.95], [1.4, 0.1, 0.1], metal)
                lamp.box([1.3, 0, 5.85], [0.5, 0.25, 0.12], metal)

    def people(self) -> None:
        rng, b = self.rng, self.b
        for _ in range(int(rng.integers(0, 5))):
            side = rng.choice([-1, 1])
            place = Placement(float(rng.uniform(-40, 40)), side * (self.road_half + float(rng.uniform(1.0, 1.8))),
                              float(rng.uniform(-math.pi, math.pi)))
            height = float(rng.uniform(1.55, 1.9))
            skin = b.material("plain", _pick(rng, [(0.87, 0.7, 0.58), (0.6, 0.42, 0.3), (0.4, 0.27, 0.2)]),
                              (0.5, 0.35, 0.3), scale=0.1)
            cloth = b.material("fabric", tuple(rng.uniform(0.1, 0.8, size=3)), (0.1, 0.1, 0.1), scale=0.2)
            person = b.object("person", place)
            leg, torso = 0.47 * height, 0.32 * height
            for s in (-1, 1):
                person.cylinder([0, s * 0.1, leg / 2], 0.07, leg, cloth)
                person.cylinder([0, s * 0.22, leg + torso - 0.3], 0.045, 0.6, cloth)
            person.cylinder([0, 0, leg + torso / 2], 0.17, torso, cloth)
            person.sphere([0, 0, leg + torso + 0.13], 0.11, skin)

    def generate(self) -> Scene:
        rng = self.rng
        self.ground()
        for side in (-1, 1):
            self.buildings(side)
            self.trees(side)
        self.cars()
        self.street_lights()
        self.people()
        elevation, azimuth = math.radians(float(rng.uniform(35, 75))), float(rng.uniform(-math.pi, math.pi))
        sun = np.array([math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth),
                        math.sin(elevation)])
        light = Light(3000.0 * sun, intensity=float(rng.uniform(0.75, 0.9)), falloff=None,
                      ambient=float(rng.uniform(0.45, 0.55)))
        reach = self.road_half + self.walk
        return self.b.build(light, (-50.0, 50.0, -reach, reach), (1.2, 2.0), sun_direction=sun)


def generate_outdoor(seed: int) -> Scene:
    """A street scene drawn from ``seed`` (same seed, same street)."""
    return _StreetGenerator(seed).generate()
