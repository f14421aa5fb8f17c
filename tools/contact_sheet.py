"""A contact sheet of data-set cars (real, paint variants, procedural) from several views.

    python -m tools.contact_sheet --torcs /path/to/torcs-data --out docs/contact_sheet.png
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from engine.cli import OneLineParser, run_entry_point
from models.cameras import orbit_pose
from tools.car_set import Instance, build, procedural_instances, torcs_instances
from tools.scene_render import SceneRenderer
from tools.torcs_cars import find_torcs_root

VIEWS = ((30.0, 20.0), (120.0, 8.0), (210.0, 35.0), (300.0, 55.0))


def pick(torcs_root: Path | None, count: int) -> list[Instance]:
    """Every TORCS model's original, one skin and one hue variant of a few, procedural cars."""
    chosen = procedural_instances(count, 0, 0)
    if torcs_root is not None:
        torcs = torcs_instances(torcs_root, 8, 0)
        variants = [i for i in torcs if i.id.endswith(("-skin1", "-paint1"))][::3]
        chosen = [i for i in torcs if i.variant_of is None] + variants + chosen
    return chosen


def contact_sheet(instances: list[Instance], torcs_root: Path | None, tile: int = 128,
                  per_row: int = 2) -> Image.Image:
    renderer = SceneRenderer(tile)
    width = len(VIEWS) * tile
    rows = (len(instances) + per_row - 1) // per_row
    sheet = Image.new("RGB", (per_row * width, rows * tile), "white")
    draw = ImageDraw.Draw(sheet)
    for n, instance in enumerate(instances):
        renderer.set_mesh(*build(instance, torcs_root))
        strip = np.hstack([renderer.render(orbit_pose(a, e).numpy()).rgb for a, e in VIEWS])
        x, y = (n % per_row) * width, (n // per_row) * tile
        sheet.paste(Image.fromarray(strip), (x, y))
        draw.text((x + 4, y + 2), instance.id, fill=(90, 90, 90))
    renderer.release()
    return sheet


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(description=__doc__.split("\n")[0])
    parser.add_argument("--torcs", help="extracted torcs-data (see tools.make_dataset)")
    parser.add_argument("--procedural", type=int, default=12)
    parser.add_argument("--out", default="docs/contact_sheet.png")
    args = parser.parse_args(argv)
    return run_entry_point(lambda: write_sheet(args.torcs, args.procedural, Path(args.out)),
                           args.debug)


def write_sheet(torcs: str | None, procedural: int, out: Path) -> None:
    root = find_torcs_root(torcs) if torcs else None
    out.parent.mkdir(parents=True, exist_ok=True)
    contact_sheet(pick(root, procedural), root).save(out, optimize=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
