"""Seeded procedural cars: a side profile (nose, hood, windshield, roof, rear window, trunk)
lofted over rounded cross-sections, wheel arches, four wheels, glass, head and tail lights.

World axes as the product's: x forward (the car's length), y to the car's left, z up, metres
before `normalize_to_unit_sphere`. Same seed, same car, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tools.mesh import Mesh, concat, make_mesh, normalize_to_unit_sphere, transformed

BODY_TYPES = ("sedan", "hatch", "coupe", "suv", "wagon")
GLASS_RGB = (0.10, 0.12, 0.15)
TIRE_RGB = (0.06, 0.06, 0.065)
HEADLIGHT_RGB = (0.95, 0.95, 0.85)
TAILLIGHT_RGB = (0.75, 0.04, 0.04)
PAINTS = (  # common car colors; jittered per car
    (0.92, 0.92, 0.90), (0.08, 0.08, 0.09), (0.70, 0.71, 0.73), (0.38, 0.39, 0.41),
    (0.70, 0.06, 0.06), (0.08, 0.20, 0.55), (0.05, 0.10, 0.25), (0.10, 0.35, 0.18),
    (0.95, 0.75, 0.10), (0.90, 0.40, 0.05), (0.75, 0.68, 0.55), (0.35, 0.10, 0.35),
    (0.15, 0.50, 0.75), (0.55, 0.05, 0.10),
)
RIMS = ((0.80, 0.80, 0.82), (0.55, 0.56, 0.58), (0.22, 0.22, 0.24), (0.72, 0.62, 0.40))


@dataclass(frozen=True)
class Design:
    """A car's proportions; profile stations are fractions of the length from the rear."""

    body: str
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
    paint: tuple[float, float, float]
    rim: tuple[float, float, float]
    dark_trim: bool  # sills and bumpers in dark plastic

    @property
    def tire_width(self) -> float:
        return 0.22 + 0.1 * (self.wheel_radius - 0.28)


def _design(rng: np.random.Generator) -> Design:
    body = BODY_TYPES[rng.integers(len(BODY_TYPES))]
    u = rng.uniform
    # (length, width, wheel radius, clearance/radius, belt, roof), then profile stations
    size = {
        "sedan": ((4.4, 4.9), (1.72, 1.86), (0.30, 0.34), (0.55, 0.65), (0.92, 1.0), (1.38, 1.48)),
        "hatch": ((3.7, 4.3), (1.65, 1.80), (0.28, 0.32), (0.55, 0.65), (0.92, 1.0), (1.42, 1.55)),
        "coupe": ((4.2, 4.7), (1.75, 1.90), (0.31, 0.35), (0.45, 0.55), (0.82, 0.9), (1.22, 1.33)),
        "suv": ((4.3, 4.9), (1.82, 1.98), (0.36, 0.41), (0.75, 0.90), (1.08, 1.2), (1.65, 1.85)),
        "wagon": ((4.5, 4.9), (1.75, 1.88), (0.30, 0.34), (0.55, 0.65), (0.92, 1.0), (1.42, 1.5)),
    }[body]
    stations = {  # rear window, roof back, roof front, windshield, rear axle, front axle
        "sedan": (0.20, 0.33, 0.60, 0.71, 0.18, 0.80),
        "hatch": (0.02, 0.10, 0.56, 0.70, 0.15, 0.84),
        "coupe": (0.12, 0.36, 0.55, 0.68, 0.17, 0.80),
        "suv": (0.015, 0.05, 0.62, 0.73, 0.17, 0.82),
        "wagon": (0.015, 0.05, 0.60, 0.72, 0.17, 0.81),
    }[body]
    jitter = rng.uniform(-0.02, 0.02, size=6)
    s = np.array(stations) + jitter
    length, width, radius = u(*size[0]), u(*size[1]), u(*size[2])
    belt, roof = u(*size[4]), u(*size[5])
    hood = belt - u(0.0, 0.08)
    paint = np.clip(np.array(PAINTS[rng.integers(len(PAINTS))]) + rng.normal(0, 0.03, 3), 0, 1)
    return Design(
        body=body, length=length, width=width, wheel_radius=radius,
        clearance=radius * u(*size[3]), belt=belt, roof=roof, hood=hood,
        nose=hood - u(0.12, 0.25),
        # a trunk ends near the belt; a hatch, SUV or wagon has an upright back up to the roof
        tail=belt - u(0.0, 0.1) if body in ("sedan", "coupe") else roof - u(0.1, 0.25),
        rear_window=s[0], roof_back=s[1], roof_front=s[2], windshield=s[3],
        rear_axle=s[4], front_axle=s[5],
        squareness=u(4.0, 7.0) if body != "suv" else u(6.0, 9.0),
        plan_squareness=u(6.0, 12.0), roof_ratio=u(0.72, 0.85) if body != "suv" else u(0.85, 0.93),
        paint=tuple(float(c) for c in paint),
        rim=RIMS[rng.integers(len(RIMS))], dark_trim=bool(rng.random() < 0.4),
    )


