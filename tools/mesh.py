"""The triangle mesh every car source produces and the renderer consumes.

A triangle soup: vertex k of triangle t is row 3 t + k of every per-vertex array, so each corner
keeps its own normal, uv and color (flat parts, texture seams and hard color edges need no
index bookkeeping).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Mesh:
    positions: np.ndarray  # (N, 3) float32, N = 3 T
    normals: np.ndarray  # (N, 3) float32, unit length
    uvs: np.ndarray  # (N, 2) float32, OpenGL convention: v = 0 at the image's bottom row
    colors: np.ndarray  # (N, 3) float32 in [0, 1]; multiplies the texture where there is one
    tri_texture: np.ndarray  # (T,) int32 index into `textures`, -1 = untextured
    textures: list[str] = field(default_factory=list)

    @property
    def num_triangles(self) -> int:
        return len(self.positions) // 3

    def triangles(self) -> np.ndarray:
        """(T, 3, 3) corner positions."""
        return self.positions.reshape(-1, 3, 3)


def face_normals(positions: np.ndarray) -> np.ndarray:
    """(T, 3) unit normals of a triangle soup's faces (zero for degenerate faces)."""
    tri = positions.reshape(-1, 3, 3)
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    length = np.linalg.norm(n, axis=1, keepdims=True)
    return (n / np.maximum(length, 1e-20)).astype(np.float32)


def make_mesh(
    positions: np.ndarray,
    colors: np.ndarray,
    normals: np.ndarray | None = None,
    uvs: np.ndarray | None = None,
    tri_texture: np.ndarray | None = None,
    textures: list[str] | None = None,
) -> Mesh:
    """A Mesh with defaults: flat normals, zero uvs, untextured."""
    positions = np.asarray(positions, np.float32).reshape(-1, 3)
    count = len(positions)
    if normals is None:
        normals = np.repeat(face_normals(positions), 3, axis=0)
    colors = np.broadcast_to(np.asarray(colors, np.float32), (count, 3))
    return Mesh(
        positions=positions,
        normals=np.asarray(normals, np.float32).reshape(-1, 3),
        uvs=np.zeros((count, 2), np.float32) if uvs is None else np.asarray(uvs, np.float32),
        colors=np.ascontiguousarray(colors),
        tri_texture=(
            np.full(count // 3, -1, np.int32)
            if tri_texture is None
            else np.asarray(tri_texture, np.int32)
        ),
        textures=list(textures or []),
    )


def concat(meshes: list[Mesh]) -> Mesh:
    """One mesh holding all parts; texture lists are merged by name."""
    names: list[str] = []
    remapped = []
    for mesh in meshes:
        for name in mesh.textures:
            if name not in names:
                names.append(name)
        lookup = np.array([names.index(n) for n in mesh.textures] + [-1], np.int32)
        remapped.append(lookup[mesh.tri_texture])  # index -1 picks the trailing -1
    return Mesh(
        positions=np.concatenate([m.positions for m in meshes]),
        normals=np.concatenate([m.normals for m in meshes]),
        uvs=np.concatenate([m.uvs for m in meshes]),
        colors=np.concatenate([m.colors for m in meshes]),
        tri_texture=np.concatenate(remapped),
        textures=names,
    )


def select_triangles(mesh: Mesh, keep: np.ndarray) -> Mesh:
    """The mesh with only the triangles where `keep` (T,) is true."""
    corners = np.repeat(keep, 3)
    return Mesh(mesh.positions[corners], mesh.normals[corners], mesh.uvs[corners],
                mesh.colors[corners], mesh.tri_texture[keep], list(mesh.textures))


def transformed(mesh: Mesh, linear: np.ndarray, offset: np.ndarray | None = None) -> Mesh:
    """The mesh under x -> linear @ x + offset; normals use the inverse transpose."""
    linear = np.asarray(linear, np.float64)
    positions = mesh.positions @ linear.T
    if offset is not None:
        positions = positions + np.asarray(offset, np.float64)
    normals = mesh.normals @ np.linalg.inv(linear)  # rows times (L^-1): (L^-T n) for each n
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-20)
    if np.linalg.det(linear) < 0:  # a mirror flips the winding: keep faces front-facing
        order = np.arange(len(positions)).reshape(-1, 3)[:, [0, 2, 1]].ravel()
        positions, normals = positions[order], normals[order]
        return Mesh(positions.astype(np.float32), normals.astype(np.float32), mesh.uvs[order],
                    mesh.colors[order], mesh.tri_texture, list(mesh.textures))
    return Mesh(positions.astype(np.float32), normals.astype(np.float32), mesh.uvs,
                mesh.colors, mesh.tri_texture, list(mesh.textures))


