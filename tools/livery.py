"""Random paint jobs for procedural cars, painted on box-projected panels (tools/panel_canvas.py):
body color, two-tone roofs and lower bodies, racing stripes, race numbers on roundels, sponsor
decals, and the details every road car has (head and tail lamps, grille, bumpers, plates, door
seams), placed from the car's layout in metres.

Real TORCS liveries carry numbers, decals and stripes; single-image fits of them fail where the
prior has only seen plain paint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tools.panel_canvas import ENDS, LETTERS, SIDES, Extent, PanelCanvas

RGB = tuple[float, float, float]
PAINTS = (  # road-car colors, then the bright ones race cars wear; jittered per car
    (0.92, 0.92, 0.90), (0.08, 0.08, 0.09), (0.70, 0.71, 0.73), (0.38, 0.39, 0.41),
    (0.70, 0.06, 0.06), (0.08, 0.20, 0.55), (0.05, 0.10, 0.25), (0.10, 0.35, 0.18),
    (0.95, 0.75, 0.10), (0.90, 0.40, 0.05), (0.75, 0.68, 0.55), (0.35, 0.10, 0.35),
    (0.15, 0.50, 0.75), (0.55, 0.05, 0.10),
    (0.55, 0.80, 0.10), (0.90, 0.30, 0.60), (0.10, 0.70, 0.80), (0.45, 0.20, 0.70),
    (1.00, 0.55, 0.00), (0.50, 0.50, 0.90), (0.95, 0.90, 0.20), (0.00, 0.55, 0.45),
)
DARK_TRIM = (0.11, 0.11, 0.12)
CHROME = (0.78, 0.79, 0.80)
HEADLAMP = (0.93, 0.94, 0.88)
TAIL_LAMP = (0.78, 0.05, 0.05)
INDICATOR = (0.95, 0.55, 0.05)
INTERIOR = (0.16, 0.16, 0.17)


@dataclass(frozen=True)
class Layout:
    """Where things are on a car, for the painter: world axes, metres, the ground at z = 0."""

    extent: Extent
    axles: tuple[float, float]  # x of the rear and the front axle
    wheel_radius: float
    sill: float  # z of the body's lower edge along the sides
    belt: float  # z of the window line
    nose: tuple[float, float]  # z range of the front face
    tail: tuple[float, float]  # z range of the back face
    roof: tuple[float, float] | None  # x range of a closed roof
    roof_half_width: float
    cockpit: tuple[float, float] | None  # x range of an open cockpit
    bed: tuple[float, float] | None  # x range of a pickup's bed
    door_seams: tuple[float, ...]  # x of the door edges
    road_car: bool  # lamps, grille, plates (a formula car has none)


@dataclass(frozen=True)
class Livery:
    paint: RGB
    accent: RGB  # second color: roof, lower body, stripes, roundels
    two_tone: str  # "", "roof" or "lower"
    center_stripes: tuple[float, float] | None  # (width, gap), metres
    side_stripe: tuple[float, float] | None  # (z as a fraction sill..belt, width)
    swoosh: bool  # a diagonal band along the sides
    number: str  # race number, "" for none
    roundel: str  # "circle", "box" or "" behind the number
    decals: tuple[tuple[float, float, float, float, RGB, str], ...]  # (x, z frac, w, h, color, text)
    dark_sill: bool
    sunroof: bool
    lamp_shape: str  # "box", "round" or "slim"
    lamp_spread: float  # lamp center, fraction of the half width
    tail_bar: bool  # tail lamps joined across the back
    grille: str  # "wide", "narrow" or "split"
    bumper: RGB
    plate: RGB | None


def _jitter(rng: np.random.Generator, color: RGB, amount: float = 0.03) -> RGB:
    return tuple(float(c) for c in np.clip(np.array(color) + rng.normal(0, amount, 3), 0, 1))


def _contrast(rng: np.random.Generator, paint: RGB) -> RGB:
    """A color that reads against `paint`: white, black, or another palette color far from it."""
    options = [(0.95, 0.95, 0.95), (0.06, 0.06, 0.07), *PAINTS]
    far = [c for c in options if np.abs(np.array(c) - paint).sum() > 0.9]
    return far[rng.integers(len(far))]


def random_livery(rng: np.random.Generator, racing: bool) -> Livery:
    """A paint job; a racing one has a number, decals and more stripes."""
    paint = _jitter(rng, PAINTS[rng.integers(len(PAINTS))])
    accent = _contrast(rng, paint)
    two_tone = ("", "roof", "lower")[rng.choice(3, p=(0.6, 0.25, 0.15))]
    center = (float(rng.uniform(0.08, 0.2)), float(rng.uniform(0.04, 0.12)))
    side = (float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.04, 0.12)))
    decals = []
    for _ in range(rng.integers(2, 7) if racing else 0):
        color = _contrast(rng, paint)
        text = "".join(LETTERS[rng.integers(len(LETTERS))] for _ in range(rng.integers(3, 7)))
        decals.append((float(rng.uniform(-0.45, 0.45)), float(rng.uniform(0.15, 0.85)),
                       float(rng.uniform(0.3, 0.75)), float(rng.uniform(0.1, 0.2)), color, text))
    return Livery(
        paint=paint, accent=accent, two_tone=two_tone,
        center_stripes=center if rng.random() < (0.45 if racing else 0.12) else None,
        side_stripe=side if rng.random() < (0.35 if racing else 0.12) else None,
        swoosh=bool(racing and rng.random() < 0.4),
        number=str(rng.integers(1, 100)) if racing else "",
        roundel=("circle", "box", "")[rng.integers(3)],
        decals=tuple(decals),
        dark_sill=bool(rng.random() < 0.5),
        sunroof=bool(rng.random() < 0.15),
        lamp_shape=("box", "round", "slim")[rng.integers(3)],
        lamp_spread=float(rng.uniform(0.55, 0.75)),
        tail_bar=bool(rng.random() < 0.25),
        grille=("wide", "narrow", "split")[rng.integers(3)],
        bumper=(DARK_TRIM, CHROME, paint)[rng.choice(3, p=(0.5, 0.15, 0.35))],
        plate=((0.95, 0.95, 0.93), (0.95, 0.8, 0.1), None)[rng.choice(3, p=(0.6, 0.2, 0.2))],
    )


def paint_livery(livery: Livery, car: Layout) -> dict[str, np.ndarray]:
    """The five panel images ((H, W, 3) uint8) of the livery on a car of this layout."""
    canvas = PanelCanvas(car.extent, livery.paint)
    _paint_two_tone(canvas, livery, car)
    _paint_stripes(canvas, livery, car)
    _paint_race_dress(canvas, livery, car)
    _paint_body_details(canvas, livery, car)
    if car.road_car:
        _paint_lamps_and_grille(canvas, livery, car)
    return canvas.images()


def _lengthwise(car: Layout) -> tuple[float, float]:
    """An x range past both ends of the car (a band drawn over it runs the whole length)."""
    return -car.extent.half_length - 1.0, car.extent.half_length + 1.0


def _paint_two_tone(canvas: PanelCanvas, livery: Livery, car: Layout) -> None:
    x0, x1 = _lengthwise(car)
    if livery.two_tone == "roof" and car.roof is not None:
        w = car.roof_half_width + 0.05
        canvas.rect(("top",), (car.roof[0] - 0.05, -w), (car.roof[1] + 0.05, w), livery.accent)
    elif livery.two_tone == "lower":
        split = car.sill + 0.35 * (car.belt - car.sill)
        canvas.rect(SIDES, (x0, -1.0), (x1, split), livery.accent)
        canvas.rect(ENDS, (-5.0, -1.0), (5.0, split), livery.accent)


def _paint_stripes(canvas: PanelCanvas, livery: Livery, car: Layout) -> None:
    x0, x1 = _lengthwise(car)
    if livery.center_stripes is not None:
        width, gap = livery.center_stripes
        for sign in (-1, 1):
            y0, y1 = sign * gap / 2, sign * (gap / 2 + width)
            canvas.rect(("top",), (x0, y0), (x1, y1), livery.accent)
            canvas.rect(ENDS, (y0, -1.0), (y1, 5.0), livery.accent)
    if livery.side_stripe is not None:
        at, width = livery.side_stripe
        z = car.sill + at * (car.belt - car.sill)
        canvas.rect(SIDES, (x0, z - width / 2), (x1, z + width / 2), livery.accent)
    if livery.swoosh:
        (rear, front), h = car.axles, car.belt - car.sill
        canvas.polygon(SIDES, [(rear - 0.8, car.sill + 0.1 * h), (front + 0.6, car.sill + 0.8 * h),
                               (front + 0.6, car.sill + 0.98 * h), (rear - 0.8, car.sill + 0.4 * h)],
                       livery.accent)


def _paint_race_dress(canvas: PanelCanvas, livery: Livery, car: Layout) -> None:
    """Numbers on the doors and the roof (or hood), sponsor decals on the sides."""
    rear, front = car.axles
    h = car.belt - car.sill
    for x, z_frac, w, dh, color, text in livery.decals:
        x = (rear + front) / 2 + x * (front - rear + 2 * car.wheel_radius)
        z = car.sill + z_frac * h
        canvas.rect(SIDES, (x - w / 2, z - dh / 2), (x + w / 2, z + dh / 2), color)
        canvas.text(SIDES, (x, z), 0.7 * dh, text, _contrast_of(color))
    if not livery.number:
        return
    size = min(0.5, 0.7 * h)
    spots = [(SIDES, ((rear + front) / 2, car.sill + 0.5 * h))]
    top_x = (sum(car.roof) / 2 if car.roof is not None
             else (front + car.extent.half_length) / 2)
    spots.append((("top",), (top_x, 0.0)))
    # on a roundel the number contrasts with it; without one it is in the accent color
    ink = _contrast_of(livery.accent) if livery.roundel else livery.accent
    for panels, center in spots:
        if livery.roundel == "circle":
            canvas.ellipse(panels, center, (0.62 * size, 0.62 * size), livery.accent)
        elif livery.roundel == "box":
            width = 0.45 * size * len(livery.number) + 0.3 * size
            canvas.rect(panels, (center[0] - width / 2, center[1] - 0.6 * size),
                        (center[0] + width / 2, center[1] + 0.6 * size), livery.accent)
        canvas.text(panels, center, 0.8 * size, livery.number, ink)


def _contrast_of(color: RGB) -> RGB:
    return (0.05, 0.05, 0.05) if sum(color) > 1.5 else (0.97, 0.97, 0.97)


def _paint_body_details(canvas: PanelCanvas, livery: Livery, car: Layout) -> None:
    """Door seams and handles, a dark sill, a sunroof, an open cockpit, a pickup's bed."""
    x0, x1 = _lengthwise(car)
    if livery.dark_sill:
        canvas.rect(SIDES, (x0, -1.0), (x1, car.sill + 0.09), DARK_TRIM)
    for seam in car.door_seams:
        canvas.rect(SIDES, (seam - 0.012, car.sill + 0.1), (seam + 0.012, car.belt), DARK_TRIM)
        canvas.rect(SIDES, (seam - 0.2, car.belt - 0.1), (seam - 0.08, car.belt - 0.07), DARK_TRIM)
    w = car.extent.half_width
    if livery.sunroof and car.roof is not None:
        mid = sum(car.roof) / 2
        canvas.rect(("top",), (mid - 0.25, -0.4 * w), (mid + 0.3, 0.4 * w), INTERIOR)
    if car.cockpit is not None:
        canvas.rect(("top",), (car.cockpit[0], -0.62 * w), (car.cockpit[1], 0.62 * w), INTERIOR)
    if car.bed is not None:
        canvas.rect(("top",), (car.bed[0] - 0.5, -w + 0.08), (car.bed[1], w - 0.08), INTERIOR)
        for k in np.linspace(-0.6, 0.6, 5):
            canvas.rect(("top",), (car.bed[0] - 0.5, k * w - 0.015), (car.bed[1], k * w + 0.015),
                        DARK_TRIM)


