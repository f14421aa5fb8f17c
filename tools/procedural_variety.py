"""Procedural cars, second style (`make_dataset --procedural-style v2`): more of what real cars
have and the first style (tools/procedural_cars.py) lacks.

Body types: the first style's five with wider proportions, plus pickup (cab and bed), van,
supercar (low, cab forward), microcar, roadster (open top, windshield frame, headrests), and two
with wheels outside the body: a formula car (narrow nose, sidepods, front and rear wings) and a
buggy (roll cage). Glass is dark with a sky reflection rising up each window; pillars, door
seams, mirrors, spoilers and chunky bumpers vary; wheels vary in size, rim size and spokes; the
paint is a livery (tools/livery.py): two-tone, stripes, race numbers and decals, lamps, grille,
bumpers and plates, box-projected onto the body.

Same axes as the first style; same seed, same car and textures, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tools.car_body import LOWER, SIDE, BodyShape, Loft, box, loft, profile, wheel, wheel_pair
from tools.livery import DARK_TRIM, INTERIOR, Layout, Livery, paint_livery, random_livery
from tools.mesh import Mesh, concat, face_normals, make_mesh, normalize_to_unit_sphere, transformed
from tools.panel_canvas import PANELS, Extent, panel_of, panel_uvs

Range = tuple[float, float]
RGB = tuple[float, float, float]
UNDERSIDE_RGB = (0.09, 0.09, 0.1)
SKY_RGB = np.array([0.72, 0.78, 0.86])  # what the glass reflects toward its top edge
GLASSES = ((0.08, 0.09, 0.11), (0.10, 0.13, 0.16), (0.07, 0.10, 0.09), (0.14, 0.16, 0.20),
           (0.04, 0.04, 0.05))
RIMS = ((0.80, 0.80, 0.82), (0.55, 0.56, 0.58), (0.22, 0.22, 0.24), (0.72, 0.62, 0.40),
        (0.92, 0.92, 0.92), (0.08, 0.08, 0.09))
SPOKES = (0, 0, 5, 5, 6, 7, 10, 12)
TEXTURES = [f"livery/{p}" for p in PANELS]


@dataclass(frozen=True)
class ClosedType:
    """A body type lofted from the first style's profile: ranges drawn per car."""

    weight: float
    length: Range
    width: Range
    wheel_radius: Range
    clearance: Range  # fraction of the wheel radius
    belt: Range
    roof: Range
    stations: tuple[float, ...]  # rear window, roof back, roof front, windshield, axles
    hood_drop: Range
    nose_drop: Range
    tail: str  # "trunk" (near the belt), "upright" (near the roof) or "bed" (a pickup's)
    race: float  # chance of a race livery
    doors: int


