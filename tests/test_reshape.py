"""Reshaped real cars (`make_dataset --reshapes`): the proportion warp keeps wheels round and
normals true, and only real training models get reshaped copies."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tools.car_set import Instance, car_roots, reshaped_instances
from tools.mesh import face_normals, make_mesh, stretched_proportions


def _car() -> tuple[np.ndarray, np.ndarray]:
    """A body (a box's 8 corners, as triangles) and a wheel: a ring of points in the
    x-z plane near the front, below the belt line."""
    body = np.array([[x, y, z] for x in (-2.0, 2.0) for y in (-0.8, 0.8) for z in (0.0, 1.0)])
    angles = np.linspace(0, 2 * np.pi, 30, endpoint=False)
    wheel = np.stack([1.3 + 0.25 * np.cos(angles), np.full(30, 0.8), 0.26 + 0.25 * np.sin(angles)],
                     axis=1)
    return body, wheel


def _mesh(points: np.ndarray):
    """The points as a triangle soup, the first repeated to fill the last triangle."""
    padding = -len(points) % 3
    return make_mesh(np.concatenate([points, np.repeat(points[:1], padding, axis=0)]),
                     colors=(0.5, 0.5, 0.5))


def test_identity_keeps_the_mesh() -> None:
    body, wheel = _car()
    mesh = _mesh(np.concatenate([body, wheel]))
    same = stretched_proportions(mesh, 1.0, 1.0, 1.0)
    assert np.allclose(same.positions, mesh.positions) and np.allclose(same.normals, mesh.normals)


def test_wheelbase_cabin_and_width_stretch_while_wheels_stay_round() -> None:
    body, wheel = _car()
    mesh = _mesh(np.concatenate([body, wheel]))
    out = stretched_proportions(mesh, 1.25, 0.8, 1.1).positions[: len(body) + len(wheel)]
    # length 4: the middle 1.6 grows by 0.4, so the ends move out by 0.2 each
    assert np.allclose(np.ptp(out[:, 0]), 4.4, atol=1e-5)
    # height 1: the top 45 % above the belt (0.55) shrinks to 0.36
    assert np.allclose(out[:, 2].max(), 0.55 + 0.8 * 0.45, atol=1e-5)
    assert np.allclose(np.ptp(out[:, 1]), 1.76, atol=1e-5)
    ring = out[len(body):]
    center = ring.mean(axis=0)
    radii = np.linalg.norm((ring - center)[:, [0, 2]], axis=1)
    assert np.allclose(radii, 0.25, atol=1e-5)  # translated, not squashed
    assert np.isclose(center[0], 1.5, atol=1e-5)


def test_normals_follow_the_warp() -> None:
    # a sloped windscreen in the middle, above the belt: its normal must stay perpendicular
    body, _ = _car()
    tri = np.array([[-0.2, -0.5, 0.7], [0.2, -0.5, 0.9], [0.2, 0.5, 0.9]])
    mesh = _mesh(np.concatenate([tri, body]))
    out = stretched_proportions(mesh, 1.2, 1.3, 0.9)
    assert np.allclose(out.normals[:3], face_normals(out.positions[:3]), atol=1e-5)
    assert not np.allclose(out.normals[:3], mesh.normals[:3], atol=1e-3)
    assert np.allclose(np.linalg.norm(out.normals, axis=1), 1, atol=1e-6)


def _instance(id_: str, split: str = "train", variant_of: str | None = None, **paint) -> Instance:
    return Instance(id=id_, source=f"torcs:{(variant_of or id_).removeprefix('torcs-')}",
                    variant_of=variant_of, license="test", split=split,
                    group="variant" if variant_of else "original", **paint)


def test_only_real_training_models_are_reshaped() -> None:
    cars = [_instance("torcs-a"), _instance("torcs-a-paint1", variant_of="torcs-a", hue=(0.5, 1.0)),
            _instance("torcs-b", split="test"),
            _instance("torcs-b-paint1", split="test", variant_of="torcs-b", hue=(0.2, 1.0)),
            Instance(id="proc-0-0001", source="procedural:1", variant_of=None, license="test",
                     split="train", group="procedural")]
    shapes = reshaped_instances(cars, 3, seed=0)
    assert [s.id for s in shapes] == ["torcs-a-shape1", "torcs-a-shape2", "torcs-a-shape3"]
    assert all(s.variant_of == "torcs-a" and s.split == "train" and s.group == "variant"
               for s in shapes)
    assert [s.hue for s in shapes] == [(0.5, 1.0), None, (0.5, 1.0)]  # paints taken in turn
    assert len({s.proportions for s in shapes}) == 3
    assert all(0.77 <= w <= 1.3 and 0.77 <= c <= 1.3 and 0.9 <= y <= 1.1
               for w, c, y in (s.proportions for s in shapes))
    assert [s.proportions for s in reshaped_instances(cars, 3, seed=0)] == \
        [s.proportions for s in shapes]  # the same cars every time
    assert reshaped_instances(cars, 0, seed=0) == []


def test_plan_adds_reshaped_sumo_cars_that_build_inside_the_unit_sphere(tmp_path: Path) -> None:
    from tests.test_sumo_cars import MTL, OBJ
    from tools.car_set import build
    from tools.make_dataset import parse_args, plan

    (tmp_path / "car.mtl").write_text(MTL)
    (tmp_path / "car-tiny.obj").write_text(OBJ + "v 0 0 3\nf 1 2 5\n")
    args = parse_args(["--out", str(tmp_path / "out"), "--sumo", str(tmp_path), "--paints", "2",
                       "--reshapes", "2", "--source", "torcs"])
    roots = car_roots(args.torcs, args.sumo)
    cars = plan(args, roots)
    assert [c.id for c in cars] == ["sumo-tiny", "sumo-tiny-paint1", "sumo-tiny-shape1",
                                    "sumo-tiny-shape2"]
    assert cars[2].paint == cars[1].paint and cars[3].paint is None
    entry = cars[2].manifest_entry()
    assert entry["variant_of"] == "sumo-tiny" and list(entry["proportions"]) == [
        "wheelbase", "cabin", "width"]
    assert "proportions" not in cars[1].manifest_entry()
    mesh, _ = build(cars[2], roots)
    assert np.linalg.norm(mesh.positions, axis=1).max() <= 0.95 + 1e-5
    plain, _ = build(cars[0], roots)
    assert not np.allclose(np.ptp(mesh.positions, axis=0), np.ptp(plain.positions, axis=0))
