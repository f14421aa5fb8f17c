"""SUMO's car models as product meshes: Eclipse SUMO ships three simple cars (a hatchback, a
minibus, a small delivery van) as OBJ with material colors (`sumo/data/3D/car-*.obj` in the
PyPI wheel `eclipse-sumo`; EPL-2.0 or GPL-2.0-or-later).

SUMO's OBJ axes: y up, z forward, x to the car's left, the tyres on y = 0 (checked by rendering);
the product world: z up, length along x, so (x, y, z)_obj -> (z, x, y)_world.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tools.mesh import Mesh, normalize_to_unit_sphere, transformed, y_up_to_world
from tools.obj import load_obj

SUMO_LICENSE = "EPL-2.0 OR GPL-2.0-or-later (Eclipse SUMO data/3D)"
_PAINT_MATERIAL = "carmaterial"  # the body paint's material name starts so ("carmaterial_citrus")


def find_sumo_models(path: str | Path) -> Path:
    """The folder holding car-*.obj: `path` itself, or sumo/data/3D below it (the root of an
    unzipped eclipse-sumo wheel)."""
    path = Path(path)
    for candidate in (path, path / "sumo/data/3D", path / "data/3D"):
        if any(candidate.glob("car-*.obj")):
            return candidate
    raise FileNotFoundError(f"{path}: no SUMO car models (car-*.obj) found there")


def sumo_names(folder: Path) -> list[str]:
    """Model names (file stems), sorted: car-microcargo-citrus, car-minibus-citrus, …"""
    return sorted(p.stem for p in folder.glob("car-*.obj"))


def load_sumo_car(folder: Path, name: str, paint: tuple[float, float, float] | None = None) -> Mesh:
    """The model in world axes, centered and scaled into the unit sphere, its body repainted
    `paint` when given."""
    mesh, materials = load_obj(folder / f"{name}.obj")
    if paint is not None:
        body = np.repeat([m.startswith(_PAINT_MATERIAL) for m in materials], 3)
        if not body.any():
            raise ValueError(f"{name}: no {_PAINT_MATERIAL}* material to repaint")
        mesh.colors = np.where(body[:, None], np.float32(paint), mesh.colors).astype(np.float32)
    return normalize_to_unit_sphere(transformed(mesh, y_up_to_world("+z")))
