"""FlightGear's road vehicles: the nearest level of detail only, no painted ground shadows, the
front turned to +x; the real models when downloaded; the --flightgear flag."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tools.car_set import car_roots, flightgear_instances
from tools.flightgear_cars import MODELS, find_flightgear_models, load_flightgear_car
from tools.make_dataset import main

# the extracted data, by default in the git-ignored data/ folder of the checkout
FLIGHTGEAR_DIR = Path(os.environ.get("LFN_FLIGHTGEAR_DIR",
                                     Path(__file__).resolve().parents[1] / "data" / "flightgear"))


def _quad(name: str, corners: list[tuple[float, float, float]]) -> str:
    rows = "\n".join(" ".join(map(str, c)) for c in corners)
    return (f'OBJECT poly\nname "{name}"\nnumvert 4\n{rows}\nnumsurf 1\nSURF 0x10\nmat 0\n'
            "refs 4\n0 0 0\n1 1 0\n2 1 1\n3 0 1\nkids 0\n")


# y up; the body's side (a vertical quad) is 4 m long along z and taller at the front (+z, this
# file's forward axis as listed for vwgolfsilver); a flat quad on the ground is a painted shadow;
# the far level of detail repeats the body coarsely and must not be read
AC3D = ('AC3Db\nMATERIAL "paint" rgb 0.8 0.1 0.1  amb 0.2 0.2 0.2  emis 0 0 0  spec 0 0 0  '
        'shi 0  trans 0\nOBJECT world\nkids 1\nOBJECT group\nname "object"\nkids 2\n'
        'OBJECT group\nname "LOD 0.000000/1000.000000"\nkids 2\n'
        + _quad("POLY_OS=0 HARD= BLEND=yes", [(0, 0.3, -2), (0, 0.3, 2), (0, 1.5, 2), (0, 1.0, -2)])
        + _quad("POLY_OS=0 HARD= BLEND=yes", [(-1, 0, -2), (1, 0, -2), (1, 0, 2), (-1, 0, 2)])
        + 'OBJECT group\nname "LOD 1000.000000/4000.000000"\nkids 1\n'
        + _quad("POLY_OS=0 HARD= BLEND=yes", [(0, 0, -9), (0, 0, 9), (0, 9, 9), (0, 9, -9)]))


@pytest.fixture
def tiny_transport(tmp_path: Path) -> Path:
    folder = tmp_path / "Scenery/Models/Transport"
    folder.mkdir(parents=True)
    (folder / "vwgolfsilver.ac").write_text(AC3D)
    return tmp_path


def test_nearest_detail_without_ground_shadow_front_to_plus_x(tiny_transport: Path) -> None:
    folder = find_flightgear_models(tiny_transport)
    mesh, images = load_flightgear_car(folder, "vwgolfsilver")
    assert mesh.num_triangles == 2 and images == {}  # the side quad only
    front = mesh.positions[:, 0] > 0
    assert mesh.positions[front, 2].max() > mesh.positions[~front, 2].max()  # taller at the front
    assert np.ptp(mesh.positions[:, 1]) == 0  # the side quad lies in world x-z


def test_instances_models_paint_files_and_repaints(tiny_transport: Path) -> None:
    cars = flightgear_instances(tiny_transport, 8, 0)
    assert len(cars) == 8 * len(MODELS) and all(c.split == "train" for c in cars)
    camaro = [c for c in cars if c.id.startswith("fg-camaro")]
    assert [c.id for c in camaro[:5]] == ["fg-camaro", "fg-camaro-skin1", "fg-camaro-skin2",
                                          "fg-camaro-skin3", "fg-camaro-paint1"]
    assert camaro[1].source == "flightgear:camaroblack" and camaro[4].hue is not None
    assert car_roots(None, None, str(tiny_transport)).flightgear == find_flightgear_models(
        tiny_transport)


def test_pack_holds_what_the_data_set_reads(tiny_transport: Path, tmp_path: Path) -> None:
    files = [file for _, model_files in MODELS.values() for file in model_files]
    for file in files:  # every model file, each the tiny one
        (find_flightgear_models(tiny_transport) / f"{file}.ac").write_text(AC3D)
    assert main(["--pack-flightgear", str(tiny_transport), str(tmp_path / "pack")]) == 0
    assert sorted(p.name for p in (tmp_path / "pack").iterdir()) == sorted(f"{f}.ac" for f in files)
    mesh, _ = load_flightgear_car(find_flightgear_models(tmp_path / "pack"), "vwgolfsilver")
    assert mesh.num_triangles == 2


def test_missing_flightgear_folder_is_one_error_line(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path / "out"), "--flightgear", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --flightgear ")


def test_real_models_load_long_along_x_with_their_textures() -> None:
    try:
        folder = find_flightgear_models(FLIGHTGEAR_DIR)
    except FileNotFoundError:
        pytest.skip(f"no FlightGear models at {FLIGHTGEAR_DIR} (set LFN_FLIGHTGEAR_DIR to an "
                    "extracted flightgear-data-base)")
    for _, files in MODELS.values():
        for file in files:
            mesh, images = load_flightgear_car(folder, file)
            extent = np.ptp(mesh.positions, axis=0)
            assert extent[0] > extent[1] and extent[0] > extent[2], file
            assert set(images) == set(mesh.textures) and images, file
