"""A small AC3D (.ac / .acc) reader: the OBJECT tree, materials, textures and uvs as one Mesh.

TORCS's .acc dialect adds to AC3D: vertex lines may carry a normal after the position, a surface
ref may list several uv pairs (one per texture stage; the first is the base texture), an object
may name several textures (the first is the base), and SURF types 4 (flags 0x14/0x24/0x34) are
triangle strips. Objects named like '*shadow*' (flat ground shadows) are skipped with their kids,
as are those a caller's `skip` picks by name.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tools.mesh import Mesh, face_normals, make_mesh

_POLYGON, _STRIP = 0, 4  # low nibble of the SURF flags; 1 and 2 are lines, which we skip


@dataclass
class _Parts:
    """Triangles gathered while walking the tree, before they become one Mesh."""

    positions: list[np.ndarray] = field(default_factory=list)
    normals: list[np.ndarray] = field(default_factory=list)
    uvs: list[np.ndarray] = field(default_factory=list)
    colors: list[np.ndarray] = field(default_factory=list)
    tri_texture: list[np.ndarray] = field(default_factory=list)
    textures: list[str] = field(default_factory=list)


class _Lines:
    def __init__(self, text: str) -> None:
        self.lines = [line.strip() for line in text.splitlines()]
        self.pos = 0

    def next(self) -> str:
        while self.pos < len(self.lines):
            line = self.lines[self.pos]
            self.pos += 1
            if line:
                return line
        raise ValueError("AC3D: unexpected end of file")

    def block(self, count: int) -> list[str]:
        lines = self.lines[self.pos : self.pos + count]
        self.pos += count
        return lines


def strip_triangles(count: int) -> np.ndarray:
    """(count - 2, 3) corner indices of a triangle strip, alternate triangles flipped to keep
    one winding."""
    i = np.arange(max(count - 2, 0))
    odd = i % 2 == 1
    return np.stack([np.where(odd, i + 1, i), np.where(odd, i, i + 1), i + 2], axis=1)


def fan_triangles(count: int) -> np.ndarray:
    """(count - 2, 3) corner indices of a convex polygon's fan around its first corner."""
    i = np.arange(1, max(count - 1, 1))
    return np.stack([np.zeros_like(i), i, i + 1], axis=1)


def is_shadow(name: str) -> bool:
    """Whether an object (its name line's text, quotes and all) is a flat ground shadow."""
    return "shadow" in name.lower()


def _read_object(
    lines: _Lines,
    parent: tuple[np.ndarray, np.ndarray],
    materials: list[np.ndarray],
    parts: _Parts | None,
    skip: Callable[[str], bool],
) -> None:
    """Read one OBJECT block (its header line already consumed) and its kids. `parent` maps the
    parent's frame to the world; `parts` None discards the triangles (a skipped subtree)."""
    texture = None
    rot, loc = np.eye(3), np.zeros(3)
    vertices = np.zeros((0, 6))
    while True:
        key, _, rest = lines.next().partition(" ")
        world = (parent[0] @ rot, parent[0] @ loc + parent[1])
        if key == "name" and skip(rest):
            parts = None
        elif key == "data":
            lines.block(1)  # object data is a single line in practice
        elif key == "texture" and texture is None:
            texture = shlex.split(rest)[0]
        elif key == "rot":
            rot = np.array(rest.split(), float).reshape(3, 3)
        elif key == "loc":
            loc = np.array(rest.split(), float)
        elif key == "numvert":
            rows = [row.split() for row in lines.block(int(rest))]
            vertices = np.array([r[:6] if len(r) >= 6 else r[:3] + ["0"] * 3 for r in rows],
                                float).reshape(-1, 6)
        elif key == "numsurf":
            for _ in range(int(rest)):
                _read_surface(lines, vertices, world, texture, materials, parts)
        elif key == "kids":
            for _ in range(int(rest)):
                header = lines.next()
                if not header.startswith("OBJECT"):
                    raise ValueError(f"AC3D: expected OBJECT, got {header!r}")
                _read_object(lines, world, materials, parts, skip)
            return
        # url, crease, texrep, texoff, subdiv, hidden, locked, folded: no effect on the shape