def _smooth(values: np.ndarray, t: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing over non-uniform stations: rounds the profile's corners."""
    weights = np.exp(-0.5 * ((t[:, None] - t[None, :]) / sigma) ** 2)
    return (weights @ values) / weights.sum(axis=1)


def _profile(d: Design, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top height, bottom height and plan half-width at stations t (0 = rear, 1 = front)."""
    keys_t = [0.0, d.rear_window, d.roof_back, d.roof_front, d.windshield, 1.0]
    trunk = d.belt + 0.03 if d.rear_window > 0.08 else d.roof - 0.05
    keys_z = [d.tail, trunk, d.roof, d.roof, d.hood, d.nose]
    top = _smooth(np.interp(t, keys_t, keys_z), t, 0.025)
    x = (t - 0.5) * d.length
    bottom = d.clearance + 0.12 * np.clip(np.abs(2 * t - 1) - 0.85, 0, None) / 0.15
    for axle in (d.rear_axle, d.front_axle):
        dx = x - (axle - 0.5) * d.length
        arch = d.wheel_radius * 1.12
        inside = np.abs(dx) < arch
        bottom = np.where(inside, np.maximum(
            bottom, d.wheel_radius + np.sqrt(np.clip(arch**2 - dx**2, 0, None))), bottom)
    bottom = np.minimum(bottom, top - 0.12)
    k = d.plan_squareness
    half_width = d.width / 2 * np.clip(1 - np.abs(2 * t - 1) ** k, 0, None) ** (1 / k)
    return top, bottom, half_width


_LOWER, _SIDE, _TOP = 10, 5, 6  # ring rows per half: below the belt, side windows, roof


def _half_ring(v_belt: np.ndarray, squareness: float) -> np.ndarray:
    """(stations, rows + 1) superellipse angles from the bottom center (-pi/2) to the top center
    (pi/2), with fixed rows at the belt line and the roof edge so window edges follow grid
    lines."""
    # superellipse |u|^n + |v|^n = 1 drawn as v = sign(sin a) |sin a|^(2/n)
    belt = np.arcsin(np.sign(v_belt) * np.abs(v_belt) ** (squareness / 2))
    corner = belt + 0.6 * (np.pi / 2 - belt)
    pieces = [np.linspace(-np.pi / 2, belt, _LOWER + 1, axis=1)[:, :-1],
              np.linspace(belt, corner, _SIDE + 1, axis=1)[:, :-1],
              np.linspace(corner, np.full_like(belt, np.pi / 2), _TOP + 1, axis=1)]
    return np.concatenate(pieces, axis=1)


def _body(d: Design, stations: int = 72) -> Mesh:
    s = np.linspace(0, 1, stations)
    t = (1 - np.cos(np.pi * s)) / 2  # denser at the nose and tail, where the shape turns
    top, bottom, half_width = _profile(d, t)
    belt = np.minimum(d.belt, top - 0.05)
    half = _half_ring(2 * (belt - bottom) / (top - bottom) - 1, d.squareness)
    theta = np.concatenate([half, np.pi - half[:, 1:-1][:, ::-1]], axis=1)  # closed ring
    around = theta.shape[1]
    p = 2 / d.squareness
    u = np.sign(np.cos(theta)) * np.abs(np.cos(theta)) ** p
    v = np.sign(np.sin(theta)) * np.abs(np.sin(theta)) ** p
    z = bottom[:, None] + (v + 1) / 2 * (top - bottom)[:, None]
    rise = np.clip((z - belt[:, None]) / (top - belt)[:, None], 0, 1)
    y = u * half_width[:, None] * (1 - (1 - d.roof_ratio) * rise)
    x = np.broadcast_to(((t - 0.5) * d.length)[:, None], z.shape)
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
    # each quad's row counted from the bottom center along either half of the ring
    row = np.minimum(j, around - 1 - j).repeat(2, axis=1).reshape(-1)
    mid_t = ((t[:-1] + t[1:]) / 2)[i].repeat(2, axis=1).reshape(-1)
    face = np.cross(positions[:, 1] - positions[:, 0], positions[:, 2] - positions[:, 0])
    area = np.linalg.norm(face, axis=1)
    backward = np.abs(face[:, 0]) > 0.7 * np.maximum(area, 1e-12)  # faces the car's ends
    colors = _body_colors(d, row, mid_t, backward)
    keep = area > 1e-8
    return make_mesh(positions[keep].reshape(-1, 3), np.repeat(colors[keep], 3, axis=0),
                     normals=corner_normals[keep].reshape(-1, 3))


def _body_colors(d: Design, row: np.ndarray, t: np.ndarray, endwise: np.ndarray) -> np.ndarray:
    """Per-triangle colors from the grid: glass in the side-window rows and, over the windshield
    and rear window stations, the roof rows; on a steep back (hatch, SUV, wagon) the end-facing
    side rows; paint elsewhere (pillars and frames included)."""
    side_rows = (row >= _LOWER) & (row < _LOWER + _SIDE - 1)
    top_rows = row >= _LOWER + _SIDE + 1
    side_glass = side_rows & (t > d.rear_window + 0.03) & (t < d.windshield - 0.03)
    side_glass &= np.abs(t - (d.roof_back + d.roof_front) / 2) > 0.012  # B-pillar
    screens = ((t > d.roof_front + 0.01) & (t < d.windshield - 0.01)) | (
        (t > d.rear_window + 0.005) & (t < d.roof_back - 0.01))
    glass = side_glass | (top_rows & screens)
    if d.rear_window < 0.05:
        glass |= side_rows & endwise & (t < d.roof_back)
    colors = np.tile(np.array(d.paint), (len(row), 1))
    colors[glass] = GLASS_RGB
    if d.dark_trim:
        colors[row < 2] = (0.12, 0.12, 0.13)
    return colors


def _box(center: np.ndarray, size: np.ndarray, color: tuple[float, float, float]) -> Mesh:
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) / 2
    corners = center + corners * size
    faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    tris = [[corners[a], corners[b], corners[c]] for f in faces
            for a, b, c in ((f[0], f[1], f[2]), (f[0], f[2], f[3]))]
    return make_mesh(np.array(tris).reshape(-1, 3), color)


def _lights(d: Design) -> list[Mesh]:
    """Head and tail lights: small boxes poking out of the nose and tail at the lamp height."""
    stations = np.linspace(0, 1, 401)
    top, bottom, half_width = _profile(d, stations)
    lights = []
    for front, color, height in ((True, HEADLIGHT_RGB, 0.65), (False, TAILLIGHT_RGB, 0.75)):
        lateral = 0.68 * d.width / 2
        k = d.plan_squareness
        end = (1 + (1 - (lateral / (d.width / 2)) ** k) ** (1 / k)) / 2  # plan width = lateral
        station = end if front else 1 - end
        z = np.interp(station, stations, bottom + height * (top - bottom))
        x = (station - 0.5) * d.length - (0.02 if front else -0.02)
        size = np.array([0.08, 0.26 * d.width / 1.8, 0.09])
        lights += [_box(np.array([x, sign * lateral, z]), size, color) for sign in (-1, 1)]
    return lights


def _wheel(d: Design, segments: int = 28) -> Mesh:
    """A wheel at the origin, axis along y, the outer face at y = +width/2."""
    r, width = d.wheel_radius, d.tire_width
    angle = np.linspace(0, 2 * np.pi, segments + 1)
    ring = np.stack([np.cos(angle), np.zeros_like(angle), np.sin(angle)], axis=1)
    a, b = ring[:-1], ring[1:]
    out, inn = np.array([0.0, width / 2, 0.0]), np.array([0.0, -width / 2, 0.0])
    tread = np.stack([a * r + out, b * r + out, b * r + inn, a * r + out, b * r + inn, a * r + inn],
                     axis=1)
    radial = (a + b) / np.linalg.norm(a + b, axis=1, keepdims=True)
    parts = [make_mesh(tread.reshape(-1, 3), TIRE_RGB, normals=np.repeat(radial, 6, axis=0))]

    def annulus(r0: float, r1: float, y: float, color: tuple[float, ...]) -> Mesh:
        offset = np.array([0.0, y, 0.0])
        tris = np.stack([a * r0 + offset, a * r1 + offset, b * r1 + offset,
                         a * r0 + offset, b * r1 + offset, b * r0 + offset], axis=1)
        tris = tris.reshape(-1, 3, 3)
        area = np.linalg.norm(np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0]), axis=1)
        normal = np.tile([0.0, np.sign(y), 0.0], (int((area > 1e-12).sum()) * 3, 1))
        return make_mesh(tris[area > 1e-12].reshape(-1, 3), color, normals=normal)

    rim = 0.62 * r
    parts += [
        annulus(rim, r, width / 2, TIRE_RGB),  # sidewall
        annulus(0.22 * rim, rim, width / 2 + 0.005, d.rim),
        annulus(0.0, 0.22 * rim, width / 2 + 0.01, tuple(0.6 * c for c in d.rim)),  # hub
        annulus(0.0, r, -width / 2, TIRE_RGB),
    ]
    return concat(parts)


def procedural_car_raw(seed: int) -> Mesh:
    """The car in metres, standing on z = 0, before centering and scaling."""
    d = _design(np.random.default_rng(seed))
    wheel = _wheel(d)
    parts = [_body(d), *_lights(d)]
    for axle in (d.rear_axle, d.front_axle):
        for side in (-1.0, 1.0):
            offset = side * (d.width / 2 - d.tire_width / 2 - 0.02)
            center = [(axle - 0.5) * d.length, offset, d.wheel_radius]
            # mirrored for the right side, so the rim faces outward on both
            parts.append(transformed(wheel, np.diag([1.0, side, 1.0]), center))
    return concat(parts)


def procedural_car(seed: int) -> Mesh:
    """A procedural car centered at the origin inside the unit sphere (radius 0.95)."""
    return normalize_to_unit_sphere(procedural_car_raw(seed))


def body_type(seed: int) -> str:
    return _design(np.random.default_rng(seed)).body
