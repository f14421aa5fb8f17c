"""A contact sheet of data-set cars (real, paint variants, procedural) from several views.

    python -m tools.contact_sheet --torcs /path/to/torcs-data --out docs/contact_sheet.png
    python -m tools.contact_sheet --procedural-style v2 --procedural 48 --sumo DIR \
        --flightgear DIR --tile 96 --per-row 3 --palette --out docs/cars_variety.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from engine.cli import OneLineParser, run_entry_point
from models.cameras import orbit_pose
from tools.car_set import (
    PROCEDURAL_STYLES,
    CarRoots,
    Instance,
    build,
    car_roots,
    flightgear_instances,
    procedural_instances,
    sumo_instances,
    torcs_instances,
)
from tools.scene_render import SceneRenderer

VIEWS = ((30.0, 20.0), (120.0, 8.0), (210.0, 35.0), (300.0, 55.0))


def pick(roots: CarRoots, count: int, style: str = "v1") -> list[Instance]:
    """Every TORCS model's original, one skin and one hue variant of a few; every SUMO and
    FlightGear model, and one repaint of each SUMO model; procedural cars."""
    chosen = procedural_instances(count, 0, 0, style)
    if roots.flightgear is not None:
        models = flightgear_instances(roots.flightgear, 1, 0)
        chosen = [i for i in models if i.variant_of is None] + chosen
    if roots.sumo is not None:
        chosen = sumo_instances(roots.sumo, 2, 0) + chosen
    if roots.torcs is not None:
        torcs = torcs_instances(roots.torcs, 8, 0)
        variants = [i for i in torcs if i.id.endswith(("-skin1", "-paint1"))][::3]
        chosen = [i for i in torcs if i.variant_of is None] + variants + chosen
    return chosen


def contact_sheet(instances: list[Instance], roots: CarRoots, tile: int = 128,
                  per_row: int = 2) -> Image.Image:
    renderer = SceneRenderer(tile)
    width = len(VIEWS) * tile
    rows = (len(instances) + per_row - 1) // per_row
    sheet = Image.new("RGB", (per_row * width, rows * tile), "white")
    draw = ImageDraw.Draw(sheet)
    for n, instance in enumerate(instances):
        renderer.set_mesh(*build(instance, roots))
        strip = np.hstack([renderer.render(orbit_pose(a, e).numpy()).rgb for a, e in VIEWS])
        x, y = (n % per_row) * width, (n // per_row) * tile
        sheet.paste(Image.fromarray(strip), (x, y))
        draw.text((x + 4, y + 2), instance.id, fill=(90, 90, 90))
    renderer.release()
    return sheet


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(description=__doc__.split("\n")[0])
    parser.add_argument("--torcs", help="extracted torcs-data (see tools.make_dataset)")
    parser.add_argument("--sumo", help="SUMO's car models (see tools.make_dataset)")
    parser.add_argument("--flightgear", help="FlightGear's road vehicles (see tools.make_dataset)")
    parser.add_argument("--procedural", type=int, default=12, help="procedural cars shown (default 12)")
    parser.add_argument("--procedural-style", choices=PROCEDURAL_STYLES, default="v1",
                        help="v1: the shipped prior's cars; v2: more body types, liveries, glass, "
                             "wheels (tools/procedural_variety.py)")
    parser.add_argument("--tile", type=int, default=128, help="pixels per view")
    parser.add_argument("--per-row", type=int, default=2, help="cars per row")
    parser.add_argument("--palette", action="store_true",
                        help="save with 256 colors (about a third of the bytes)")
    parser.add_argument("--out", default="docs/contact_sheet.png",
                        help="the PNG to write (default docs/contact_sheet.png)")
    args = parser.parse_args(argv)
    return run_entry_point(lambda: write_sheet(args), args.debug)


def write_sheet(args: argparse.Namespace) -> None:
    roots = car_roots(args.torcs, args.sumo, args.flightgear)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    instances = pick(roots, args.procedural, args.procedural_style)
    sheet = contact_sheet(instances, roots, args.tile, args.per_row)
    if args.palette:
        sheet = sheet.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    sheet.save(out, optimize=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