def _read_surface(
    lines: _Lines,
    vertices: np.ndarray,
    world: tuple[np.ndarray, np.ndarray],
    texture: str | None,
    materials: list[np.ndarray],
    parts: _Parts | None,
) -> None:
    flags, mat = 0, 0
    while True:
        key, _, rest = lines.next().partition(" ")
        if key == "SURF":
            flags = int(rest, 0)
        elif key == "mat":
            mat = int(rest)
        elif key == "refs":
            refs = [row.split() for row in lines.block(int(rest))]
            break
    kind = flags & 0x0F
    if parts is None or kind not in (_POLYGON, _STRIP) or len(refs) < 3:
        return
    index = np.array([int(r[0]) for r in refs])
    uv = np.array([[float(r[1]), float(r[2])] if len(r) >= 3 else [0.0, 0.0] for r in refs])
    corners = strip_triangles(len(refs)) if kind == _STRIP else fan_triangles(len(refs))
    corners = corners[(index[corners] != np.roll(index[corners], 1, axis=1)).all(axis=1)]
    if len(corners) == 0:
        return
    rot, offset = world
    corner_index = index[corners].ravel()
    positions = vertices[corner_index, :3] @ rot.T + offset
    normals = vertices[corner_index, 3:] @ rot.T  # rot is a rotation: no inverse transpose
    flat = np.repeat(face_normals(positions), 3, axis=0)
    missing = np.linalg.norm(normals, axis=1) < 1e-6
    normals[missing] = flat[missing]
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-20)
    if texture is not None and texture not in parts.textures:
        parts.textures.append(texture)
    parts.positions.append(positions)
    parts.normals.append(normals)
    parts.uvs.append(uv[corners].reshape(-1, 2))
    parts.colors.append(np.repeat(materials[mat][None], len(positions), axis=0))
    tex_id = -1 if texture is None else parts.textures.index(texture)
    parts.tri_texture.append(np.full(len(corners), tex_id))


def _material_rgb(line: str) -> np.ndarray:
    tokens = shlex.split(line)
    at = tokens.index("rgb")
    return np.array([float(t) for t in tokens[at + 1 : at + 4]])


def parse_ac3d(text: str, skip: Callable[[str], bool] = is_shadow) -> Mesh:
    """Parse AC3D text into a triangle Mesh in the file's own axes (AC3D: y up), leaving out the
    objects (and their kids) whose name `skip` picks."""
    lines = _Lines(text)
    if not lines.next().startswith("AC3D"):
        raise ValueError("AC3D: missing AC3D header")
    materials: list[np.ndarray] = []
    parts = _Parts()
    identity = (np.eye(3), np.zeros(3))
    while lines.pos < len(lines.lines):
        line = lines.lines[lines.pos]
        lines.pos += 1
        if line.startswith("MATERIAL"):
            materials.append(_material_rgb(line))
        elif line.startswith("OBJECT"):
            _read_object(lines, identity, materials, parts, skip)
    if not parts.positions:
        raise ValueError("AC3D: no triangles")
    return make_mesh(
        positions=np.concatenate(parts.positions),
        colors=np.concatenate(parts.colors),
        normals=np.concatenate(parts.normals),
        uvs=np.concatenate(parts.uvs),
        tri_texture=np.concatenate(parts.tri_texture),
        textures=parts.textures,
    )


def load_ac3d(path: str | Path, skip: Callable[[str], bool] = is_shadow) -> Mesh:
    """Read an AC3D file (TORCS files are Latin-1 at worst, hence errors='replace')."""
    return parse_ac3d(Path(path).read_text(encoding="utf-8", errors="replace"), skip)
