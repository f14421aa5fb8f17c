"""FlightGear's road vehicles as product meshes: the cars, pickups and vans among the scenery
models of Debian `flightgear-data-base` (GPL-2+, `usr/share/games/flightgear/Scenery/Models/
Transport/*.ac`): AC3D with one texture each, read by tools/ac3d.py.

The models are y up like TORCS's, but their length runs along z or x and their front faces either
way: MODELS records each one's forward axis, checked by rendering. Several files are one shape in
several paints: the first file is the model, the others its paint variants. Many files are X-Plane
conversions holding two levels of detail ("LOD near/far" groups): only the nearest is read. Flat
faces on the ground (painted shadows) are dropped.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np

from tools.ac3d import is_shadow, load_ac3d
from tools.mesh import (
    Mesh,
    face_normals,
    normalize_to_unit_sphere,
    select_triangles,
    transformed,
    y_up_to_world,
)
from tools.textures import read_rgba, resolve_texture

FLIGHTGEAR_LICENSE = "GPL-2.0-or-later (FlightGear data, Debian flightgear-data-base)"
# model name -> (forward axis, files: the model's, then its paint variants')
MODELS: dict[str, tuple[str, tuple[str, ...]]] = {
    "bmw3": ("-z", ("bmw3silver",)),
    "camaro": ("-z", ("camarored", "camaroblack", "camaroblue", "camarowhite")),
    "camry": ("-z", ("tcamrysilver", "tcamryblack", "tcamryblue", "tcamryred")),
    "dodge-ram": ("-z", ("dodgeramblue", "dodgeramgreen", "dodgeramred", "dodgeramwhite",
                         "dodgeramyellow")),
    "flatbed": ("-z", ("pickupred1", "pickupwhite1", "vanyellow1")),
    "golf": ("+z", ("vwgolfsilver",)),
    "hatchback": ("-x", ("hatchback_red", "hatchback_black", "hatchback_blue", "hatchback_green",
                         "hatchback_silver")),
    "honda": ("-z", ("honda1",)),
    "honda-crv": ("-z", ("hondacrvred", "hondacrvblack", "hondacrvsilver")),
    "hummer-h2": ("-z", ("hummerh2-ba",)),
    "jetta": ("-z", ("VWJetta_S1",)),
    "minibus": ("-z", ("minibusblue1", "minibusgreen1", "minibuswhite1")),
    "passat": ("-z", ("VWPassat_S1",)),
    "pickup": ("-z", ("pickupblue", "pickupwhite", "pickupyelwhite")),
    "police-car": ("-z", ("gr_policar1",)),
    "police-van": ("+z", ("it_policecar1",)),
    "ambulance": ("-z", ("gr_paramedic1",)),
    "taxi-wagon": ("-z", ("mazda_wagontaxi",)),
    "transit": ("-z", ("vantransitwhite1",)),
    "van": ("-x", ("van_red", "van-blue-muc", "van_blue_dirty", "van_silver")),
    "van-panel": ("-z", ("vanwhite1",)),
    "van-windows": ("-z", ("vanwhite",)),
    "volvo-xc90": ("-z", ("volvoxc90s1",)),
    "voyager": ("-z", ("voyager1",)),
}
_FORWARD = {file: forward for forward, files in MODELS.values() for file in files}
_FAR_LOD = re.compile(r'"LOD (\d+(?:\.\d*)?)/')  # "LOD 1000.000000/4000.000000": seen from afar
GROUND = 0.03  # metres: faces this close to the lowest point and flat are painted shadows


def _skipped(name: str) -> bool:
    """Shadows, and every level of detail but the nearest (its range starts at 0)."""
    far = _FAR_LOD.search(name)
    return is_shadow(name) or (far is not None and float(far.group(1)) > 0)


def find_flightgear_models(path: str | Path) -> Path:
    """The folder holding the models' .ac files: `path` itself, or Scenery/Models/Transport
    below it (the FlightGear data folder, or the root of a `dpkg -x` extraction)."""
    path = Path(path)
    for candidate in (path, path / "Scenery/Models/Transport",
                      path / "usr/share/games/flightgear/Scenery/Models/Transport"):
        if any((candidate / f"{file}.ac").is_file() for file in _FORWARD):
            return candidate
    raise FileNotFoundError(f"{path}: no FlightGear road vehicles (Scenery/Models/Transport) "
                            "found there")


def drop_ground(mesh: Mesh) -> Mesh:
    """The model without flat faces lying on the ground (painted shadows), in y-up axes."""
    flat = np.abs(face_normals(mesh.positions)[:, 1]) > 0.95
    low = mesh.triangles()[:, :, 1].max(axis=1) < mesh.positions[:, 1].min() + GROUND
    return select_triangles(mesh, ~(flat & low))


def load_flightgear_car(folder: Path, file: str) -> tuple[Mesh, dict[str, np.ndarray]]:
    """A model file in world axes, centered and scaled into the unit sphere, and its textures as
    RGBA images keyed by the mesh's texture names."""
    mesh = drop_ground(load_ac3d(folder / f"{file}.ac", skip=_skipped))
    images = {t: read_rgba(resolve_texture(folder, t)) for t in mesh.textures}
    return normalize_to_unit_sphere(transformed(mesh, y_up_to_world(_FORWARD[file]))), images


def pack_flightgear(folder: Path, out: Path) -> int:
    """Copy just the files the data set reads (each model's .ac and its textures, ≈8 MB of the
    33 MB folder) to `out`; returns their size in bytes."""
    out.mkdir(parents=True, exist_ok=True)
    size = 0
    for file in _FORWARD:
        model = folder / f"{file}.ac"
        textures = [resolve_texture(folder, t) for t in load_ac3d(model, skip=_skipped).textures]
        for path in (model, *textures):
            shutil.copyfile(path, out / path.name)
            size += path.stat().st_size
    return size