CLOSED = {
    "sedan": ClosedType(0.13, (4.2, 5.1), (1.70, 1.90), (0.29, 0.35), (0.5, 0.7), (0.88, 1.02),
                        (1.36, 1.50), (0.20, 0.33, 0.60, 0.71, 0.18, 0.80), (0.0, 0.08),
                        (0.12, 0.25), "trunk", 0.3, 4),
    "hatch": ClosedType(0.12, (3.6, 4.4), (1.62, 1.82), (0.27, 0.33), (0.5, 0.7), (0.90, 1.02),
                        (1.40, 1.58), (0.02, 0.10, 0.56, 0.70, 0.15, 0.84), (0.0, 0.08),
                        (0.12, 0.25), "upright", 0.25, 4),
    "coupe": ClosedType(0.09, (4.1, 4.8), (1.74, 1.92), (0.31, 0.36), (0.42, 0.55), (0.80, 0.90),
                        (1.20, 1.34), (0.12, 0.36, 0.55, 0.68, 0.17, 0.80), (0.0, 0.08),
                        (0.12, 0.25), "trunk", 0.45, 2),
    "suv": ClosedType(0.10, (4.2, 5.0), (1.80, 2.00), (0.36, 0.42), (0.75, 0.95), (1.05, 1.22),
                      (1.62, 1.88), (0.015, 0.05, 0.62, 0.73, 0.17, 0.82), (0.0, 0.08),
                      (0.12, 0.25), "upright", 0.1, 4),
    "wagon": ClosedType(0.06, (4.5, 5.0), (1.74, 1.88), (0.30, 0.34), (0.55, 0.65), (0.90, 1.00),
                        (1.42, 1.52), (0.015, 0.05, 0.60, 0.72, 0.17, 0.81), (0.0, 0.08),
                        (0.12, 0.25), "upright", 0.1, 4),
    "van": ClosedType(0.08, (4.4, 5.4), (1.80, 2.00), (0.32, 0.38), (0.6, 0.8), (1.00, 1.15),
                      (1.80, 2.15), (0.01, 0.03, 0.76, 0.88, 0.16, 0.86), (0.0, 0.1),
                      (0.15, 0.3), "upright", 0.1, 4),
    "pickup": ClosedType(0.08, (4.9, 5.6), (1.82, 2.00), (0.36, 0.42), (0.8, 0.95), (1.10, 1.28),
                         (1.75, 1.95), (0.40, 0.44, 0.62, 0.72, 0.16, 0.83), (0.0, 0.08),
                         (0.12, 0.25), "bed", 0.15, 2),
    "supercar": ClosedType(0.10, (4.2, 4.7), (1.85, 2.00), (0.32, 0.36), (0.35, 0.5),
                           (0.78, 0.88), (1.08, 1.20), (0.14, 0.34, 0.54, 0.72, 0.18, 0.82),
                           (0.02, 0.1), (0.2, 0.32), "trunk", 0.55, 2),
    "microcar": ClosedType(0.05, (2.6, 3.4), (1.45, 1.62), (0.25, 0.29), (0.55, 0.7), (0.90, 1.00),
                           (1.50, 1.68), (0.03, 0.10, 0.62, 0.78, 0.16, 0.86), (0.0, 0.06),
                           (0.08, 0.2), "upright", 0.1, 2),
    "roadster": ClosedType(0.07, (3.8, 4.5), (1.68, 1.85), (0.29, 0.33), (0.45, 0.6), (0.80, 0.90),
                           (0.80, 0.90), (0.22, 0.30, 0.50, 0.60, 0.17, 0.82), (0.0, 0.06),
                           (0.12, 0.25), "trunk", 0.25, 2),
}
OPEN_WHEEL_WEIGHTS = {"formula": 0.05, "buggy": 0.07}
BODY_TYPES = (*CLOSED, *OPEN_WHEEL_WEIGHTS)
_WEIGHTS = np.array([c.weight for c in CLOSED.values()] + list(OPEN_WHEEL_WEIGHTS.values()))


@dataclass(frozen=True)
class Axle:
    radius: float
    tire_width: float
    lateral: float  # wheel center from the middle


@dataclass(frozen=True)
class Design:
    body: str
    shape: BodyShape
    axles: tuple[Axle, Axle]  # rear, front
    rim: RGB
    rim_ratio: float  # rim radius over wheel radius
    spokes: int
    glass: RGB
    reflection: float  # how much sky the glass shows at its top
    pillars: tuple[float, ...]  # stations of the side windows' pillars
    pillar_width: float  # stations
    side_glass_from: float  # station where the side windows start
    doors: int
    mirrors: bool
    wing: float | None  # a rear wing this high above the deck
    bumpers: RGB | None  # chunky bumpers in this color
    livery: Livery

    @property
    def open_top(self) -> bool:
        return self.body in ("roadster", "formula", "buggy")


