"""Procedural rooms: a rectangular, L- or T-shaped shell with a door, windows, furniture and a ceiling light.

Furniture is built in a local frame (front towards +x, width along y, base at z = 0) and placed against walls
(back to the wall) or free-standing, on non-overlapping floor footprints. Everything is drawn from one
``numpy.random.Generator`` seeded with the scene seed, so a seed always gives the same room.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .primitives import RoomShell
from .scene import Light, Placement, Scene, SceneBuilder

WALL_COLORS = [(0.9, 0.88, 0.83), (0.85, 0.82, 0.75), (0.78, 0.8, 0.82), (0.82, 0.87, 0.8), (0.9, 0.8, 0.72),
               (0.72, 0.78, 0.86), (0.95, 0.94, 0.92)]
WOOD_COLORS = [(0.55, 0.38, 0.22), (0.42, 0.27, 0.15), (0.7, 0.55, 0.38), (0.3, 0.2, 0.13), (0.78, 0.66, 0.5)]
FABRIC_COLORS = [(0.35, 0.4, 0.55), (0.6, 0.25, 0.22), (0.45, 0.5, 0.35), (0.7, 0.65, 0.55), (0.25, 0.25, 0.28),
                 (0.8, 0.75, 0.6), (0.5, 0.35, 0.5)]
PAINT_COLORS = [(0.92, 0.92, 0.9), (0.2, 0.22, 0.25), (0.75, 0.2, 0.15), (0.3, 0.45, 0.6), (0.85, 0.8, 0.6)]


def _pick(rng, options):
    return options[int(rng.integers(len(options)))]


def _shade(color, factor):
    return tuple(min(1.0, c * factor) for c in color)


@dataclass
class WallSegment:
    """An exposed stretch of wall: normal axis k (0: x, 1: y), the wall plane coordinate, the side of the room
    it bounds (-1: the room lies at larger coordinates, +1: smaller), its extent [a, b] along the other axis."""

    axis: int
    coord: float
    side: int
    a: float
    b: float

    @property
    def length(self) -> float:
        return self.b - self.a

    @property
    def inward(self) -> np.ndarray:
        n = np.zeros(2)
        n[self.axis] = -self.side
        return n

    def point(self, s: float, offset: float) -> np.ndarray:
        """2D floor point at ``s`` along the wall, ``offset`` metres into the room."""
        p = np.zeros(2)
        p[self.axis] = self.coord
        p[1 - self.axis] = s
        return p + offset * self.inward

    def yaw(self) -> float:
        """Yaw that turns a local +x (an object's front) into the room."""
        n = self.inward
        return math.atan2(n[1], n[0])


def _room_boxes(rng, height: float) -> np.ndarray:
    """(m, 2, 3) overlapping axis-aligned boxes whose union is the room (floor at z = 0)."""
    width, depth = rng.uniform(3.5, 7.0), rng.uniform(3.0, 6.0)
    boxes = [[[0.0, 0.0, 0.0], [width, depth, height]]]
    shape = rng.choice(["rect", "L", "T"], p=[0.5, 0.3, 0.2])
    if shape != "rect":
        wing_w = rng.uniform(1.8, max(1.9, width - 1.0))
        wing_d = rng.uniform(1.5, 3.0)
        x0 = 0.0 if shape == "L" else rng.uniform(0.5, max(0.6, width - wing_w - 0.5))
        x0 = min(x0, width - wing_w) if shape == "T" else x0
        boxes.append([[x0, depth - 0.5, 0.0], [x0 + wing_w, depth + wing_d, height]])
    return np.asarray(boxes, dtype=np.float64)


def _wall_segments(boxes: np.ndarray) -> list[WallSegment]:
    """Exposed wall stretches of the union of boxes, merged per wall plane."""
    planes: dict[tuple[int, float, int], list[tuple[float, float]]] = {}
    for i, (lo, hi) in enumerate(boxes):
        for axis in (0, 1):
            other = 1 - axis
            for side, coord in ((-1, lo[axis]), (1, hi[axis])):
                intervals = [(lo[other], hi[other])]
                for j, (lo2, hi2) in enumerate(boxes):
                    if j != i and lo2[axis] < coord < hi2[axis]:
                        intervals = _subtract(intervals, lo2[other], hi2[other])
                planes.setdefault((axis, round(float(coord), 9), side), []).extend(intervals)
    segments = []
    for (axis, coord, side), intervals in sorted(planes.items()):
        for a, b in _union(intervals):
            if b - a > 1e-6:
                segments.append(WallSegment(axis, coord, side, a, b))
    return segments


def _subtract(intervals, a, b):
    out = []
    for lo, hi in intervals:
        if b <= lo or a >= hi:
            out.append((lo, hi))
            continue
        if a > lo:
            out.append((lo, a))
        if b < hi:
            out.append((b, hi))
    return out


def _union(intervals):
    merged = []
    for lo, hi in sorted(intervals):
        if merged and lo <= merged[-1][1] + 1e-9:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


class _Floor:
    """Occupied floor footprints (axis-aligned rectangles, metres) inside the union of room boxes."""

    def __init__(self, boxes: np.ndarray):
        self.boxes = boxes
        self.rects: list[tuple[float, float, float, float]] = []

    def inside_room(self, rect, margin: float = 0.0) -> bool:
        x0, x1, y0, y1 = rect
        corners = [(x0, y0), (x0, y1), (x1, y0), (x1, y1), ((x0 + x1) / 2, (y0 + y1) / 2)]
        return all(any(lo[0] + margin <= x <= hi[0] - margin and lo[1] + margin <= y <= hi[1] - margin
                       for lo, hi in self.boxes) for x, y in corners)

    def free(self, rect, gap: float = 0.05) -> bool:
        x0, x1, y0, y1 = rect
        return all(x1 + gap <= r[0] or x0 - gap >= r[1] or y1 + gap <= r[2] or y0 - gap >= r[3]
                   for r in self.rects)

    def take(self, rect) -> None:
        self.rects.append(tuple(rect))


def _footprint(x: float, y: float, yaw: float, length: float, width: float) -> tuple[float, float, float, float]:
    """Axis-aligned bounds of a (length along local x) x (width along local y) rectangle centred at (x, y)."""
    c, s = abs(math.cos(yaw)), abs(math.sin(yaw))
    hx, hy = (c * length + s * width) / 2, (s * length + c * width) / 2
    return x - hx, x + hx, y - hy, y + hy


class _RoomGenerator:
    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.b = SceneBuilder(seed, "indoor")
        self.height = float(self.rng.uniform(2.5, 3.1))
        self.boxes = _room_boxes(self.rng, self.height)
        self.segments = _wall_segments(self.boxes)
        self.floor = _Floor(self.boxes)
        self.wall_taken: dict[int, list[tuple[float, float, bool]]] = {i: [] for i in range(len(self.segments))}

    # ----- materials -------------------------------------------------------------------------------------------
    def wood(self) -> int:
        c = _pick(self.rng, WOOD_COLORS)
        return self.b.material("wood", c, _shade(c, 0.7), scale=float(self.rng.uniform(0.05, 0.12)))

    def fabric(self) -> int:
        c = _pick(self.rng, FABRIC_COLORS)
        return self.b.material("fabric", c, _shade(c, 0.75), scale=float(self.rng.uniform(0.1, 0.3)))

    def paint(self, pattern: str = "plain") -> int:
        c = _pick(self.rng, PAINT_COLORS)
        return self.b.material(pattern, c, _shade(c, 0.8), scale=0.3)

    def metal(self) -> int:
        g = float(self.rng.uniform(0.3, 0.8))
        return self.b.material("metal", (g, g, g * 1.02), (g * 0.8,) * 3, scale=0.2)

    # ----- shell ---------------------------------------------------------------------------------------------
    def shell(self) -> None:
        rng, b = self.rng, self.b
        wall_color = _pick(rng, WALL_COLORS)
        if rng.random() < 0.3:
            wall_mat = b.material("stripes", wall_color, _shade(wall_color, 0.88), scale=float(rng.uniform(0.08, 0.3)))
        else:
            wall_mat = b.material("plain", wall_color, _shade(wall_color, 0.85), scale=0.5)
        floor_kind = rng.choice(["planks", "tiles", "carpet"])
        if floor_kind == "planks":
            c = _pick(rng, WOOD_COLORS)
            floor_mat = b.material("planks", c, _shade(c, 0.75), scale=float(rng.uniform(0.12, 0.22)))
        elif floor_kind == "tiles":
            g = float(rng.uniform(0.55, 0.9))
            floor_mat = b.material("tiles", (g, g * 0.97, g * 0.92), (0.35, 0.35, 0.33),
                                   scale=float(rng.uniform(0.3, 0.6)))
        else:
            c = _pick(rng, FABRIC_COLORS)
            floor_mat = b.material("fabric", c, _shade(c, 0.8), scale=0.4)
        ceiling_mat = b.material("plain", (0.93, 0.93, 0.92), (0.85, 0.85, 0.84), scale=1.0)
        floor = b.new_object("floor", is_thing=False)
        ceiling = b.new_object("ceiling", is_thing=False)
        walls: dict[tuple[int, float, int], object] = {}
        for seg in self.segments:
            key = (seg.axis, seg.coord, seg.side)
            if key not in walls:
                walls[key] = b.new_object("wall", is_thing=False, name=f"wall_{len(walls)}")
        labels = []
        for lo, hi in self.boxes:
            for k in range(3):
                for side, coord in ((-1, lo[k]), (1, hi[k])):
                    if k == 2:
                        obj, mat = (floor, floor_mat) if side < 0 else (ceiling, ceiling_mat)
                    else:  # faces inside the union are never hit; they borrow the first wall's labels
                        obj, mat = walls.get((k, round(float(coord), 9), side), next(iter(walls.values()))), wall_mat
                    labels.append([obj.semantic_id, obj.instance_id, mat])
        b.add_primitive(RoomShell(self.boxes, labels), floor, ceiling, *walls.values())

    # ----- walls: doors, windows, paintings ---------------------------------------------------------------------
    def _wall_slot(self, width: float, tall: bool, margin: float = 0.15):
        """(segment index, centre along the wall) of a free stretch of ``width`` metres, or None."""
        lengths = np.array([max(0.0, s.length - width - 2 * margin) for s in self.segments])
        if lengths.sum() <= 0:
            return None
        for _ in range(20):
            i = int(self.rng.choice(len(self.segments), p=lengths / lengths.sum()))
            seg = self.segments[i]
            s = float(self.rng.uniform(seg.a + margin + width / 2, seg.b - margin - width / 2))
            a, b = s - width / 2, s + width / 2
            if all(b + 0.05 <= a2 or a - 0.05 >= b2 or not (tall or tall2) for a2, b2, tall2 in self.wall_taken[i]):
                return i, s
        return None

    def door(self) -> None:
        width, height = float(self.rng.uniform(0.8, 1.0)), float(self.rng.uniform(2.0, 2.15))
        slot = self._wall_slot(width + 0.2, tall=True)
        if slot is None:
            return
        i, s = slot
        seg = self.segments[i]
        self.wall_taken[i].append((s - width / 2 - 0.1, s + width / 2 + 0.1, True))
        x, y = seg.point(s, 0.0)
        obj = self.b.object("door", Placement(x, y, seg.yaw()))
        panel, trim, knob = self.wood(), self.paint(), self.metal()
        obj.box([0.02, 0, height / 2], [0.04, width, height], panel)
        for side in (-1, 1):
            obj.box([0.03, side * (width / 2 + 0.04), (height + 0.08) / 2], [0.06, 0.08, height + 0.08], trim)
        obj.box([0.03, 0, height + 0.04], [0.06, width, 0.08], trim)
        obj.sphere([0.07, width / 2 - 0.09, 1.0], 0.03, knob)
        keep_out = seg.point(s, 0.45)
        self.floor.take(_footprint(keep_out[0], keep_out[1], seg.yaw(), 0.9, width + 0.2))

    def window(self) -> None:
        width = float(self.rng.uniform(0.8, 2.0))
        sill = float(self.rng.uniform(0.8, 1.0))
        height = float(min(self.rng.uniform(1.0, 1.5), self.height - sill - 0.25))
        slot = self._wall_slot(width + 0.12, tall=True)
        if slot is None:
            return
        i, s = slot
        seg = self.segments[i]
        self.wall_taken[i].append((s - width / 2 - 0.06, s + width / 2 + 0.06, True))
        x, y = seg.point(s, 0.0)
        obj = self.b.object("windowpane", Placement(x, y, seg.yaw(), sill))
        glass = self.b.material("glass", (0.75, 0.85, 0.95), (0.45, 0.65, 0.9), scale=height)
        frame = self.paint()
        obj.box([0.01, 0, height / 2], [0.02, width, height], glass)
        for side in (-1, 1):
            obj.box([0.03, side * (width / 2 + 0.03), height / 2], [0.06, 0.06, height + 0.12], frame)
        for z in (-0.03, height + 0.03):
            obj.box([0.03, 0, z], [0.06, width, 0.06], frame)
        obj.box([0.03, 0, height / 2], [0.04, 0.04, height], frame)  # mullion
        obj.box([0.08, 0, -0.07], [0.16, width + 0.16, 0.04], frame)  # sill

    def painting(self) -> None:
        width, height = float(self.rng.uniform(0.4, 1.2)), float(self.rng.uniform(0.3, 0.9))
        slot = self._wall_slot(width, tall=True)
        if slot is None:
            return
        i, s = slot
        seg = self.segments[i]
        self.wall_taken[i].append((s - width / 2, s + width / 2, False))
        x, y = seg.point(s, 0.0)
        z = float(self.rng.uniform(1.3, max(1.35, self.height - height - 0.3)))
        obj = self.b.object("painting", Placement(x, y, seg.yaw(), z))
        c1, c2 = _pick(self.rng, FABRIC_COLORS), _pick(self.rng, PAINT_COLORS)
        obj.box([0.015, 0, height / 2], [0.03, width, height],
                self.b.material("painting", c1, c2, scale=float(self.rng.uniform(0.1, 0.4))))

    # ----- furniture ----------------------------------------------------------------------------------------------
    def against_wall(self, length: float, width: float, tall: bool):
        """Placement of an object (depth ``length`` along its local x, ``width``) with its back on a wall."""
        for _ in range(20):
            slot = self._wall_slot(width, tall)
            if slot is None:
                return None
            i, s = slot
            seg = self.segments[i]
            x, y = seg.point(s, length / 2 + 0.01)
            rect = _footprint(x, y, seg.yaw(), length, width)
            if self.floor.inside_room(rect, margin=-0.02) and self.floor.free(rect):
                self.floor.take(rect)
                self.wall_taken[i].append((s - width / 2, s + width / 2, tall))
                back = seg.point(s, 0.01)
                return Placement(float(back[0]), float(back[1]), seg.yaw())
        return None

    def free_standing(self, length: float, width: float, margin: float = 0.3, yaw: float | None = None):
        """Placement at the centre of a free (length x width) footprint, or None."""
        lo, hi = self.boxes[:, 0, :2].min(axis=0), self.boxes[:, 1, :2].max(axis=0)
        for _ in range(40):
            x, y = self.rng.uniform(lo, hi)
            a = float(self.rng.uniform(-math.pi, math.pi)) if yaw is None else yaw
            rect = _footprint(x, y, a, length, width)
            if self.floor.inside_room(rect, margin) and self.floor.free(rect):
                self.floor.take(rect)
                return Placement(float(x), float(y), a)
        return None

    def bed(self) -> None:
        length, width = float(self.rng.uniform(1.95, 2.1)), float(self.rng.uniform(1.0, 1.8))
        place = self.against_wall(length, width, tall=False)
        if place is None:
            return
        frame, linen = self.wood(), self.fabric()
        bed = self.b.object("bed", place)
        bed.box([length / 2, 0, 0.17], [length, width, 0.3], frame)
        bed.box([length / 2 + 0.01, 0, 0.42], [length - 0.06, width - 0.06, 0.2], linen)
        bed.box([0.03, 0, 0.5], [0.06, width, 1.0], frame)
        n_pillows = 2 if width > 1.3 else 1
        for k in range(n_pillows):
            offset = (k - (n_pillows - 1) / 2) * width / n_pillows
            pillow = self.b.object("pillow", place)
            pillow.box([0.3, offset, 0.58], [0.35, min(0.6, width / n_pillows - 0.1), 0.12],
                       self.b.material("fabric", (0.93, 0.93, 0.9), (0.8, 0.8, 0.78), scale=0.2))

    def sofa(self) -> None:
        length, width = float(self.rng.uniform(0.85, 1.0)), float(self.rng.uniform(1.6, 2.6))
        place = self.against_wall(length, width, tall=False)
        if place is None:
            return
        cloth = self.fabric()
        sofa = self.b.object("sofa", place)
        sofa.box([length / 2, 0, 0.22], [length, width, 0.34], cloth)
        sofa.box([length / 2 + 0.05, 0, 0.45], [length - 0.25, width - 0.4, 0.12], cloth)
        sofa.box([0.12, 0, 0.55], [0.24, width, 0.7], cloth)
        for side in (-1, 1):
            sofa.box([length / 2, side * (width / 2 - 0.1), 0.32], [length, 0.2, 0.6], cloth)
        for side in (-1, 1):  # feet
            for fx in (0.08, length - 0.08):
                sofa.cylinder([fx, side * (width / 2 - 0.08), 0.025], 0.025, 0.05, self.metal())
        centre = place.point([length + 0.65, 0, 0])
        rect = _footprint(centre[0], centre[1], place.yaw, 0.6, 1.0)
        if self.floor.inside_room(rect, margin=0.3) and self.floor.free(rect):
            self.floor.take(rect)
            self.coffee_table(Placement(float(centre[0]), float(centre[1]), place.yaw))

    def coffee_table(self, place: Placement) -> None:
        wood = self.wood()
        table = self.b.object("coffee table", place)
        table.box([0, 0, 0.42], [0.6, 1.0, 0.04], wood)
        for sx in (-1, 1):
            for sy in (-1, 1):
                table.box([sx * 0.26, sy * 0.46, 0.2], [0.04, 0.04, 0.4], wood)

    def cabinet(self) -> None:
        length, width = float(self.rng.uniform(0.4, 0.6)), float(self.rng.uniform(0.5, 1.8))
        height = float(self.rng.uniform(0.5, 1.0))
        place = self.against_wall(length, width, tall=height > 0.8)
        if place is None:
            return
        c = _pick(self.rng, WOOD_COLORS + PAINT_COLORS)
        body = self.b.material("cabinet", c, _shade(c, 0.8), scale=width / max(1, round(width / 0.45)))
        cab = self.b.object("cabinet", place)
        cab.box([length / 2, 0, height / 2], [length, width, height], body)
        n_handles = max(1, round(width / 0.45))
        for k in range(n_handles):
            cab.sphere([length + 0.02, (k + 0.5) * width / n_handles - width / 2, height - 0.15], 0.018,
                       self.metal())
        if height < 0.85 and self.rng.random() < 0.5:
            self.table_lamp(Placement(place.x, place.y, place.yaw, height + 0.04), length)

    def table_lamp(self, place: Placement, depth: float) -> None:
        lamp = self.b.object("lamp", place)
        shade = self.b.material("plain", (1.0, 0.93, 0.75), (0.95, 0.85, 0.65), scale=0.2, emission=1.0)
        lamp.cylinder([depth / 2, 0, 0.01], 0.08, 0.02, self.metal())
        lamp.cylinder([depth / 2, 0, 0.2], 0.012, 0.36, self.metal())
        lamp.cylinder([depth / 2, 0, 0.42], 0.13, 0.2, shade)

    def shelf(self) -> None:
        length, width = float(self.rng.uniform(0.3, 0.4)), float(self.rng.uniform(0.8, 1.6))
        height = float(self.rng.uniform(1.4, min(2.1, self.height - 0.3)))
        place = self.against_wall(length, width, tall=True)
        if place is None:
            return
        wood = self.wood()
        shelf = self.b.object("shelf", place)
        shelf.box([0.01, 0, height / 2], [0.02, width, height], wood)
        for side in (-1, 1):
            shelf.box([length / 2, side * (width / 2 - 0.01), height / 2], [length, 0.02, height], wood)
        n_boards = int(self.rng.integers(3, 6))
        gap = height / n_boards
        for k in range(n_boards + 1):
            z = min(k * gap + 0.01, height - 0.01)
            shelf.box([length / 2, 0, z], [length, width - 0.04, 0.02], wood)
            if k < n_boards and self.rng.random() < 0.75:
                fill = float(self.rng.uniform(0.3, 0.95)) * (width - 0.06)
                start = float(self.rng.uniform(-(width - 0.06) / 2, (width - 0.06) / 2 - fill))
                book_h = float(min(gap - 0.06, self.rng.uniform(0.18, 0.3)))
                books = self.b.object("book", place)
                books.box([length / 2 + 0.01, start + fill / 2, z + 0.01 + book_h / 2],
                          [length - 0.08, fill, book_h], self.b.material("books", (0, 0, 0), scale=1.0))

    def desk(self) -> None:
        length, width = float(self.rng.uniform(0.6, 0.8)), float(self.rng.uniform(1.0, 1.6))
        place = self.against_wall(length, width + 0.05, tall=False)
        if place is None:
            return
        wood = self.wood()
        desk = self.b.object("desk", place)
        desk.box([length / 2, 0, 0.74], [length, width, 0.03], wood)
        for side in (-1, 1):
            desk.box([length / 2, side * (width / 2 - 0.02), 0.365], [length - 0.04, 0.03, 0.73], wood)
        chair_at = Placement(*place.point([length + 0.35, 0, 0])[:2], place.yaw + math.pi)
        rect = _footprint(chair_at.x, chair_at.y, chair_at.yaw, 0.5, 0.5)
        if self.floor.inside_room(rect) and self.floor.free(rect, gap=0.0):
            self.floor.take(rect)
            self.chair(chair_at)

    def chair(self, place: Placement) -> None:
        """A chair whose front (local +x) faces away from its backrest; origin at the seat centre."""
        wood, cloth = self.wood(), self.fabric()
        chair = self.b.object("chair", place)
        chair.box([0, 0, 0.45], [0.45, 0.45, 0.05], cloth)
        for sx in (-1, 1):
            for sy in (-1, 1):
                chair.cylinder([sx * 0.19, sy * 0.19, 0.215], 0.02, 0.43, wood)
        chair.box([-0.205, 0, 0.72], [0.04, 0.42, 0.45], wood)

    def dining_table(self) -> None:
        length, width = float(self.rng.uniform(0.8, 1.6)), float(self.rng.uniform(0.7, 1.0))
        yaw = float(self.rng.choice([0.0, math.pi / 2]))
        place = self.free_standing(length + 1.1, width + 1.1, margin=0.2, yaw=yaw)
        if place is None:
            return
        wood = self.wood()
        table = self.b.object("table", place)
        if self.rng.random() < 0.3:
            radius = min(length, width) / 2
            table.cylinder([0, 0, 0.74], radius, 0.04, wood)
            table.cylinder([0, 0, 0.37], 0.05, 0.7, wood)
            table.cylinder([0, 0, 0.015], 0.25, 0.03, wood)
            length = width = 2 * radius
        else:
            table.box([0, 0, 0.74], [length, width, 0.04], wood)
            for sx in (-1, 1):
                for sy in (-1, 1):
                    table.box([sx * (length / 2 - 0.06), sy * (width / 2 - 0.06), 0.36], [0.05, 0.05, 0.72], wood)
        seats = [([length / 2 + 0.3, 0, 0], math.pi), ([-length / 2 - 0.3, 0, 0], 0.0),
                 ([0, width / 2 + 0.3, 0], -math.pi / 2), ([0, -width / 2 - 0.3, 0], math.pi / 2)]
        for k in self.rng.permutation(4)[: int(self.rng.integers(2, 5))]:
            local, face_yaw = seats[k]
            p = place.point(local)
            self.chair(Placement(float(p[0]), float(p[1]), place.yaw + face_yaw))

    def floor_lamp(self) -> None:
        place = self.free_standing(0.4, 0.4, margin=0.15)
        if place is None:
            return
        lamp = self.b.object("lamp", place)
        shade = self.b.material("plain", (1.0, 0.95, 0.8), (0.95, 0.88, 0.7), scale=0.2, emission=1.0)
        lamp.cylinder([0, 0, 0.015], 0.15, 0.03, self.metal())
        lamp.cylinder([0, 0, 0.75], 0.015, 1.4, self.metal())
        lamp.cylinder([0, 0, 1.55], float(self.rng.uniform(0.16, 0.22)), 0.3, shade)

    def plant(self) -> None:
        place = self.free_standing(0.5, 0.5, margin=0.1)
        if place is None:
            return
        plant = self.b.object("plant", place)
        pot_h = float(self.rng.uniform(0.25, 0.45))
        plant.cylinder([0, 0, pot_h / 2], 0.17, pot_h, self.paint())
        leaves = self.b.material("leaves", (0.2, 0.45, 0.15), (0.1, 0.3, 0.08), scale=0.08)
        plant.sphere([0, 0, pot_h + 0.25], 0.26, leaves)
        if self.rng.random() < 0.6:
            plant.sphere([0.08, -0.06, pot_h + 0.5], 0.18, leaves)

    def rug(self) -> None:
        length, width = float(self.rng.uniform(1.2, 2.5)), float(self.rng.uniform(0.8, 1.8))
        lo, hi = self.boxes[:, 0, :2].min(axis=0), self.boxes[:, 1, :2].max(axis=0)
        for _ in range(20):  # rugs may lie under furniture: only the room bounds matter
            x, y = self.rng.uniform(lo, hi)
            rect = _footprint(x, y, 0.0, length, width)
            if self.floor.inside_room(rect, margin=0.3):
                c1, c2 = _pick(self.rng, FABRIC_COLORS), _pick(self.rng, FABRIC_COLORS)
                self.b.object("rug", Placement(float(x), float(y))).box(
                    [0, 0, 0.006], [length, width, 0.012], self.b.material("painting", c1, c2, scale=0.3))
                return

    def person(self) -> None:
        place = self.free_standing(0.5, 0.5, margin=0.4)
        if place is None:
            return
        height = float(self.rng.uniform(1.55, 1.9))
        skin = self.b.material("plain", _pick(self.rng, [(0.87, 0.7, 0.58), (0.6, 0.42, 0.3), (0.4, 0.27, 0.2)]),
                               (0.5, 0.35, 0.3), scale=0.1)
        shirt, trousers = self.fabric(), self.fabric()
        leg = 0.47 * height
        person = self.b.object("person", place)
        for side in (-1, 1):
            person.cylinder([0, side * 0.1, leg / 2], 0.07, leg, trousers)
        torso = 0.32 * height
        person.cylinder([0, 0, leg + torso / 2], 0.17, torso, shirt)
        for side in (-1, 1):
            person.cylinder([0, side * 0.22, leg + torso - 0.3], 0.045, 0.6, shirt)
        person.sphere([0, 0, leg + torso + 0.13], 0.11, skin)

    def ceiling_light(self) -> np.ndarray:
        """Adds the ceiling light of the main box and returns the key light's position under it."""
        lo, hi = self.boxes[0]
        x, y = (lo[0] + hi[0]) / 2 + self.rng.uniform(-0.3, 0.3), (lo[1] + hi[1]) / 2 + self.rng.uniform(-0.3, 0.3)
        light = self.b.object("light", Placement(float(x), float(y), 0.0, self.height))
        glow = self.b.material("plain", (1.0, 0.98, 0.9), (0.95, 0.92, 0.85), scale=0.1, emission=1.0)
        if self.rng.random() < 0.5:
            light.cylinder([0, 0, -0.03], float(self.rng.uniform(0.2, 0.3)), 0.06, glow)
            return np.array([x, y, self.height - 0.25])
        radius = float(self.rng.uniform(0.12, 0.2))
        light.cylinder([0, 0, -0.15], 0.008, 0.3, self.metal())
        light.sphere([0, 0, -0.3 - radius], radius, glow)
        return np.array([x, y, self.height - 0.3 - 2 * radius - 0.08])

    def generate(self) -> Scene:
        rng = self.rng
        self.shell()
        self.door()
        if rng.random() < 0.3:
            self.door()
        for _ in range(int(rng.integers(1, 4))):
            self.window()
        room_type = rng.choice(["bedroom", "living", "dining", "office"])
        plan = {  # (step, probability)
            "bedroom": [(self.bed, 1.0), (self.cabinet, 0.9), (self.cabinet, 0.6), (self.shelf, 0.6),
                        (self.rug, 0.5), (self.floor_lamp, 0.5)],
            "living": [(self.sofa, 1.0), (self.shelf, 0.8), (self.cabinet, 0.7), (self.rug, 0.6),
                       (self.floor_lamp, 0.6), (self.plant, 0.6)],
            "dining": [(self.dining_table, 1.0), (self.cabinet, 0.9), (self.cabinet, 0.5), (self.shelf, 0.6),
                       (self.plant, 0.6)],
            "office": [(self.desk, 1.0), (self.shelf, 0.9), (self.shelf, 0.5), (self.cabinet, 0.7),
                       (self.plant, 0.5), (self.floor_lamp, 0.5)],
        }[room_type]
        for step, probability in plan:
            if rng.random() < probability:
                step()
        extras = [self.cabinet, self.shelf, self.plant, self.dining_table, self.sofa, self.bed]
        for k in rng.permutation(len(extras))[: int(rng.integers(0, 3))]:
            extras[k]()
        for _ in range(int(rng.integers(0, 3))):
            self.painting()
        if rng.random() < 0.3:
            self.person()
        light_position = self.ceiling_light()
        lo, hi = self.boxes[:, 0, :2].min(axis=0), self.boxes[:, 1, :2].max(axis=0)
        span = float(np.linalg.norm(hi - lo))
        light = Light(light_position, intensity=float(rng.uniform(0.75, 1.0)), falloff=0.6 * span,
                      ambient=float(rng.uniform(0.38, 0.48)))
        return self.b.build(light, (lo[0], hi[0], lo[1], hi[1]), (1.1, min(1.7, self.height - 0.6)))


def generate_indoor(seed: int) -> Scene:
    """A furnished room drawn from ``seed`` (same seed, same room)."""
    return _RoomGenerator(seed).generate()

