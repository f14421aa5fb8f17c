"""The AC3D reader on a hand-written file, and on a real TORCS car with its wheels."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tools.ac3d import fan_triangles, parse_ac3d, strip_triangles
from tools.mesh import face_normals
from tools.torcs_cars import find_torcs_root, load_car, read_spec

# the extracted data, by default in the git-ignored data/ folder of the checkout
TORCS_DIR = Path(os.environ.get("LFN_TORCS_DIR", Path(__file__).resolve().parents[1] / "data" / "torcs"))

# A group holding: a strip quad (SURF 0x14, 4 refs = 2 triangles), a textured polygon quad
# (SURF 0x10, fan = 2 triangles) in a child turned 90° about z and moved, and a shadow object.
SNIPPET = """AC3Db
MATERIAL "red" rgb 1 0 0  amb 0.2 0.2 0.2  emis 0 0 0  spec 0 0 0  shi 0  trans 0
MATERIAL "green" rgb 0 1 0  amb 0.2 0.2 0.2  emis 0 0 0  spec 0 0 0  shi 0  trans 0
OBJECT world
kids 3
OBJECT poly
name "strip"
numvert 4
0 0 0
1 0 0
0 1 0
1 1 0
numsurf 1
SURF 0x14
mat 0
refs 4
0 0 0
1 1 0
2 0 1
3 1 1
kids 0
OBJECT group
name "parent"
loc 10 0 0
kids 1
OBJECT poly
name "child"
texture "paint.rgb" base
texture "paint.rgb" tiled
rot 0 -1 0  1 0 0  0 0 1
loc 0 5 0
numvert 4
0 0 0 0 0 1
2 0 0 0 0 1
2 1 0 0 0 1
0 1 0 0 0 1
numsurf 1
SURF 0x10
mat 1
refs 4
0 0.0 0.0 0.5 0.5
1 1.0 0.0 0.5 0.5
2 1.0 1.0 0.5 0.5
3 0.0 1.0 0.5 0.5
kids 0
OBJECT poly
name "car_shadow"
numvert 3
0 0 0
1 0 0
0 1 0
numsurf 1
SURF 0x10
mat 0
refs 3
0 0 0
1 0 0
2 0 0
kids 0
"""


def test_strip_and_fan_orders() -> None:
    assert strip_triangles(5).tolist() == [[0, 1, 2], [2, 1, 3], [2, 3, 4]]
    assert fan_triangles(5).tolist() == [[0, 1, 2], [0, 2, 3], [0, 3, 4]]


def test_reads_hand_written_file() -> None:
    mesh = parse_ac3d(SNIPPET)
    assert mesh.num_triangles == 4  # the shadow is skipped
    tris = mesh.triangles()
    # the strip: two triangles covering the unit square, wound the same way
    assert np.allclose(tris[0], [[0, 0, 0], [1, 0, 0], [0, 1, 0]])
    assert np.allclose(tris[1], [[0, 1, 0], [1, 0, 0], [1, 1, 0]])
    assert np.allclose(face_normals(mesh.positions)[:2], [[0, 0, 1], [0, 0, 1]])
    # the child: rot turns x into y, then loc (0, 5, 0), then the parent's loc (10, 0, 0)
    assert np.allclose(tris[2], [[10, 5, 0], [10, 7, 0], [9, 7, 0]])
    assert np.allclose(tris[3], [[10, 5, 0], [9, 7, 0], [9, 5, 0]])
    assert np.allclose(mesh.uvs[6:9], [[0, 0], [1, 0], [1, 1]])  # first uv pair of each ref
    assert np.allclose(mesh.colors[:6], [1, 0, 0]) and np.allclose(mesh.colors[6:], [0, 1, 0])
    assert mesh.textures == ["paint.rgb"]
    assert mesh.tri_texture.tolist() == [-1, -1, 0, 0]
    assert np.allclose(mesh.normals[6:], [0, 0, 1])  # file normals, rotated


@pytest.fixture(scope="module")
def torcs_root() -> Path:
    try:
        return find_torcs_root(TORCS_DIR)
    except FileNotFoundError:
        pytest.skip(f"no TORCS data at {TORCS_DIR} (set LFN_TORCS_DIR to an extracted torcs-data)")


def test_reads_a_torcs_car_upright_on_its_wheels(torcs_root: Path) -> None:
    mesh, images = load_car(torcs_root, "car1-trb1")
    assert mesh.num_triangles > 3000
    assert set(mesh.textures) <= set(images) and "car1-trb1.rgb" in mesh.textures
    assert np.linalg.norm(mesh.positions, axis=1).max() <= 0.95 + 1e-5
    lo, hi = mesh.positions.min(axis=0), mesh.positions.max(axis=0)
    extent = hi - lo
    assert extent[0] > 2 * extent[1] > 2 * extent[2] / 1.5  # long along x, then wide, low
    # the tyres are the lowest points, one contact patch under each axle, a wheelbase apart
    spec = read_spec(torcs_root, "car1-trb1")
    metre = extent[0] / 4.52  # car1-trb1's body is 4.52 m long
    wheelbase = (max(w.x for w in spec.wheels) - min(w.x for w in spec.wheels)) * metre
    bottom_x = mesh.positions[mesh.positions[:, 2] < lo[2] + 0.03 * metre, 0]  # ride heights differ
    assert abs(bottom_x.max() - bottom_x.min() - wheelbase) < 0.2 * metre
    middle = (bottom_x > bottom_x.min() + 0.3 * metre) & (bottom_x < bottom_x.max() - 0.3 * metre)
    assert not middle.any(), "the body touches the ground between the wheels"
    # the roof is up: the top part sits between the axles, not under them
    top = mesh.positions[mesh.positions[:, 2] > hi[2] - 0.05 * extent[2]]
    assert np.all(np.abs(top[:, 0] - (lo[0] + hi[0]) / 2) < 0.35 * extent[0])