def _closed_design(body: str, rng: np.random.Generator) -> tuple[BodyShape, tuple[Axle, Axle]]:
    c, u = CLOSED[body], rng.uniform
    s = np.array(c.stations) + rng.uniform(-0.025, 0.025, size=6)
    length, width, radius = u(*c.length), u(*c.width), u(*c.wheel_radius)
    belt, roof = u(*c.belt), u(*c.roof)
    hood = belt - u(*c.hood_drop)
    nose = hood - u(*c.nose_drop)
    tail = {"trunk": belt - u(0.0, 0.1), "upright": roof - u(0.06, 0.25),
            "bed": belt + u(0.0, 0.05)}[c.tail]
    top_keys = None
    if body == "roadster":  # no roof: a deck, a cockpit sunk to the belt, the cowl
        top_keys = ((0.0, s[0], s[1], s[2], s[3], 1.0),
                    (tail, belt + 0.03, belt - u(0.0, 0.05), belt - 0.03, hood, nose))
    shape = BodyShape(
        length=length, width=width, wheel_radius=radius, clearance=radius * u(*c.clearance),
        belt=belt, roof=roof, hood=hood, nose=nose, tail=tail,
        rear_window=s[0], roof_back=s[1], roof_front=s[2], windshield=s[3],
        rear_axle=s[4], front_axle=s[5],
        squareness=u(3.5, 7.0) if body not in ("suv", "van") else u(6.0, 10.0),
        plan_squareness=u(4.0, 14.0),
        roof_ratio=u(0.68, 0.86) if body not in ("suv", "van") else u(0.84, 0.95),
        top_keys=top_keys,
    )
    tire = 0.2 + 0.12 * (radius - 0.26) + u(0.0, 0.06)
    axle = Axle(radius, tire, width / 2 - tire / 2 - 0.02)
    return shape, (axle, axle)


def _formula_design(rng: np.random.Generator) -> tuple[BodyShape, tuple[Axle, Axle]]:
    """Narrow nose, sidepods, a cockpit behind an airbox; wheels well outside the body."""
    u = rng.uniform
    length, width, track = u(4.3, 5.0), u(1.25, 1.45), u(1.75, 1.95)
    rear_radius, rear_tire = u(0.33, 0.36), u(0.36, 0.42)
    front_radius, front_tire = u(0.30, 0.33), u(0.28, 0.32)
    rear = Axle(rear_radius, rear_tire, track / 2 - rear_tire / 2)
    front = Axle(front_radius, front_tire, track / 2 - 0.03 - front_tire / 2)
    airbox, cockpit = u(0.88, 1.0), u(0.58, 0.66)
    top = ((0.0, 0.06, 0.18, 0.32, 0.40, 0.46, 0.56, 0.66, 0.82, 1.0),
           (0.5, 0.6, 0.78, airbox, airbox - 0.04, 0.7, cockpit, cockpit + 0.05, 0.48,
            u(0.24, 0.32)))
    plan = ((0.0, 0.08, 0.16, 0.24, 0.46, 0.56, 0.66, 0.82, 1.0),
            tuple(f * width / 2 for f in (0.22, 0.3, 0.5, 1.0, 1.0, 0.45, 0.28, 0.2, 0.1)))
    shape = BodyShape(
        length=length, width=width, wheel_radius=rear.radius, clearance=u(0.06, 0.1),
        belt=0.5, roof=airbox, hood=cockpit, nose=top[1][-1], tail=0.5,
        rear_window=0.3, roof_back=0.46, roof_front=0.56, windshield=0.62,
        rear_axle=u(0.10, 0.13), front_axle=u(0.76, 0.80), squareness=u(3.0, 4.5),
        plan_squareness=8.0, roof_ratio=u(0.45, 0.55), top_keys=top, plan_keys=plan,
        arches=False)
    return shape, (rear, front)


def _buggy_design(rng: np.random.Generator) -> tuple[BodyShape, tuple[Axle, Axle]]:
    """A short, rounded tub high above big wheels that stand out past its sides."""
    u = rng.uniform
    length, width, track = u(3.3, 4.0), u(1.35, 1.55), u(1.65, 1.85)
    radius, tire = u(0.33, 0.40), u(0.28, 0.34)
    clearance = u(0.38, 0.5)
    deck = clearance + u(0.45, 0.6)
    top = ((0.0, 0.1, 0.28, 0.34, 0.62, 0.70, 1.0),
           (deck - 0.1, deck, deck, deck - 0.15, deck - 0.15, deck, deck - u(0.15, 0.3)))
    shape = BodyShape(
        length=length, width=width, wheel_radius=radius, clearance=clearance,
        belt=deck - 0.1, roof=deck, hood=deck, nose=top[1][-1], tail=deck - 0.1,
        rear_window=0.28, roof_back=0.34, roof_front=0.62, windshield=0.7,
        rear_axle=u(0.15, 0.2), front_axle=u(0.8, 0.85), squareness=u(3.0, 5.0),
        plan_squareness=u(3.0, 5.0), roof_ratio=u(0.8, 0.9), top_keys=top)
    axle = Axle(radius, tire, track / 2 - tire / 2)
    return shape, (axle, axle)


