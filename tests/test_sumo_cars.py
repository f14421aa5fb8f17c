"""The OBJ reader on a hand-written OBJ + MTL, SUMO's cars (when downloaded), and the data-set
flags that add them and the second procedural style."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from tools.make_dataset import main
from tools.obj import load_obj
from tools.sumo_cars import find_sumo_models, load_sumo_car, sumo_names

# the extracted data, by default in the git-ignored data/ folder of the checkout
SUMO_DIR = Path(os.environ.get("LFN_SUMO_DIR", Path(__file__).resolve().parents[1] / "data" / "sumo"))

MTL = """# two materials, one without Kd
newmtl carmaterial_test
Kd 0.7 0.5 0.0

newmtl glass
Ns 96
"""
# a quad (fan: 2 triangles) in the paint, then a triangle with normals and a negative index
OBJ = """mtllib car.mtl
o body
v 0 0 0
v 1 0 0
v 1 1 0
v 0 1 0
vn 0 0 2
usemtl carmaterial_test
f 1 2 3 4
usemtl glass
s 1
f 1//1 2//1 -1//1
"""


@pytest.fixture
def tiny_obj(tmp_path: Path) -> Path:
    (tmp_path / "car.mtl").write_text(MTL)
    (tmp_path / "car-tiny.obj").write_text(OBJ)
    return tmp_path / "car-tiny.obj"


def test_obj_faces_colors_and_normals(tiny_obj: Path) -> None:
    mesh, materials = load_obj(tiny_obj)
    assert mesh.num_triangles == 3 and materials == ["carmaterial_test"] * 2 + ["glass"]
    assert np.allclose(mesh.triangles()[1], [[0, 0, 0], [1, 1, 0], [0, 1, 0]])
    assert np.allclose(mesh.triangles()[2], [[0, 0, 0], [1, 0, 0], [0, 1, 0]])  # -1: the last
    assert np.allclose(mesh.colors[:6], [0.7, 0.5, 0.0])
    assert np.allclose(mesh.colors[6:], 0.8)  # a material without Kd: the default grey
    assert np.allclose(mesh.normals, [0, 0, 1])  # given normals normalized, flat ones computed
    assert (mesh.tri_texture == -1).all() and mesh.textures == []


def test_obj_errors_name_the_problem(tmp_path: Path) -> None:
    (tmp_path / "bad.obj").write_text("v 0 0 0\nf 1 2 3\n")
    with pytest.raises(ValueError, match="missing vertex"):
        load_obj(tmp_path / "bad.obj")
    (tmp_path / "lib.obj").write_text("mtllib gone.mtl\nv 0 0 0\n")
    with pytest.raises(FileNotFoundError, match="gone.mtl"):
        load_obj(tmp_path / "lib.obj")


def test_sumo_model_repaint_and_axes(tiny_obj: Path) -> None:
    folder = find_sumo_models(tiny_obj.parent)
    assert sumo_names(folder) == ["car-tiny"]
    car = load_sumo_car(folder, "car-tiny", paint=(0.1, 0.2, 0.9))
    assert np.allclose(car.colors[:6], [0.1, 0.2, 0.9]) and np.allclose(car.colors[6:], 0.8)
    # OBJ x (the car's left) becomes world y, OBJ y (up) world z
    extent = np.ptp(car.positions, axis=0)
    assert extent[0] == 0 and extent[1] > 0 and extent[2] > 0


def test_missing_sumo_folder_is_one_error_line(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path / "out"), "--sumo", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --sumo ") and "car-*.obj" in err[0]


def test_plan_with_sumo_and_the_second_style(tiny_obj: Path, tmp_path: Path) -> None:
    from tools.car_set import car_roots
    from tools.make_dataset import parse_args, plan

    args = parse_args(["--out", str(tmp_path), "--sumo", str(tiny_obj.parent), "--paints", "3",
                       "--procedural", "4", "--test-procedural", "1",
                       "--procedural-style", "v2"])
    cars = [i.manifest_entry() for i in plan(args, car_roots(args.torcs, args.sumo))]
    assert [c["id"] for c in cars] == [
        "sumo-tiny", "sumo-tiny-paint1", "sumo-tiny-paint2",
        "proc2-0-0000", "proc2-0-0001", "proc2-0-0002", "proc2-0-0003"]
    assert all(c["split"] == "train" for c in cars[:3])
    assert [c["split"] for c in cars[3:]] == ["test", "train", "train", "train"]
    assert cars[3]["source"] == "procedural:v2:0" and cars[1]["variant_of"] == "sumo-tiny"


def test_plan_with_both_styles_holds_out_cars_of_each(tmp_path: Path) -> None:
    from tools.car_set import car_roots
    from tools.make_dataset import parse_args, plan

    args = parse_args(["--out", str(tmp_path), "--source", "procedural", "--procedural", "3",
                       "--test-procedural", "1", "--procedural-style", "v1", "v2", "v1"])
    cars = [i.manifest_entry() for i in plan(args, car_roots(None, None))]
    assert [c["id"] for c in cars] == ["proc-0-0000", "proc-0-0001", "proc-0-0002",
                                       "proc2-0-0000", "proc2-0-0001", "proc2-0-0002"]
    assert [c["split"] for c in cars] == ["test", "train", "train"] * 2


def test_second_style_data_set_renders(tmp_path: Path) -> None:
    try:
        from tools.scene_render import create_context

        create_context().release()
    except Exception as error:  # no EGL
        pytest.skip(f"no offscreen OpenGL context (EGL): {error}")
    main(["--out", str(tmp_path), "--procedural", "2", "--test-procedural", "1", "--cars", "2",
          "--procedural-style", "v2", "--views", "2", "--test-views", "1", "--res", "24",
          "--workers", "1"])
    cars = json.loads((tmp_path / "manifest.json").read_text())["cars"]
    with np.load(tmp_path / f"{cars[0]['id']}.npz") as z:
        assert z["rgb"].shape == (3, 24, 24, 3) and z["mask"].any()


def test_real_sumo_cars_are_upright_and_long_along_x() -> None:
    try:
        folder = find_sumo_models(SUMO_DIR)
    except FileNotFoundError:
        pytest.skip(f"no SUMO models at {SUMO_DIR} (set LFN_SUMO_DIR to an unzipped eclipse-sumo)")
    assert len(sumo_names(folder)) == 3
    for name in sumo_names(folder):
        car = load_sumo_car(folder, name)
        extent = np.ptp(car.positions, axis=0)
        assert extent[0] > extent[2] and extent[0] > extent[1]
        # the tyres (the darkest material) are at the bottom
        dark = car.colors.mean(axis=1) < 0.05
        assert car.positions[dark, 2].min() == pytest.approx(car.positions[:, 2].min())
        # the head lamps (bright, "lights") are at the front: x > 0
        lamps = np.isclose(car.colors, [0.64, 0.63147, 0.509493], atol=1e-4).all(axis=1)
        assert car.positions[lamps, 0].mean() > 0.5
