"""Procedural materials: albedo patterns evaluated from texture coordinates in metres, plus the sky.

Each ``Material`` maps surface coordinates (u, v) in metres (v is up on vertical faces) and world points to an
RGB albedo in [0, 1]. Patterns are deterministic functions of the material's ``seed`` (integer hash value noise;
no global random state). Detail smaller than about two pixel footprints fades to its mean (so distant bricks,
tiles and weaves do not alias into moiré). Emissive materials (lamp shades, lights) are drawn unlit with their
albedo x emission. Arrays hold vectors as rows: uv (2, n), points (3, n), colours (3, n).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PATTERNS = ("plain", "wood", "planks", "tiles", "stripes", "brick", "facade", "fabric", "books", "grass",
            "asphalt", "pavement", "leaves", "bark", "glass", "painting", "cabinet", "metal")
_BOOK_COLORS = np.array([[0.55, 0.1, 0.1], [0.1, 0.25, 0.5], [0.15, 0.4, 0.2], [0.8, 0.7, 0.3],
                         [0.3, 0.2, 0.15], [0.85, 0.85, 0.8], [0.45, 0.15, 0.4]]).T


def _hash(ix: np.ndarray, iy: np.ndarray, seed: int) -> np.ndarray:
    """Integer lattice hash -> floats in [0, 1) (uint32 arithmetic, wraps by design)."""
    h = (ix.astype(np.int64).astype(np.uint32) * np.uint32(0x8DA6B343)
         ^ iy.astype(np.int64).astype(np.uint32) * np.uint32(0xD8163841)
         ^ np.uint32((seed * 0x9E3779B1) & 0xFFFFFFFF))
    h ^= h >> np.uint32(15)
    h *= np.uint32(0x2C1B3C6D)
    h ^= h >> np.uint32(12)
    h *= np.uint32(0x297A2D39)
    h ^= h >> np.uint32(15)
    return h.astype(np.float64) * (1.0 / 4294967296.0)


def value_noise(u: np.ndarray, v: np.ndarray, seed: int) -> np.ndarray:
    """Smooth value noise in [0, 1) with unit lattice spacing."""
    iu, iv = np.floor(u), np.floor(v)
    fu, fv = u - iu, v - iv
    su, sv = fu * fu * (3.0 - 2.0 * fu), fv * fv * (3.0 - 2.0 * fv)
    a, b = _hash(iu, iv, seed), _hash(iu + 1, iv, seed)
    c, d = _hash(iu, iv + 1, seed), _hash(iu + 1, iv + 1, seed)
    top = a + (b - a) * su
    bottom = c + (d - c) * su
    return top + (bottom - top) * sv


def fade(footprint: np.ndarray, size: float) -> np.ndarray:
    """Weight of a feature of ``size`` metres seen with a pixel ``footprint`` (metres): 1 while the footprint is
    below a quarter of it, 0 beyond half of it (the Nyquist limit)."""
    return np.clip((0.5 * size - footprint) / (0.25 * size), 0.0, 1.0)


def fbm(u: np.ndarray, v: np.ndarray, seed: int, footprint: np.ndarray, cell: float, octaves: int = 3) -> np.ndarray:
    """Fractal sum of value-noise octaves in [0, 1); (u, v) are in lattice units of ``cell`` metres and octaves
    finer than the pixel ``footprint`` fade to their mean."""
    total = np.zeros_like(u)
    amplitude, norm = 1.0, 0.0
    for octave in range(octaves):
        scale = 2.0 ** octave
        weight = fade(footprint, cell / scale)
        if weight.any():
            total += amplitude * (0.5 + weight * (value_noise(u * scale, v * scale, seed + 101 * octave) - 0.5))
        else:
            total += amplitude * 0.5
        norm += amplitude
        amplitude *= 0.5
    return total / norm


def _blend(pattern: np.ndarray, mean: float, weight: np.ndarray) -> np.ndarray:
    """``pattern`` where resolved (weight 1), its area mean where not (weight 0)."""
    return mean + (pattern - mean) * weight


def _mix(c1, c2, w: np.ndarray) -> np.ndarray:
    c1 = np.asarray(c1, dtype=np.float64).reshape(3, -1)
    c2 = np.asarray(c2, dtype=np.float64).reshape(3, -1)
    return c1 + (c2 - c1) * w


def _frac(x: np.ndarray) -> np.ndarray:
    return x - np.floor(x)


def _edge_distance(x: np.ndarray) -> np.ndarray:
    """Distance in cells from x to the nearest integer (0 on a cell border, 0.5 in the middle)."""
    f = _frac(x)
    return np.minimum(f, 1.0 - f)


@dataclass(frozen=True)
class Material:
    """A procedural surface: ``pattern`` (one of PATTERNS), two colours (RGB in [0, 1]), a feature size in
    metres (``scale``), a noise ``seed`` and an ``emission`` factor (> 0: unlit, glowing)."""

    pattern: str
    color: tuple[float, float, float]
    color2: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scale: float = 1.0
    seed: int = 0
    emission: float = 0.0

    def __post_init__(self):
        if self.pattern not in PATTERNS:
            raise ValueError(f"unknown pattern {self.pattern!r}; expected one of {PATTERNS}")

    def to_json(self) -> dict:
        return {"pattern": self.pattern, "color": list(self.color), "color2": list(self.color2),
                "scale": self.scale, "seed": self.seed, "emission": self.emission}

    def albedo(self, uv: np.ndarray, points: np.ndarray, footprint: np.ndarray) -> np.ndarray:
        """RGB albedo (3, n) in [0, 1] at texture coordinates ``uv`` (2, n), world ``points`` (3, n), seen with
        a pixel footprint of ``footprint`` (n,) metres."""
        u, v, fp = uv[0], uv[1], footprint
        s, seed, c1, c2 = self.scale, self.seed, self.color, self.color2
        p = self.pattern
        if p == "plain":
            rgb = _mix(c1, c2, 0.25 * fbm(u / s, v / s, seed, fp, s))
        elif p == "metal":
            rgb = _mix(c1, c2, 0.15 * fbm(u / s, v / (4 * s), seed, fp, s, 2))
        elif p == "wood":
            grain = fbm(u / s, v / (8 * s), seed, fp, s)
            rings = _blend(0.5 + 0.5 * np.sin(2 * math.pi * (v / (0.6 * s) + 3.0 * grain)), 0.5, fade(fp, 0.6 * s))
            rgb = _mix(c1, c2, 0.6 * rings + 0.2 * grain)
        elif p == "planks":  # boards of width s along u, length 6 s, staggered
            row = np.floor(v / s)
            shifted = u + _hash(row, row * 0 + 7, seed) * 6 * s
            board = _blend(_hash(row, np.floor(shifted / (6 * s)), seed + 1), 0.5, fade(fp, 2 * s))
            grain = fbm(shifted / (2 * s), v / (0.15 * s), seed + 2, fp, 0.15 * s, 2)
            seam = (_edge_distance(v / s) < 0.03) | (_edge_distance(shifted / (6 * s)) < 0.005)
            dark = _blend(seam.astype(np.float64), 0.07, fade(fp, 0.12 * s))
            rgb = _mix(c1, c2, 0.5 * board + 0.4 * grain) * (1.0 - 0.45 * dark)
        elif p in ("tiles", "pavement"):  # square tiles of size s, grout lines in color2
            g = 0.04 if p == "tiles" else 0.06
            grout = np.minimum(_edge_distance(u / s), _edge_distance(v / s)) < g
            grout = _blend(grout.astype(np.float64), 4 * g, fade(fp, 4 * g * s))
            tint = _blend(_hash(np.floor(u / s), np.floor(v / s), seed), 0.5, fade(fp, s))
            jitter = 0.2 * tint + 0.1 * fbm(u * 3 / s, v * 3 / s, seed, fp, s / 3) - 0.1
            rgb = _mix(_mix(c1, np.ones(3), jitter), c2, grout)
        elif p == "stripes":  # vertical wallpaper stripes of width s
            band = _blend(np.floor(u / s) % 2, 0.5, fade(fp, 2 * s))
            rgb = _mix(c1, c2, 0.6 * band + 0.15 * fbm(u * 20, v * 20, seed, fp, 0.05, 2))
        elif p == "brick":  # s = brick length; rows of s/3
            h = s / 3.0
            row = np.floor(v / h)
            shifted = u / s + 0.5 * (row % 2)
            mortar = (_frac(v / h) < 0.12) | (_edge_distance(shifted) < 0.02)
            mortar = _blend(mortar.astype(np.float64), 0.16, fade(fp, 0.48 * h))
            tint = _blend(_hash(np.floor(shifted), row, seed), 0.5, fade(fp, 2 * h))
            rgb = _mix(_mix(c1, np.asarray(c1) * 0.6, tint), c2, mortar)
        elif p == "facade":  # wall colour with a grid of windows: s = window spacing, storeys of 3 m
            fu, fv = _frac(u / s), _frac(v / 3.0)
            window = (np.abs(fu - 0.5) < 0.28) & (fv > 0.3) & (fv < 0.8) & (v > 1.0)
            window = _blend(window.astype(np.float64), 0.28, fade(fp, 0.5 * s))
            lit = _hash(np.floor(u / s), np.floor(v / 3.0), seed) > 0.8
            glass = _mix((0.12, 0.16, 0.22), (0.55, 0.6, 0.65), 0.5 * fv + 0.3 * lit)
            wall = _mix(c1, c2, 0.3 * fbm(u / 2, v / 2, seed, fp, 2.0))
            rgb = _mix(wall, glass, window)
        elif p == "fabric":
            weave = np.sin(u * (2 * math.pi / 0.012)) * np.sin(v * (2 * math.pi / 0.012))
            weave = _blend(0.5 + 0.5 * weave, 0.5, fade(fp, 0.024))
            rgb = _mix(c1, c2, 0.5 * fbm(u / s, v / s, seed, fp, s) + 0.1 * weave)
        elif p == "books":  # spines of random colour, 3.5 cm wide, along u
            spine = np.floor(u / 0.035)
            index = (_hash(spine, spine * 0 + 3, seed) * _BOOK_COLORS.shape[1]).astype(np.int64)
            spines = _BOOK_COLORS[:, index] * (0.8 + 0.2 * _hash(spine, spine, seed + 1))
            mean = _BOOK_COLORS.mean(axis=1, keepdims=True) * 0.9
            rgb = mean + (spines - mean) * fade(fp, 0.07)
        elif p == "grass":
            fine = _blend(value_noise(u * 8, v * 8, seed + 5), 0.5, fade(fp, 0.125))
            rgb = _mix(c1, c2, 0.6 * fbm(u / s, v / s, seed, fp, s) + 0.4 * fine)
        elif p == "asphalt":  # s = road half width; lane markings from world y (the road runs along x)
            y = points[1]
            fine = _blend(value_noise(u * 20, v * 20, seed + 1), 0.5, fade(fp, 0.05))
            base = _mix(c1, c2, 0.5 * fbm(u * 2, v * 2, seed, fp, 0.5) + 0.3 * fine)
            centre = (np.abs(y) < 0.07) & (_frac(points[0] / 6.0) < 0.5)
            edge = np.abs(np.abs(y) - (s - 0.3)) < 0.07
            paint = (centre | edge) * (0.4 + 0.6 * fade(fp, 0.28))
            rgb = _mix(base, (0.85, 0.85, 0.8), paint)
        elif p == "leaves":
            blob = fbm(u / s, v / s, seed, fp, s)
            rgb = _mix(c1, c2, np.clip((blob - 0.35) * 2.5, 0, 1))
        elif p == "bark":
            rgb = _mix(c1, c2, fbm(u / (0.2 * s), v / (2 * s), seed, fp, 0.2 * s))
        elif p == "glass":  # a bright, sky-like view through a window pane
            rgb = _mix(c1, c2, np.clip(v / max(s, 1e-6), 0, 1) * 0.8 + 0.2 * fbm(u * 2, v * 2, seed, fp, 0.5))
        elif p == "painting":
            a = fbm(u / s, v / s, seed, fp, s)
            b = fbm(u / s, v / s, seed + 9, fp, s)
            rgb = np.stack([a, b, 1.0 - a]) * 0.6 + _mix(c1, c2, b) * 0.4
        elif p == "cabinet":  # door/drawer panels of width s with dark gaps
            gap = (_edge_distance(u / s) < 0.012 / s) | (_edge_distance(v / 0.35) < 0.02)
            gap = _blend(gap.astype(np.float64), 0.08, fade(fp, 0.05))
            rgb = _mix(c1, c2, 0.3 * fbm(u * 4, v * 4, seed, fp, 0.25)) * (1.0 - 0.6 * gap)
        else:  # pragma: no cover - guarded by __post_init__
            raise AssertionError(p)
        return np.clip(rgb, 0.0, 1.0)


def sky_color(dirs: np.ndarray, sun_direction: np.ndarray | None, seed: int) -> np.ndarray:
    """RGB (3, n) in [0, 1] of the sky along unit world directions (3, n): horizon-to-zenith gradient, clouds
    and, with a ``sun_direction``, a glow around the sun."""
    z = np.clip(dirs[2], -1.0, 1.0)
    rgb = _mix((0.86, 0.9, 0.95), (0.3, 0.5, 0.88), np.clip(z, 0.0, 1.0) ** 0.5)
    up = np.maximum(z, 0.02)
    cloud_u, cloud_v = dirs[0] / up, dirs[1] / up  # cloud layer coordinates (a plane above the camera)
    no_detail = np.zeros_like(z)
    cloud = np.clip((fbm(cloud_u * 1.5, cloud_v * 1.5, seed, no_detail, 1.0, 4) - 0.5) * 3.0, 0.0, 1.0)
    rgb = _mix(rgb, (0.97, 0.97, 0.97), cloud * np.clip(z * 8, 0.0, 1.0))
    if sun_direction is not None:
        glow = np.clip(np.asarray(sun_direction) @ dirs, 0.0, 1.0) ** 64
        rgb = rgb + glow * np.array([[0.6], [0.5], [0.3]])
    return np.clip(rgb, 0.0, 1.0)
