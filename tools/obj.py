"""A small Wavefront OBJ reader: positions, normals and faces (polygons as fans), colored by the
diffuse color (Kd) of the MTL materials they use. Texture coordinates and image maps are ignored:
the models read with it (SUMO's cars) have none.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tools.ac3d import fan_triangles
from tools.mesh import Mesh, face_normals, make_mesh

DEFAULT_RGB = (0.8, 0.8, 0.8)  # faces before any usemtl, or naming a material the MTL lacks


def parse_mtl(text: str) -> dict[str, tuple[float, float, float]]:
    """Material name -> diffuse RGB."""
    colors: dict[str, tuple[float, float, float]] = {}
    name = None
    for line in text.splitlines():
        key, *values = line.split() or [""]
        if key == "newmtl":
            name = " ".join(values)
            colors[name] = DEFAULT_RGB
        elif key == "Kd" and name is not None:
            colors[name] = tuple(float(v) for v in values[:3])
    return colors


def _index(token: str, count: int) -> int:
    """A 0-based index from an OBJ index (1-based, or negative: counted from the end)."""
    index = int(token)
    return index - 1 if index > 0 else count + index


def parse_obj(text: str, colors: dict[str, tuple[float, float, float]]) -> tuple[Mesh, list[str]]:
    """The Mesh of an OBJ's faces in the file's own axes, and each triangle's material name."""
    positions: list[list[float]] = []
    normals: list[list[float]] = []
    corners: list[tuple[int, int]] = []  # (position, normal or -1) per triangle corner
    materials: list[str] = []
    material = ""
    for number, line in enumerate(text.splitlines(), 1):
        key, *values = line.split() or [""]
        if key == "v":
            positions.append([float(v) for v in values[:3]])
        elif key == "vn":
            normals.append([float(v) for v in values[:3]])
        elif key == "usemtl":
            material = " ".join(values)
        elif key == "f":
            refs = [v.split("/") for v in values]
            if len(refs) < 3:
                raise ValueError(f"OBJ line {number}: a face needs 3 corners")
            polygon = [(_index(r[0], len(positions)),
                        _index(r[2], len(normals)) if len(r) > 2 and r[2] else -1) for r in refs]
            for tri in fan_triangles(len(polygon)):
                corners += [polygon[k] for k in tri]
                materials.append(material)
    if not corners:
        raise ValueError("OBJ: no faces")
    index = np.array(corners)
    if index[:, 0].max() >= len(positions) or index[:, 0].min() < 0:
        raise ValueError("OBJ: a face refers to a missing vertex")
    corner_positions = np.array(positions, float)[index[:, 0]]
    flat = np.repeat(face_normals(corner_positions), 3, axis=0)
    corner_normals = flat
    if normals:
        given = np.array(normals, float)[np.clip(index[:, 1], 0, None)]
        given /= np.maximum(np.linalg.norm(given, axis=1, keepdims=True), 1e-20)
        corner_normals = np.where((index[:, 1] >= 0)[:, None], given, flat)
    rgb = np.array([colors.get(m, DEFAULT_RGB) for m in materials], float)
    return make_mesh(corner_positions, np.repeat(rgb, 3, axis=0), normals=corner_normals), materials


def load_obj(path: str | Path) -> tuple[Mesh, list[str]]:
    """Read an OBJ and the MTL files it names (`mtllib`, relative to the OBJ's folder)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8", errors="replace")
    colors: dict[str, tuple[float, float, float]] = {}
    for line in text.splitlines():
        if line.startswith("mtllib "):
            library = path.parent / line.split(maxsplit=1)[1].strip()
            if not library.is_file():
                raise FileNotFoundError(f"{path}: material library {library.name} not found")
            colors.update(parse_mtl(library.read_text(encoding="utf-8", errors="replace")))
    return parse_obj(text, colors)
