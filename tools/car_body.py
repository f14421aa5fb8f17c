"""The geometry procedural cars are built from: a side profile lofted over rounded cross-sections
(the body), boxes, and wheels.

World axes as the product's: x forward (the car's length), y to the car's left, z up, metres,
the ground at z = 0, the car centered on x = y = 0. Profile stations t run from 0 (rear) to 1
(front).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tools.mesh import Mesh, concat, make_mesh, transformed

Keys = tuple[tuple[float, ...], tuple[float, ...]]  # (stations, values), interpolated linearly


@dataclass(frozen=True)
class BodyShape:
    """A body's proportions; profile stations are fractions of the length from the rear."""

    length: float
    width: float
    wheel_radius: float
    clearance: float  # body bottom above the ground
    belt: float  # height of the window line
    roof: float
    hood: float  # hood height at the windshield base
    nose: float  # top height at the very front
    tail: float  # top height at the very back
    rear_window: float  # station where the rear window (or hatch) starts
    roof_back: float
    roof_front: float
    windshield: float
    rear_axle: float
    front_axle: float
    squareness: float  # cross-section superellipse exponent
    plan_squareness: float  # plan-view superellipse exponent
    roof_ratio: float  # roof half-width over body half-width (tumblehome)
    # None: the closed-car top line from the stations above; else (stations, heights)
    top_keys: Keys | None = None
    # None: a superellipse plan of `width`; else (stations, half-widths) (a formula car's nose)
    plan_keys: Keys | None = None
    arches: bool = True  # wheel arches cut into the bottom (False: wheels stand outside the body)

    @property
    def tire_width(self) -> float:
        return 0.22 + 0.1 * (self.wheel_radius - 0.28)


