"""tools.make_dataset end to end at a tiny size: files, shapes, manifest, and the reader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.cardata import CarSource, car_source, load_cars
from tests.conftest import skip_or_fail
from tests.test_ac3d import TORCS_DIR
from tools.make_dataset import main
from tools.mesh import COPLANAR_GAP
from tools.torcs_cars import find_torcs_root


@pytest.fixture(scope="module", autouse=True)
def gl_available() -> None:
    try:
        from tools.scene_render import create_context

        create_context().release()
    except Exception as error:  # no EGL / no GL 3.3 driver
        skip_or_fail(f"no offscreen OpenGL context (EGL): {error}")


TINY = ["--views", "3", "--test-views", "2", "--res", "24", "--workers", "1"]


def test_procedural_data_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["--out", str(tmp_path), "--cars", "3", "--procedural", "3", "--test-procedural", "1",
          *TINY])
    assert "procedural cars only" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert {k: manifest[k] for k in ("res", "views", "test_views", "fov_deg", "radius")} == {
        "res": 24, "views": 3, "test_views": 2, "fov_deg": 40.0, "radius": 3.0}
    cars = manifest["cars"]
    assert [c["split"] for c in cars] == ["test", "train", "train"]
    assert all(c["source"].startswith("procedural:") and c["variant_of"] is None for c in cars)
    assert all(car_source(c) is CarSource.PROCEDURAL for c in cars)
    with np.load(tmp_path / f"{cars[0]['id']}.npz") as z:
        assert z["rgb"].shape == (5, 24, 24, 3) and z["rgb"].dtype == np.uint8
        assert z["depth"].shape == (5, 24, 24) and z["depth"].dtype == np.float32
        assert z["mask"].dtype == bool and np.array_equal(z["mask"], np.isfinite(z["depth"]))
        assert z["normal"].shape == (5, 24, 24, 3) and z["normal"].dtype == np.float32
        length = np.linalg.norm(z["normal"], axis=-1)
        assert np.allclose(length[z["mask"]], 1, atol=1e-4) and (length[~z["mask"]] == 0).all()
        assert z["cam2world"].shape == (5, 4, 4) and z["intrinsics"].shape == (3, 3)
        assert z["split"].tolist() == ["train"] * 3 + ["test"] * 2
        assert np.allclose(np.linalg.norm(z["cam2world"][:, :3, 3], axis=1), 3.0, atol=1e-5)
    train = load_cars(tmp_path, "train", with_depth=True)
    assert train.rgb.shape == (2, 5, 24, 24, 3) and train.train_view.sum() == 3
    assert train.normal.shape == (2, 5, 24, 24, 3)


def test_the_coplanar_gap_is_a_setting_and_older_sets_read_as_without_it(tmp_path: Path) -> None:
    args = ["--out", str(tmp_path), "--cars", "2", "--procedural", "2", "--test-procedural", "1", *TINY]
    assert main(args) == 0
    settings = tmp_path / "settings.json"
    assert json.loads(settings.read_text())["coplanar_gap"] == 0.0
    older = json.loads(settings.read_text())
    del older["coplanar_gap"]  # as written before the option
    settings.write_text(json.dumps(older))
    assert main(args) == 0  # the same set: continued, not refused
    assert main([*args, "--separate-coplanar-faces"]) == 1  # other renders than those on disk
    assert main([*args, "--separate-coplanar-faces", "--overwrite"]) == 0
    assert json.loads(settings.read_text())["coplanar_gap"] == COPLANAR_GAP


def test_a_data_set_without_normals_still_loads(tmp_path: Path) -> None:
    main(["--out", str(tmp_path), "--cars", "2", "--procedural", "2", "--test-procedural", "1",
          *TINY])
    for npz in tmp_path.glob("*.npz"):  # as written before normals were
        arrays = dict(np.load(npz))
        del arrays["normal"]
        np.savez_compressed(npz, **arrays)
    train = load_cars(tmp_path, "train", with_depth=True)
    assert train.normal is None and train.depth.shape == (1, 5, 24, 24)


def test_torcs_limit_gives_distinct_real_cars(tmp_path: Path) -> None:
    try:
        find_torcs_root(TORCS_DIR)
    except FileNotFoundError:
        pytest.skip(f"no TORCS data at {TORCS_DIR} (set LFN_TORCS_DIR to an extracted torcs-data)")
    main(["--out", str(tmp_path), "--source", "torcs", "--torcs", str(TORCS_DIR), "--cars", "2",
          *TINY])
    cars = json.loads((tmp_path / "manifest.json").read_text())["cars"]
    assert len(cars) == 2 and len({c["source"] for c in cars}) == 2
    assert all(c["source"].startswith("torcs:") and c["variant_of"] is None for c in cars)
    assert all(car_source(c) is CarSource.REAL for c in cars)
    assert all((tmp_path / f"{c['id']}.npz").is_file() for c in cars)