def _design(rng: np.random.Generator) -> Design:
    body = BODY_TYPES[rng.choice(len(BODY_TYPES), p=_WEIGHTS / _WEIGHTS.sum())]
    if body == "formula":
        shape, axles = _formula_design(rng)
    elif body == "buggy":
        shape, axles = _buggy_design(rng)
    else:
        shape, axles = _closed_design(body, rng)
    race = CLOSED[body].race if body in CLOSED else {"formula": 1.0, "buggy": 0.5}[body]
    racing = bool(rng.random() < race)
    pillar = (shape.roof_back + shape.roof_front) / 2 + rng.uniform(-0.03, 0.03)
    pillars = (pillar,)
    if body in ("sedan", "suv", "wagon", "van") and rng.random() < 0.5:  # a rear quarter window
        pillars += (shape.roof_back + rng.uniform(0.25, 0.4) * (pillar - shape.roof_back),)
    side_glass_from = shape.rear_window + 0.03
    if body == "van" and rng.random() < 0.5:  # a panel van: windows in the cab only
        side_glass_from, pillars = shape.roof_front - 0.1, ()
    if body == "pickup":
        side_glass_from = shape.roof_back + 0.015
    trunk = body in ("sedan", "coupe", "supercar", "roadster")
    return Design(
        body=body, shape=shape, axles=axles,
        rim=RIMS[rng.integers(len(RIMS))], rim_ratio=float(rng.uniform(0.5, 0.78)),
        spokes=int(SPOKES[rng.integers(len(SPOKES))]),
        glass=GLASSES[rng.integers(len(GLASSES))], reflection=float(rng.uniform(0.15, 0.5)),
        pillars=pillars, pillar_width=float(rng.uniform(0.008, 0.02)),
        side_glass_from=side_glass_from,
        doors=0 if body in ("formula", "buggy") else CLOSED[body].doors,
        mirrors=body not in ("formula", "buggy"),
        wing=float(rng.uniform(0.12, 0.3)) if body == "formula" or (
            trunk and rng.random() < (0.5 if racing else 0.08)) else None,
        bumpers=(DARK_TRIM, (0.6, 0.61, 0.62))[rng.integers(2)] if body in (
            "suv", "pickup", "van", "buggy") and rng.random() < 0.6 else None,
        livery=random_livery(rng, racing),
    )


def _glass_mask(d: Design, body: Loft) -> np.ndarray:
    """(T,) glass triangles: side windows between pillars, windshield and rear window, and a
    steep back's window; none on an open car."""
    if d.open_top:
        return np.zeros(len(body.t), bool)
    s, row, t = d.shape, body.row, body.t
    side_rows = (row >= LOWER) & (row < LOWER + SIDE - 1)
    top_rows = row >= LOWER + SIDE + 1
    side = side_rows & (t > d.side_glass_from) & (t < s.windshield - 0.03)
    for pillar in d.pillars:
        side &= np.abs(t - pillar) > d.pillar_width
    screens = ((t > s.roof_front + 0.01) & (t < s.windshield - 0.01)) | (
        (t > s.rear_window + 0.005) & (t < s.roof_back - 0.01))
    glass = side | (top_rows & screens)
    if s.rear_window < 0.05:
        glass |= side_rows & body.endwise & (t < s.roof_back)
    return glass