def stretched_proportions(mesh: Mesh, wheelbase: float, cabin: float, width: float) -> Mesh:
    """Another car's proportions from one model (world frame: length along x, up along z).

    The middle 40 % of the length is scaled by `wheelbase` and the ends shift with it, the
    top 45 % of the height (above the wheels) by `cabin`, and the width by `width`, so the
    wheels stay round while the car gets longer or shorter, taller or lower, wider or
    narrower. Normals follow the warp's local Jacobian.
    """
    p = mesh.positions.astype(np.float64)
    lo, hi = p.min(axis=0), p.max(axis=0)
    center_x, half_middle = (lo[0] + hi[0]) / 2, 0.2 * (hi[0] - lo[0])
    belt = lo[2] + 0.55 * (hi[2] - lo[2])
    dx = p[:, 0] - center_x
    middle = np.abs(dx) < half_middle
    x = center_x + np.where(middle, wheelbase * dx,
                            dx + np.sign(dx) * (wheelbase - 1) * half_middle)
    above = p[:, 2] > belt
    z = np.where(above, belt + cabin * (p[:, 2] - belt), p[:, 2])
    positions = np.stack([x, width * p[:, 1], z], axis=1)
    jacobian = np.stack([np.where(middle, wheelbase, 1.0), np.full(len(p), width),
                         np.where(above, cabin, 1.0)], axis=1)
    normals = mesh.normals / jacobian  # the inverse transpose of a diagonal Jacobian
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-20)
    return Mesh(positions.astype(np.float32), normals.astype(np.float32), mesh.uvs,
                mesh.colors, mesh.tri_texture, list(mesh.textures))


def y_up_to_world(forward: str) -> np.ndarray:
    """(3, 3) rotation taking a y-up model whose front faces `forward` ("+z", "-z", "+x" or
    "-x") to the product's world: front along +x, up along +z, the car's left along +y."""
    front = np.zeros(3)
    front["xyz".index(forward[1])] = 1.0 if forward[0] == "+" else -1.0
    up = np.array([0.0, 1.0, 0.0])
    return np.stack([front, np.cross(up, front), up])  # rows: world x, y, z in model axes


def normalize_to_unit_sphere(mesh: Mesh, radius: float = 0.95) -> Mesh:
    """Center the bounding box at the origin and scale so every vertex lies within `radius`."""
    lo, hi = mesh.positions.min(axis=0), mesh.positions.max(axis=0)
    centered = mesh.positions - (lo + hi) / 2
    scale = radius / np.linalg.norm(centered, axis=1).max()
    return Mesh((centered * scale).astype(np.float32), mesh.normals, mesh.uvs, mesh.colors,
                mesh.tri_texture, list(mesh.textures))


# How far apart coplanar overlapping faces are moved (unit-sphere units, ≈ 0.25 mm on a car):
# about 700 steps of a 24-bit depth buffer at the car (more for a deeper one; the renderer's near
# and far planes lie 1.05 before and behind it), a fiftieth of a pixel at the data set's
# supersampled resolution.
COPLANAR_GAP = 1e-4
# Planes are the same if their unit normals agree to ~1/200 and their offsets to ~1/2000.
_PLANE_KEY_SCALE = (200.0, 2000.0)