def _paint_lamps_and_grille(canvas: PanelCanvas, livery: Livery, car: Layout) -> None:
    """Head lamps, grille, bumper and plate on the front; tail lamps, bumper and plate on the
    back; the lamps wrap a little onto the sides."""
    w = car.extent.half_width
    for face, (z_lo, z_hi), front in (("front", car.nose, True), ("back", car.tail, False)):
        height = z_hi - z_lo
        bumper_top = z_lo + 0.3 * height
        canvas.rect((face,), (-5.0, -1.0), (5.0, bumper_top), livery.bumper)
        lamp_z = z_lo + (0.62 if front else 0.72) * height
        lamp_h = {"box": 0.12, "round": 0.16, "slim": 0.06}[livery.lamp_shape]
        lamp_w = {"box": 0.3, "round": 0.16, "slim": 0.42}[livery.lamp_shape] * w
        color = HEADLAMP if front else TAIL_LAMP
        centers = [sign * livery.lamp_spread * w for sign in (-1, 1)]
        for y in centers:
            if livery.lamp_shape == "round" and front:
                for dy in (-0.09, 0.09):
                    canvas.ellipse((face,), (y + dy, lamp_z), (0.08, 0.08), color)
            else:
                canvas.rect((face,), (y - lamp_w / 2, lamp_z - lamp_h / 2),
                            (y + lamp_w / 2, lamp_z + lamp_h / 2), color)
        if not front and livery.tail_bar:
            canvas.rect((face,), (centers[0], lamp_z - 0.025), (centers[1], lamp_z + 0.025), color)
        end = car.extent.half_length * (1 if front else -1)
        wrap = (end - 0.22 * np.sign(end), end + 0.5 * np.sign(end))
        canvas.rect(SIDES, (min(wrap), lamp_z - lamp_h / 2), (max(wrap), lamp_z + lamp_h / 2),
                    INDICATOR if front else color)
        if front:
            grille_w = {"wide": 0.42, "narrow": 0.22, "split": 0.1}[livery.grille] * w
            mid_z = (bumper_top + lamp_z) / 2
            for y in ((-0.13, 0.13) if livery.grille == "split" else (0.0,)):
                canvas.rect((face,), (y - grille_w, mid_z - 0.07), (y + grille_w, lamp_z + 0.03),
                            DARK_TRIM)
        if livery.plate is not None:
            plate_z = bumper_top - 0.02
            canvas.rect((face,), (-0.26, plate_z - 0.06), (0.26, plate_z + 0.06), livery.plate)
            canvas.text((face,), (0.0, plate_z), 0.07, "PL8", (0.1, 0.1, 0.1))