def _layout(d: Design) -> Layout:
    s = d.shape
    ends = np.array([0.02, 0.98])
    top = profile(s, np.linspace(0, 1, 201))[0]
    end_top, end_bottom, _ = profile(s, ends)
    rear_x, front_x = _x(s, s.rear_axle), _x(s, s.front_axle)
    radius = max(a.radius for a in d.axles)
    seams: tuple[float, ...] = ()
    if d.doors:
        front_edge = front_x - 1.25 * radius
        b_pillar = _x(s, d.pillars[0]) if d.pillars else front_edge - 1.1  # a panel van's cab
        seams = (front_edge, b_pillar, rear_x + 1.25 * radius) if d.doors == 4 else (
            front_edge, b_pillar + 0.1)
    cockpit = {"roadster": (s.roof_back, s.windshield), "formula": (0.47, 0.6),
               "buggy": (0.3, 0.64)}.get(d.body)
    return Layout(
        extent=Extent(s.length / 2, max(s.width, 2 * max(a.lateral for a in d.axles)) / 2,
                      float(top.max())),
        axles=(rear_x, front_x), wheel_radius=radius,
        sill=float(s.clearance), belt=float(min(s.belt, top.max() - 0.05)),
        nose=(float(end_bottom[1]), float(end_top[1])),
        tail=(float(end_bottom[0]), float(end_top[0])),
        roof=None if d.open_top else (_x(s, s.roof_back), _x(s, s.roof_front)),
        roof_half_width=s.roof_ratio * s.width / 2,
        cockpit=None if cockpit is None else (_x(s, cockpit[0]), _x(s, cockpit[1])),
        bed=(_x(s, 0.0), _x(s, s.rear_window)) if d.body == "pickup" else None,
        door_seams=seams, road_car=d.body != "formula",
    )


def _body(d: Design, extent: Extent) -> Mesh:
    """The lofted body: glass colored per corner (darker low, sky toward the top), the rest
    textured by the panel it faces, the underside dark."""
    body = loft(d.shape)
    corners = body.positions.reshape(-1, 3)
    glass = _glass_mask(d, body)
    panel = panel_of(-face_normals(corners))  # the loft's faces are wound inward
    panel[glass] = -1
    uvs = np.zeros((len(corners), 2))
    colors = np.ones((len(corners), 3))
    corner_panel = np.repeat(panel, 3)
    for index, name in enumerate(PANELS):
        chosen = corner_panel == index
        uvs[chosen] = panel_uvs(extent, name, corners[chosen])
    colors[np.repeat((panel == -1) & ~glass, 3)] = UNDERSIDE_RGB
    s = d.shape
    rise = np.clip((corners[:, 2] - s.belt) / max(s.roof - s.belt, 1e-6), 0, 1)
    sheen = np.array(d.glass) + d.reflection * rise[:, None] ** 2 * (SKY_RGB - d.glass)
    colors[np.repeat(glass, 3)] = sheen[np.repeat(glass, 3)]
    return make_mesh(corners, colors, normals=body.normals.reshape(-1, 3), uvs=uvs,
                     tri_texture=panel, textures=TEXTURES)


def _x(s: BodyShape, station: float) -> float:
    """The x of a profile station."""
    return (station - 0.5) * s.length


def _deck_height(s: BodyShape, station: float) -> float:
    top, _, _ = profile(s, np.array([station]))
    return float(top[0])


def _parts(d: Design) -> list[Mesh]:
    """Everything but the body and wheels: mirrors, wings, bumpers, windshield frame, cage."""
    s, paint = d.shape, d.livery.paint
    parts = []
    if d.mirrors:
        t = s.windshield - 0.02
        _, _, half = profile(s, np.array([t]))
        for side in (-1, 1):
            parts.append(box(np.array([_x(s, t), side * (0.95 * half[0] + 0.06), s.belt + 0.08]),
                             np.array([0.1, 0.18, 0.1]), paint))
    if d.wing is not None:
        t = 0.035 if d.body == "formula" else 0.06
        deck = _deck_height(s, t)
        span = 0.9 * (s.width if d.body != "formula" else 0.75 * 2 * d.axles[0].lateral)
        z = deck + d.wing + (0.2 if d.body == "formula" else 0.0)
        color = DARK_TRIM if d.livery.two_tone == "roof" else paint
        parts.append(box(np.array([_x(s, t), 0.0, z]), np.array([0.32, span, 0.04]), color))
        for y in ((0.0,) if d.body == "formula" else (-0.3 * s.width, 0.3 * s.width)):
            parts.append(box(np.array([_x(s, t) + 0.04, y, (deck - 0.05 + z) / 2]),
                             np.array([0.08, 0.04, z - deck + 0.05]), DARK_TRIM))
        for y in (-span / 2, span / 2):  # end plates
            parts.append(box(np.array([_x(s, t), y, z - 0.05]), np.array([0.36, 0.02, 0.16]), color))
    if d.body == "formula":  # front wing under the nose, spanning the front track
        t = 0.975
        _, bottom, _ = profile(s, np.array([t]))
        z = float(bottom[0]) - 0.015
        span = 2 * d.axles[1].lateral + 0.1
        parts.append(box(np.array([_x(s, t) - 0.05, 0.0, z]), np.array([0.38, span, 0.05]),
                         d.livery.accent))
        for y in (-span / 2, span / 2):
            parts.append(box(np.array([_x(s, t) - 0.05, y, z + 0.05]), np.array([0.4, 0.02, 0.16]),
                             d.livery.accent))
    if d.bumpers is not None:
        for front in (True, False):
            end = _x(s, 1.0) if front else _x(s, 0.0)
            z = s.clearance + 0.18
            parts.append(box(np.array([end - np.sign(end) * 0.1, 0.0, z]),
                             np.array([0.34, 0.92 * s.width, 0.22]), d.bumpers))
    if d.body == "roadster":
        parts += _windshield_frame(d) + [
            box(np.array([_x(s, s.roof_back) + 0.15, side * 0.24 * s.width, s.belt + 0.12]),
                np.array([0.1, 0.24, 0.34]), INTERIOR) for side in (-1, 1)]
    if d.body == "buggy":
        parts += _roll_cage(d)
    return parts