def _smooth(values: np.ndarray, t: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing over non-uniform stations: rounds the profile's corners."""
    weights = np.exp(-0.5 * ((t[:, None] - t[None, :]) / sigma) ** 2)
    return (weights @ values) / weights.sum(axis=1)


def top_keys(s: BodyShape) -> Keys:
    """The top line's key points: the given ones, or tail, trunk (or hatch), roof, hood, nose."""
    if s.top_keys is not None:
        return s.top_keys
    trunk = s.belt + 0.03 if s.rear_window > 0.08 else s.roof - 0.05
    return ((0.0, s.rear_window, s.roof_back, s.roof_front, s.windshield, 1.0),
            (s.tail, trunk, s.roof, s.roof, s.hood, s.nose))


def profile(s: BodyShape, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top height, bottom height and plan half-width at stations t (0 = rear, 1 = front)."""
    keys_t, keys_z = top_keys(s)
    top = _smooth(np.interp(t, keys_t, keys_z), t, 0.025)
    x = (t - 0.5) * s.length
    bottom = s.clearance + 0.12 * np.clip(np.abs(2 * t - 1) - 0.85, 0, None) / 0.15
    for axle in (s.rear_axle, s.front_axle) if s.arches else ():
        dx = x - (axle - 0.5) * s.length
        arch = s.wheel_radius * 1.12
        inside = np.abs(dx) < arch
        bottom = np.where(inside, np.maximum(
            bottom, s.wheel_radius + np.sqrt(np.clip(arch**2 - dx**2, 0, None))), bottom)
    bottom = np.minimum(bottom, top - 0.12)
    if s.plan_keys is None:
        k = s.plan_squareness
        half_width = s.width / 2 * np.clip(1 - np.abs(2 * t - 1) ** k, 0, None) ** (1 / k)
    else:
        half_width = _smooth(np.interp(t, *s.plan_keys), t, 0.03)
    return top, bottom, half_width


LOWER, SIDE, TOP = 10, 5, 6  # ring rows per half: below the belt, side windows, roof


def _half_ring(v_belt: np.ndarray, squareness: float) -> np.ndarray:
    """(stations, rows + 1) superellipse angles from the bottom center (-pi/2) to the top center
    (pi/2), with fixed rows at the belt line and the roof edge so window edges follow grid
    lines."""
    # superellipse |u|^n + |v|^n = 1 drawn as v = sign(sin a) |sin a|^(2/n); a belt below the
    # bottom (over a high wheel arch) is taken at the bottom
    v_belt = np.clip(v_belt, -1.0, 1.0)
    belt = np.arcsin(np.sign(v_belt) * np.abs(v_belt) ** (squareness / 2))
    corner = belt + 0.6 * (np.pi / 2 - belt)
    pieces = [np.linspace(-np.pi / 2, belt, LOWER + 1, axis=1)[:, :-1],
              np.linspace(belt, corner, SIDE + 1, axis=1)[:, :-1],
              np.linspace(corner, np.full_like(belt, np.pi / 2), TOP + 1, axis=1)]
    return np.concatenate(pieces, axis=1)


@dataclass
class Loft:
    """The lofted body as triangles, with where each lies on the grid (for coloring)."""

    positions: np.ndarray  # (T, 3, 3), wound so face normals point into the body
    normals: np.ndarray  # (T, 3, 3) smooth corner normals (inward too, but outward at the caps)
    row: np.ndarray  # (T,) ring row counted from the bottom center along either half
    t: np.ndarray  # (T,) station of the triangle's middle
    endwise: np.ndarray  # (T,) the face looks along the car's length (nose, tail, steep back)


def loft(s: BodyShape, stations: int = 72) -> Loft:
    """The body: superellipse rings between bottom and top, narrowing above the belt."""
    u_station = np.linspace(0, 1, stations)
    t = (1 - np.cos(np.pi * u_station)) / 2  # denser at the nose and tail, where the shape turns
    top, bottom, half_width = profile(s, t)
    belt = np.minimum(s.belt, top - 0.05)
    half = _half_ring(2 * (belt - bottom) / (top - bottom) - 1, s.squareness)
    theta = np.concatenate([half, np.pi - half[:, 1:-1][:, ::-1]], axis=1)  # closed ring
    around = theta.shape[1]
    p = 2 / s.squareness
    u = np.sign(np.cos(theta)) * np.abs(np.cos(theta)) ** p
    v = np.sign(np.sin(theta)) * np.abs(np.sin(theta)) ** p
    z = bottom[:, None] + (v + 1) / 2 * (top - bottom)[:, None]
    rise = np.clip((z - belt[:, None]) / (top - belt)[:, None], 0, 1)
    y = u * half_width[:, None] * (1 - (1 - s.roof_ratio) * rise)
    x = np.broadcast_to(((t - 0.5) * s.length)[:, None], z.shape)
    grid = np.stack([x, y, z], axis=-1)  # (stations, around, 3)

    # smooth normals from the grid's tangents; the closed ends get the end's axis direction
    along = np.gradient(grid, axis=0)
    across = np.roll(grid, -1, axis=1) - np.roll(grid, 1, axis=1)
    normals = np.cross(along, across)
    length = np.linalg.norm(normals, axis=-1, keepdims=True)
    normals = np.where(length > 1e-9, normals / np.maximum(length, 1e-12), 0.0)
    normals[0], normals[-1] = [-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]

    i, j = np.meshgrid(np.arange(stations - 1), np.arange(around), indexing="ij")
    j1 = (j + 1) % around
    quads = np.stack([np.stack([i, j], -1), np.stack([i + 1, j], -1), np.stack([i + 1, j1], -1),
                      np.stack([i, j], -1), np.stack([i + 1, j1], -1), np.stack([i, j1], -1)],
                     axis=2).reshape(-1, 3, 2)
    positions = grid[quads[..., 0], quads[..., 1]]  # (T, 3, 3)
    corner_normals = normals[quads[..., 0], quads[..., 1]]
    row = np.minimum(j, around - 1 - j).repeat(2, axis=1).reshape(-1)
    mid_t = ((t[:-1] + t[1:]) / 2)[i].repeat(2, axis=1).reshape(-1)
    face = np.cross(positions[:, 1] - positions[:, 0], positions[:, 2] - positions[:, 0])
    area = np.linalg.norm(face, axis=1)
    endwise = np.abs(face[:, 0]) > 0.7 * np.maximum(area, 1e-12)
    keep = area > 1e-8
    return Loft(positions[keep], corner_normals[keep], row[keep], mid_t[keep], endwise[keep])


def box(center: np.ndarray, size: np.ndarray, color: tuple[float, float, float]) -> Mesh:
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) / 2
    corners = center + corners * size
    faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    tris = [[corners[a], corners[b], corners[c]] for f in faces
            for a, b, c in ((f[0], f[1], f[2]), (f[0], f[2], f[3]))]
    return make_mesh(np.array(tris).reshape(-1, 3), color)


TIRE_RGB = (0.06, 0.06, 0.065)


def wheel(radius: float, width: float, rim_rgb: tuple[float, float, float],
          rim_ratio: float = 0.62, spokes: int = 0, segments: int = 28) -> Mesh:
    """A wheel at the origin, axis along y, the outer face at y = +width/2: tread, sidewall, rim
    (solid, or `spokes` spokes with dark gaps) and hub."""
    r = radius
    angle = np.linspace(0, 2 * np.pi, segments + 1)
    ring = np.stack([np.cos(angle), np.zeros_like(angle), np.sin(angle)], axis=1)
    a, b = ring[:-1], ring[1:]
    out, inn = np.array([0.0, width / 2, 0.0]), np.array([0.0, -width / 2, 0.0])
    tread = np.stack([a * r + out, b * r + out, b * r + inn, a * r + out, b * r + inn, a * r + inn],
                     axis=1)
    radial = (a + b) / np.linalg.norm(a + b, axis=1, keepdims=True)
    parts = [make_mesh(tread.reshape(-1, 3), TIRE_RGB, normals=np.repeat(radial, 6, axis=0))]

    def annulus(r0: float, r1: float, y: float, color) -> Mesh:
        """`color`: one RGB, or (segments, 3) one per segment."""
        offset = np.array([0.0, y, 0.0])
        tris = np.stack([a * r0 + offset, a * r1 + offset, b * r1 + offset,
                         a * r0 + offset, b * r1 + offset, b * r0 + offset], axis=1)
        tris = tris.reshape(-1, 3, 3)
        area = np.linalg.norm(np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0]), axis=1)
        normal = np.tile([0.0, np.sign(y), 0.0], (int((area > 1e-12).sum()) * 3, 1))
        if np.ndim(color) == 2:  # per segment: two triangles each, three corners each
            color = np.repeat(np.asarray(color), 2, axis=0)[area > 1e-12].repeat(3, axis=0)
        return make_mesh(tris[area > 1e-12].reshape(-1, 3), color, normals=normal)

    rim = rim_ratio * r
    face = rim_rgb
    if spokes:  # a spoke where cos(spokes * angle) is high, a dark gap between
        middle = (angle[:-1] + angle[1:]) / 2
        gap = np.cos(spokes * middle)[:, None] < -0.2
        face = np.where(gap, np.array(TIRE_RGB), np.array(rim_rgb))
    parts += [
        annulus(rim, r, width / 2, TIRE_RGB),  # sidewall
        annulus(0.22 * rim, rim, width / 2 + 0.005, face),
        annulus(0.0, 0.22 * rim, width / 2 + 0.01, tuple(0.6 * c for c in rim_rgb)),  # hub
        annulus(0.0, r, -width / 2, TIRE_RGB),
    ]
    return concat(parts)


def wheel_pair(tire: Mesh, radius: float, x: float, lateral: float) -> list[Mesh]:
    """A `wheel` on each side of the axle at x, `lateral` from the middle, standing on the
    ground; the right one mirrored so both rims face outward."""
    return [transformed(tire, np.diag([1.0, side, 1.0]), [x, side * lateral, radius])
            for side in (-1.0, 1.0)]
