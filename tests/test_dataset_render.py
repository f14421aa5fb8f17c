"""Rendered depth is geometry: back-projected pixels land on the mesh, and a point seen in one
view reprojects into another at the depth that view measured."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.cameras import orbit_pose, pixel_rays
from tests.conftest import skip_or_fail
from tests.test_ac3d import TORCS_DIR
from tools.mesh import Mesh, make_mesh
from tools.procedural_cars import procedural_car
from tools.textures import flatten_alpha
from tools.torcs_cars import find_torcs_root, load_car

RES = 64


@pytest.fixture(scope="module")
def renderer():
    try:
        from tools.scene_render import SceneRenderer

        renderer = SceneRenderer(RES)
    except Exception as error:  # no EGL / no GL 3.3 driver
        skip_or_fail(f"no offscreen OpenGL context (EGL): {error}")
    yield renderer
    renderer.release()


def point_triangle_distance(points: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """(M,) distance from each point to the nearest of the triangles (T, 3, 3)."""
    a, b, c = tris[:, 0], tris[:, 1], tris[:, 2]
    normal = np.cross(b - a, c - a)
    area2 = np.linalg.norm(normal, axis=1)
    solid = area2 > 1e-12
    a, b, c, normal = a[solid], b[solid], c[solid], normal[solid] / area2[solid, None]
    best = np.full(len(points), np.inf)
    for start in range(0, len(points), 64):
        p = points[start : start + 64, None, :]  # (m, 1, 3)
        height = ((p - a) * normal).sum(-1)
        foot = p - height[..., None] * normal
        # inside test: the foot is on the inner side of all three edges
        inside = np.ones(height.shape, bool)
        for u, v in ((a, b), (b, c), (c, a)):
            inside &= (np.cross(v - u, foot - u) * normal).sum(-1) >= 0
        dist = np.where(inside, np.abs(height), np.inf)
        for u, v in ((a, b), (b, c), (c, a)):
            edge = v - u
            s = np.clip(((p - u) * edge).sum(-1) / np.maximum((edge * edge).sum(-1), 1e-20), 0, 1)
            dist = np.minimum(dist, np.linalg.norm(p - (u + s[..., None] * edge), axis=-1))
        best[start : start + 64] = dist.min(axis=1)
    return best


def back_project(depth: np.ndarray, mask: np.ndarray, cam2world: np.ndarray,
                 k: np.ndarray) -> np.ndarray:
    origins, dirs = pixel_rays(torch.from_numpy(cam2world).double(), torch.from_numpy(k).double(),
                               RES, RES)
    points = origins.numpy() + dirs.numpy() * np.where(mask, depth, 0)[..., None]
    return points[mask]


def test_depth_lands_on_the_mesh(renderer) -> None:
    mesh: Mesh = procedural_car(7)
    renderer.set_mesh(mesh, {})
    size = 2 * np.linalg.norm(mesh.positions, axis=1).max()
    for azimuth, elevation in ((35.0, 25.0), (200.0, 50.0)):
        pose = orbit_pose(azimuth, elevation).numpy()
        view = renderer.render(pose)
        assert view.mask.sum() > 0.1 * RES * RES
        assert np.array_equal(np.isfinite(view.depth), view.mask)
        assert (view.rgb[~view.mask] > 200).all(axis=-1).mean() > 0.9  # white background
        points = back_project(view.depth, view.mask, pose, renderer.intrinsics)
        distance = point_triangle_distance(points, mesh.triangles().astype(np.float64))
        assert distance.max() < 0.01 * size, f"{distance.max():.4f} off the surface"


def test_textured_torcs_depth_lands_on_the_mesh(renderer) -> None:
    try:
        root = find_torcs_root(TORCS_DIR)
    except FileNotFoundError:
        pytest.skip(f"no TORCS data at {TORCS_DIR} (set LFN_TORCS_DIR to an extracted torcs-data)")
    mesh, images = load_car(root, "car3-trb1")
    renderer.set_mesh(mesh, {name: flatten_alpha(image) for name, image in images.items()})
    pose = orbit_pose(130.0, 20.0).numpy()
    view = renderer.render(pose)
    points = back_project(view.depth, view.mask, pose, renderer.intrinsics)
    distance = point_triangle_distance(points, mesh.triangles().astype(np.float64))
    assert distance.max() < 0.01 * 2 * np.linalg.norm(mesh.positions, axis=1).max()
    assert view.rgb[view.mask].std() > 20  # textured, not flat


def test_points_reproject_at_the_other_views_depth(renderer) -> None:
    mesh = procedural_car(11)
    renderer.set_mesh(mesh, {})
    size = 2 * np.linalg.norm(mesh.positions, axis=1).max()
    k = renderer.intrinsics
    pose_a, pose_b = orbit_pose(20.0, 30.0).numpy(), orbit_pose(65.0, 15.0).numpy()
    view_a, view_b = renderer.render(pose_a), renderer.render(pose_b)
    points = back_project(view_a.depth, view_a.mask, pose_a, k)
    world2cam = np.linalg.inv(pose_b)
    cam = points @ world2cam[:3, :3].T + world2cam[:3, 3]
    pixel = cam @ k.T
    u, v = (pixel[:, :2] / pixel[:, 2:]).T - 0.5  # pixel centers sit at +0.5
    i, j = np.floor(u).astype(int), np.floor(v).astype(int)
    inside = (i >= 0) & (i < RES - 1) & (j >= 0) & (j < RES - 1)
    i, j, fu, fv, cam = i[inside], j[inside], (u - i)[inside], (v - j)[inside], cam[inside]
    d = view_b.depth
    corners = np.stack([d[j, i], d[j, i + 1], d[j + 1, i], d[j + 1, i + 1]], axis=1)
    # compare only where B's four nearest pixels see one continuous surface
    seen = np.isfinite(corners).all(axis=1)
    seen &= np.ptp(np.where(seen[:, None], corners, 0), axis=1) < 0.02 * size
    weights = np.stack([(1 - fu) * (1 - fv), fu * (1 - fv), (1 - fu) * fv, fu * fv], axis=1)
    error = np.linalg.norm(cam, axis=1)[seen] - (corners * weights).sum(axis=1)[seen]
    # B sees the point itself (depths agree) or something in front of it (occlusion: B's depth
    # is smaller), never a surface behind it
    assert seen.sum() > 50
    assert (np.abs(error) < 0.01 * size).mean() > 0.9
    assert (error < -0.01 * size).mean() < 0.02


def cube(half: float) -> Mesh:
    """An axis-aligned cube, windings mixed and shading normals radial (smooth), so neither
    the winding nor the shading normal can stand in for the face normal."""
    corners = np.array([[x, y, z] for x in (-half, half) for y in (-half, half)
                        for z in (-half, half)])
    faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    tris = np.array([[a, b, c] if k % 2 else [a, c, b] for k, (a, b, c, d) in enumerate(faces)]
                    + [[a, c, d] for a, b, c, d in faces])
    positions = corners[tris].reshape(-1, 3)
    radial = positions / np.linalg.norm(positions, axis=1, keepdims=True)
    return make_mesh(positions, [0.6, 0.6, 0.6], normals=radial)


def test_normals_of_a_cube_face_are_its_face_normal(renderer) -> None:
    half = 0.5
    renderer.set_mesh(cube(half), {})
    pose = orbit_pose(30.0, 35.0).numpy()  # sees the +x, +y and +z faces
    view = renderer.render(pose)
    assert view.normal.shape == (RES, RES, 3) and view.normal.dtype == np.float32
    assert (view.normal[~view.mask] == 0).all()
    points = back_project(view.depth, view.mask, pose, renderer.intrinsics)
    normals = view.normal[view.mask]
    for axis in range(3):
        # pixels well inside the face x[axis] = +half: away from its edges
        on_face = (np.abs(points[:, axis] - half) < 1e-3) & (
            np.delete(np.abs(points), axis, axis=1) < half - 0.05).all(axis=1)
        assert on_face.sum() > 100
        expected = np.eye(3)[axis]
        assert np.abs(normals[on_face] - expected).max() < 1e-5