def _windshield_frame(d: Design) -> list[Mesh]:
    """A raked glass pane standing on the cowl, as wide as the cockpit."""
    s = d.shape
    base_x = (s.windshield - 0.5) * s.length
    base_z = _deck_height(s, s.windshield) - 0.02
    rake = np.radians(58.0)
    height, width = 0.42, 2 * s.roof_ratio * s.width / 2 * 0.95
    turn = np.array([[np.cos(rake), 0, -np.sin(rake)], [0, 1, 0], [np.sin(rake), 0, np.cos(rake)]])
    center = np.array([base_x, 0.0, base_z]) + turn @ np.array([0.0, 0.0, height / 2])
    pane = box(np.zeros(3), np.array([0.025, width, height]), d.glass)
    return [transformed(pane, turn, center)]


def _roll_cage(d: Design) -> list[Mesh]:
    """Two hoops over the cockpit joined along the top, standing on the tub."""
    s = d.shape
    rear_t, front_t = 0.3, 0.64
    height = s.roof + 0.55
    y = 0.34 * s.width
    beam = 0.05
    parts = []
    for t in (rear_t, front_t):
        foot = _deck_height(s, t) - 0.05
        for side in (-1, 1):
            parts.append(box(np.array([_x(s, t), side * y, (foot + height) / 2]),
                             np.array([beam, beam, height - foot]), DARK_TRIM))
        parts.append(box(np.array([_x(s, t), 0.0, height]), np.array([beam, 2 * y + beam, beam]),
                         DARK_TRIM))
    for side in (-1, 1):
        parts.append(box(np.array([(_x(s, rear_t) + _x(s, front_t)) / 2, side * y, height]),
                         np.array([_x(s, front_t) - _x(s, rear_t), beam, beam]), DARK_TRIM))
    return parts


def variety_car_raw(seed: int) -> tuple[Mesh, dict[str, np.ndarray]]:
    """The car in metres, standing on z = 0, and its livery textures."""
    d = _design(np.random.default_rng(seed))
    layout = _layout(d)
    parts = [_body(d, layout.extent), *_parts(d)]
    for axle, station in zip(d.axles, (d.shape.rear_axle, d.shape.front_axle), strict=True):
        tire = wheel(axle.radius, axle.tire_width, d.rim, d.rim_ratio, d.spokes, segments=36)
        parts += wheel_pair(tire, axle.radius, (station - 0.5) * d.shape.length, axle.lateral)
    images = paint_livery(d.livery, layout)
    return concat(parts), {f"livery/{p}": image for p, image in images.items()}


def variety_car(seed: int) -> tuple[Mesh, dict[str, np.ndarray]]:
    """A second-style car centered at the origin inside the unit sphere (radius 0.95), and its
    textures keyed by the mesh's texture names."""
    mesh, images = variety_car_raw(seed)
    return normalize_to_unit_sphere(mesh), images


def body_type(seed: int) -> str:
    return _design(np.random.default_rng(seed)).body