def coplanar_overlaps(mesh: Mesh) -> np.ndarray:
    """(P, 2) index pairs a < b of triangles that lie in one plane and overlap (not just touch).

    Models built for a game's renderer carry such faces: thin parts modelled as two faces back to
    back, and decals laid on the body. A depth buffer cannot order them, so which one shows
    changes from pixel to pixel and from view to view."""
    tri = mesh.triangles().astype(np.float64)
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    length = np.linalg.norm(cross, axis=1)
    normal = cross / np.maximum(length, 1e-30)[:, None]
    # the plane without its orientation: the normal's first non-zero component made positive
    lead = np.argmax(np.abs(normal) > 1e-9, axis=1)
    unoriented = normal * np.sign(normal[np.arange(len(normal)), lead])[:, None]
    offset = (unoriented * tri[:, 0]).sum(1)
    scaled = np.c_[unoriented * _PLANE_KEY_SCALE[0], offset * _PLANE_KEY_SCALE[1]]
    candidates = np.flatnonzero(length > 1e-12)
    same_plane = [np.zeros((0, 2), np.int64)]
    # twice, the bins shifted by half a bin: a plane on a bin's border is whole in one of them
    for shift in (0.0, 0.5):
        key = np.floor(scaled[candidates] + shift).astype(np.int64)
        _, group, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
        members = candidates[np.argsort(group.ravel(), kind="stable")]
        starts = np.cumsum(counts) - counts
        for start, count in zip(starts[counts > 1], counts[counts > 1], strict=True):
            first, second = np.triu_indices(count, 1)
            same_plane.append(members[start + np.stack([first, second], axis=1)])
    a, b = np.unique(np.sort(np.concatenate(same_plane), axis=1), axis=0).T
    overlap = _interiors_overlap(tri, unoriented, a, b)
    return np.stack([a[overlap], b[overlap]], axis=1)


def _interiors_overlap(tri: np.ndarray, unoriented: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) whether triangles a and b, of one plane, overlap: no edge normal of either separates
    them in that plane (two triangles that share an edge only touch)."""
    plane = unoriented[a]
    u = np.cross(plane, np.eye(3)[np.argmin(np.abs(plane), axis=1)])
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    v = np.cross(plane, u)
    first = np.stack([np.einsum("nkd,nd->nk", tri[a], w) for w in (u, v)], axis=-1)  # (N, 3, 2)
    second = np.stack([np.einsum("nkd,nd->nk", tri[b], w) for w in (u, v)], axis=-1)
    separated = np.zeros(len(a), bool)
    for corners in (first, second):
        edges = np.roll(corners, -1, axis=1) - corners
        axes = np.stack([-edges[..., 1], edges[..., 0]], axis=-1)  # (N, 3, 2)
        p = np.einsum("nkd,njd->nkj", axes, first)
        q = np.einsum("nkd,njd->nkj", axes, second)
        slack = 1e-6 * np.linalg.norm(axes, axis=-1)
        separated |= ((p.max(-1) <= q.min(-1) + slack) | (q.max(-1) <= p.min(-1) + slack)).any(-1)
    return ~separated


def separate_coplanar_faces(mesh: Mesh, gap: float = COPLANAR_GAP) -> Mesh:
    """The mesh with every face of a coplanar overlap (coplanar_overlaps) moved along its own
    normal, so the depth test orders them the same way in every pixel of every view: of two faces
    back to back, the one facing the camera shows; of two facing the same way, the later one in
    the mesh (a decal laid after the body) lies a gap higher and shows."""
    pairs = coplanar_overlaps(mesh)
    if not len(pairs):
        return mesh
    normal = face_normals(mesh.positions).astype(np.float64)
    layer = np.zeros(mesh.num_triangles)
    layer[np.unique(pairs)] = 1.0
    same_way = (normal[pairs[:, 0]] * normal[pairs[:, 1]]).sum(1) > 0
    # a face lies one layer above the highest earlier face it covers (pairs are a < b: in order
    # of b, every earlier face's layer is final)
    for a, b in sorted(pairs[same_way].tolist(), key=lambda pair: pair[1]):
        layer[b] = max(layer[b], layer[a] + 1.0)
    shift = np.repeat(gap * layer[:, None] * normal, 3, axis=0)
    return Mesh((mesh.positions + shift).astype(np.float32), mesh.normals, mesh.uvs, mesh.colors,
                mesh.tri_texture, list(mesh.textures))
