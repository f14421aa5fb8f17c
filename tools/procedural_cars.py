"""Seeded procedural cars: a side profile (nose, hood, windshield, roof, rear window, trunk)
lofted over rounded cross-sections (tools/car_body.py), wheel arches, four wheels, glass, head
and tail lights.

World axes as the product's: x forward (the car's length), y to the car's left, z up, metres
before `normalize_to_unit_sphere`. Same seed, same car, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tools.car_body import LOWER, SIDE, BodyShape, box, loft, profile, wheel, wheel_pair
from tools.mesh import Mesh, concat, make_mesh, normalize_to_unit_sphere

BODY_TYPES = ("sedan", "hatch", "coupe", "suv", "wagon")
GLASS_RGB = (0.10, 0.12, 0.15)
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
    """A car: its body's proportions and its colors."""

    body: str
    shape: BodyShape
    paint: tuple[float, float, float]
    rim: tuple[float, float, float]
    dark_trim: bool  # sills and bumpers in dark plastic


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
        body=body,
        shape=BodyShape(
            length=length, width=width, wheel_radius=radius,
            clearance=radius * u(*size[3]), belt=belt, roof=roof, hood=hood,
            nose=hood - u(0.12, 0.25),
            # a trunk ends near the belt; a hatch, SUV or wagon has an upright back up to the roof
            tail=belt - u(0.0, 0.1) if body in ("sedan", "coupe") else roof - u(0.1, 0.25),
            rear_window=s[0], roof_back=s[1], roof_front=s[2], windshield=s[3],
            rear_axle=s[4], front_axle=s[5],
            squareness=u(4.0, 7.0) if body != "suv" else u(6.0, 9.0),
            plan_squareness=u(6.0, 12.0),
            roof_ratio=u(0.72, 0.85) if body != "suv" else u(0.85, 0.93),
        ),
        paint=tuple(float(c) for c in paint),
        rim=RIMS[rng.integers(len(RIMS))], dark_trim=bool(rng.random() < 0.4),
    )


def _body(d: Design) -> Mesh:
    body = loft(d.shape)
    colors = _body_colors(d, body.row, body.t, body.endwise)
    return make_mesh(body.positions.reshape(-1, 3), np.repeat(colors, 3, axis=0),
                     normals=body.normals.reshape(-1, 3))


def _body_colors(d: Design, row: np.ndarray, t: np.ndarray, endwise: np.ndarray) -> np.ndarray:
    """Per-triangle colors from the grid: glass in the side-window rows and, over the windshield
    and rear window stations, the roof rows; on a steep back (hatch, SUV, wagon) the end-facing
    side rows; paint elsewhere (pillars and frames included)."""
    s = d.shape
    side_rows = (row >= LOWER) & (row < LOWER + SIDE - 1)
    top_rows = row >= LOWER + SIDE + 1
    side_glass = side_rows & (t > s.rear_window + 0.03) & (t < s.windshield - 0.03)
    side_glass &= np.abs(t - (s.roof_back + s.roof_front) / 2) > 0.012  # B-pillar
    screens = ((t > s.roof_front + 0.01) & (t < s.windshield - 0.01)) | (
        (t > s.rear_window + 0.005) & (t < s.roof_back - 0.01))
    glass = side_glass | (top_rows & screens)
    if s.rear_window < 0.05:
        glass |= side_rows & endwise & (t < s.roof_back)
    colors = np.tile(np.array(d.paint), (len(row), 1))
    colors[glass] = GLASS_RGB
    if d.dark_trim:
        colors[row < 2] = (0.12, 0.12, 0.13)
    return colors


def _lights(s: BodyShape) -> list[Mesh]:
    """Head and tail lights: small boxes poking out of the nose and tail at the lamp height."""
    stations = np.linspace(0, 1, 401)
    top, bottom, half_width = profile(s, stations)
    lights = []
    for front, color, height in ((True, HEADLIGHT_RGB, 0.65), (False, TAILLIGHT_RGB, 0.75)):
        lateral = 0.68 * s.width / 2
        k = s.plan_squareness
        end = (1 + (1 - (lateral / (s.width / 2)) ** k) ** (1 / k)) / 2  # plan width = lateral
        station = end if front else 1 - end
        z = np.interp(station, stations, bottom + height * (top - bottom))
        x = (station - 0.5) * s.length - (0.02 if front else -0.02)
        size = np.array([0.08, 0.26 * s.width / 1.8, 0.09])
        lights += [box(np.array([x, sign * lateral, z]), size, color) for sign in (-1, 1)]
    return lights


def procedural_car_raw(seed: int) -> Mesh:
    """The car in metres, standing on z = 0, before centering and scaling."""
    d = _design(np.random.default_rng(seed))
    s = d.shape
    tire = wheel(s.wheel_radius, s.tire_width, d.rim)
    parts = [_body(d), *_lights(s)]
    for axle in (s.rear_axle, s.front_axle):
        parts += wheel_pair(tire, s.wheel_radius, (axle - 0.5) * s.length,
                            s.width / 2 - s.tire_width / 2 - 0.02)
    return concat(parts)


def procedural_car(seed: int) -> Mesh:
    """A procedural car centered at the origin inside the unit sphere (radius 0.95)."""
    return normalize_to_unit_sphere(procedural_car_raw(seed))


def body_type(seed: int) -> str:
    return _design(np.random.default_rng(seed)).body
