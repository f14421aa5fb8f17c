"""TORCS cars as product meshes: body + wheels at the axles from the car's XML, in world axes.

TORCS (AC3D) axes: x forward, y up, z to the car's right, metres, the body's floor at y = 0.
The product world: z up, length along x, so (x, y, z)_torcs -> (x, -z, y)_world (a rotation;
world y points to the car's left).
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tools.ac3d import load_ac3d
from tools.mesh import Mesh, concat, make_mesh, normalize_to_unit_sphere, select_triangles, transformed
from tools.textures import read_rgba, resolve_texture

TORCS_TO_WORLD = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
_UNITS = {"m": 1.0, "mm": 1e-3, "cm": 1e-2, "in": 0.0254, "ft": 0.3048}
_WHEELS = ("Front Right Wheel", "Front Left Wheel", "Rear Right Wheel", "Rear Left Wheel")
TIRE_RGB = (0.07, 0.07, 0.08)


@dataclass(frozen=True)
class Wheel:
    x: float  # axle position along the car, metres (TORCS frame)
    side: float  # lateral position, metres, + = the car's right (AC3D z)
    radius: float
    width: float
    ride_height: float  # the floor (the model's y = 0) above the ground, metres


@dataclass(frozen=True)
class CarSpec:
    name: str
    body_file: Path
    wheels: tuple[Wheel, ...]
    wheel_dir: Path | None  # wheels/<dir> holding wheel0.acc, or None: cylinders
    wheel_texture: Path | None  # the 2-D wheel image the cylinder caps show


def find_torcs_root(path: str | Path) -> Path:
    """The folder holding cars/ and wheels/: `path` itself, or the torcs data folder of a
    `dpkg -x` extraction below it."""
    path = Path(path)
    for candidate in (path, path / "usr/share/games/torcs", path / "share/games/torcs"):
        if (candidate / "cars").is_dir() and (candidate / "wheels").is_dir():
            return candidate
    raise FileNotFoundError(f"{path}: no TORCS data (cars/ and wheels/) found there")


def car_names(root: Path) -> list[str]:
    return sorted(d.name for d in (root / "cars").iterdir() if (d / f"{d.name}.xml").is_file())


def _section(params: ET.Element, path: str) -> ET.Element | None:
    node: ET.Element | None = params
    for name in path.split("/"):
        node = None if node is None else node.find(f"section[@name='{name}']")
    return node


def _number(section: ET.Element | None, name: str) -> float:
    node = None if section is None else section.find(f"attnum[@name='{name}']")
    if node is None:
        raise KeyError(f"missing attnum {name!r}")
    return float(node.get("val")) * _UNITS[node.get("unit", "m")]


def _string(section: ET.Element | None, name: str) -> str | None:
    node = None if section is None else section.find(f"attstr[@name='{name}']")
    return None if node is None else node.get("val")


def read_spec(root: Path, name: str) -> CarSpec:
    folder = root / "cars" / name
    params = ET.parse(folder / f"{name}.xml").getroot()
    graphics = _section(params, "Graphic Objects")
    body = _string(_section(params, "Graphic Objects/Ranges/1"), "car") or f"{name}.acc"
    wheels = []
    for section_name in _WHEELS:
        section = _section(params, section_name)
        axle = _section(params, "Front Axle" if section_name.startswith("Front") else "Rear Axle")
        tire_width = _number(section, "tire width")
        radius = (_number(section, "rim diameter") / 2
                  + tire_width * _number(section, "tire height-width ratio"))
        # TORCS's ypos is + to the left; AC3D z is + to the right
        wheels.append(Wheel(_number(axle, "xpos"), -_number(section, "ypos"), radius, tire_width,
                            _number(section, "ride height")))
    wheel_dir_name = _string(graphics, "3d wheel directory")
    wheel_dir = root / "wheels" / wheel_dir_name if wheel_dir_name else None
    if wheel_dir is not None and not (wheel_dir / "wheel0.acc").is_file():
        wheel_dir = None
    texture_name = _string(graphics, "wheel texture")
    wheel_texture = None
    if texture_name:
        try:
            wheel_texture = resolve_texture(folder, texture_name)
        except FileNotFoundError:
            wheel_texture = None
    return CarSpec(name, folder / body, tuple(wheels), wheel_dir, wheel_texture)


def cylinder_wheel(textured: bool, segments: int = 24) -> Mesh:
    """A unit wheel like TORCS's wheel0.acc: diameter 1 in x-y, width 1 along z; dark tread,
    caps showing the 2-D wheel image (texture 'wheel') or else plain grey."""
    angle = np.linspace(0, 2 * np.pi, segments + 1)
    ring = np.stack([np.cos(angle), np.sin(angle)], axis=1) * 0.5
    a, b = ring[:-1], ring[1:]
    z0, z1 = np.full((segments, 1), -0.5), np.full((segments, 1), 0.5)
    quads = np.stack([np.hstack([a, z0]), np.hstack([b, z0]), np.hstack([b, z1]),
                      np.hstack([a, z0]), np.hstack([b, z1]), np.hstack([a, z1])], axis=1)
    radial = np.hstack([(a + b) / 2, np.zeros((segments, 1))])
    radial /= np.linalg.norm(radial, axis=1, keepdims=True)
    parts = [make_mesh(quads.reshape(-1, 3), TIRE_RGB, normals=np.repeat(radial, 6, axis=0))]
    for z, order in ((-0.5, [0, 2, 1]), (0.5, [0, 1, 2])):
        corners = np.stack([np.zeros((segments, 2)), a, b], axis=1)[:, order].reshape(-1, 2)
        # the image's top-left quadrant holds the still wheel: center (0.25, 0.75) in GL uv
        uvs = corners * 0.5 + [0.25, 0.75]
        parts.append(make_mesh(
            np.hstack([corners, np.full((len(corners), 1), z)]),
            (1.0, 1.0, 1.0) if textured else (0.55, 0.55, 0.57),
            normals=np.tile([0.0, 0.0, np.sign(z)], (len(corners), 1)),
            uvs=uvs,
            tri_texture=np.full(segments, 0 if textured else -1, np.int32),
            textures=["wheel"] if textured else [],
        ))
    return concat(parts)


def _rename_textures(mesh: Mesh, prefix: str) -> Mesh:
    return Mesh(mesh.positions, mesh.normals, mesh.uvs, mesh.colors, mesh.tri_texture,
                [f"{prefix}/{name}" for name in mesh.textures])


def drop_floor(body: Mesh, height: float = 0.15) -> Mesh:
    """The body without the down-facing faces of its bottom `height` metres: the flat underbody
    plates some models carry stick out past the body's sides as black slabs, and nothing above
    the ground sees a down-facing face from below."""
    normals = body.normals.reshape(-1, 3, 3).mean(axis=1)
    low = body.triangles()[:, :, 1].max(axis=1) < body.positions[:, 1].min() + height
    return select_triangles(body, ~(low & (normals[:, 1] < -0.95)))


def load_car(root: Path, name: str) -> tuple[Mesh, dict[str, np.ndarray]]:
    """The car with its wheels, in world axes, centered and scaled into the unit sphere, and its
    textures as RGBA images keyed by the mesh's texture names."""
    spec = read_spec(root, name)
    body = drop_floor(load_ac3d(spec.body_file))
    images = {t: read_rgba(resolve_texture(spec.body_file.parent, t)) for t in body.textures}
    if spec.wheel_dir is not None:
        unit_wheel = _rename_textures(load_ac3d(spec.wheel_dir / "wheel0.acc"), "wheel")
        for texture in unit_wheel.textures:
            images[texture] = read_rgba(resolve_texture(spec.wheel_dir, texture.split("/")[1]))
    else:
        unit_wheel = cylinder_wheel(textured=spec.wheel_texture is not None)
        if spec.wheel_texture is not None:
            images["wheel"] = read_rgba(spec.wheel_texture)
    parts = [body]
    for wheel in spec.wheels:
        # the unit wheel's outer face is at z = -0.5, right for a left wheel: turn right wheels
        # half a turn about the vertical
        turn = np.diag([-1.0, 1.0, -1.0]) if wheel.side > 0 else np.eye(3)
        scale = np.diag([2 * wheel.radius, 2 * wheel.radius, wheel.width])
        # the body's floor (y = 0) rides `ride_height` above the ground the tyres stand on
        center = [wheel.x, wheel.radius - wheel.ride_height, wheel.side]
        parts.append(transformed(unit_wheel, turn @ scale, center))
    car = transformed(concat(parts), TORCS_TO_WORLD)
    return normalize_to_unit_sphere(car), images


def license_of(root: Path, name: str) -> str:
    """TORCS car models carry the Free Art License where their readme says so; the rest of
    torcs-data is GPL-2+ (Debian's copyright file)."""
    readme = root / "cars" / name / "readme.txt"
    text = readme.read_text(errors="replace") if readme.is_file() else ""
    return "Free-Art-License-1.3" if "free art" in text.lower() else "GPL-2.0-or-later"


def paint_schemes(root: Path, name: str) -> list[Path]:
    """drivers/*/N/<name>.rgb (or .png when packed): distinct skins of one car, sorted."""
    drivers = root / "drivers"
    if not drivers.is_dir():
        return []
    found: dict[str, Path] = {}
    default = _digest(resolve_texture(root / "cars" / name, f"{name}.rgb"))
    for path in sorted([*drivers.glob(f"*/*/{name}.rgb"), *drivers.glob(f"*/*/{name}.png")]):
        digest = _digest(path)
        if digest != default:
            found.setdefault(digest, path)
    return sorted(found.values())


def _digest(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()
