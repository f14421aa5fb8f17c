"""tools.compare_views: the ground truth it renders is the data set's own at the data set's size,
the scores are the networks' PSNR against it, and bad input gets one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.metrics import psnr
from models.checkpoint import save_checkpoint
from models.renderer import make_renderer
from tests.conftest import skip_or_fail, tiny_lfn, tiny_volumetric
from tools import compare_views, make_dataset

RES = 24


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory) -> Path:
    try:
        from tools.scene_render import create_context

        create_context().release()
    except Exception as error:  # no EGL / no GL 3.3 driver
        skip_or_fail(f"no offscreen OpenGL context (EGL): {error}")
    folder = tmp_path_factory.mktemp("cars")
    make_dataset.main(["--out", str(folder), "--procedural", "3", "--test-procedural", "1", "--views", "2",
                       "--test-views", "2", "--res", str(RES), "--workers", "1"])
    return folder


def checkpoints(folder: Path, tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """Tiny LFN and volumetric checkpoints whose instances are the set's training cars."""
    manifest = json.loads((folder / "manifest.json").read_text())
    train = [car["id"] for car in manifest["cars"] if car["split"] == "train"]
    lfn, volumetric = tmp_path / "lfn.pt", tmp_path / "vol.pt"
    save_checkpoint(tiny_lfn(len(train)), train, {"metrics": {}}, lfn)
    save_checkpoint(tiny_volumetric(len(train)), train, {"metrics": {}}, volumetric)
    return lfn, volumetric, train


def test_at_the_sets_own_size_the_truth_is_its_held_out_view_and_the_scores_the_networks(tiny_set, tmp_path):
    lfn_path, volumetric_path, train = checkpoints(tiny_set, tmp_path)
    out, scores = tmp_path / "figure.png", tmp_path / "scores.json"
    code = compare_views.main(["--data", str(tiny_set), "--ckpt", str(lfn_path), "--volumetric",
                               str(volumetric_path), "--cars", *train, "--view", "1", "--res", str(RES),
                               "--crop", "16", "--out", str(out), "--json", str(scores), "--device", "cpu",
                               "--volumetric-sampling", "dense"])
    assert code == 0
    figure = np.asarray(Image.open(out).convert("RGB"))
    assert figure.shape == (len(train) * (16 + compare_views.LABEL_HEIGHT), 3 * 16, 3)
    rows = json.loads(scores.read_text())["cars"]
    lfn = make_renderer(tiny_lfn(len(train)), "cpu", "fp32", "eager")
    for row_index, (car, row) in enumerate(zip(train, rows, strict=True)):
        with np.load(tiny_set / f"{car}.npz") as z:
            truth = z["rgb"][z["split"] == "test"][1]
            mask = z["mask"][z["split"] == "test"][1]
            pose = z["cam2world"][z["split"] == "test"][1]
        top, left = compare_views.crop_box(mask, 16)
        shown = figure[row_index * (16 + compare_views.LABEL_HEIGHT) + compare_views.LABEL_HEIGHT:][:16, :16]
        assert np.array_equal(shown, truth[top:top + 16, left:left + 16])  # the data set's own pixels
        lfn.set_latent(tiny_lfn(len(train)).latents.weight[row_index])
        image = lfn.render(torch.from_numpy(pose), RES).clamp(0, 1)
        assert row["car_id"] == car
        assert row["lfn_psnr"] == pytest.approx(psnr(image, torch.from_numpy(truth).float() / 255), abs=1e-4)
        assert np.isfinite(row["volumetric_psnr"]) and np.isfinite(row["volumetric_crop_psnr"])


def test_a_car_the_checkpoint_did_not_train_on_or_a_crop_too_big_is_one_line(tiny_set, tmp_path, capsys):
    lfn_path, volumetric_path, _ = checkpoints(tiny_set, tmp_path)
    manifest = json.loads((tiny_set / "manifest.json").read_text())
    held_out = next(car["id"] for car in manifest["cars"] if car["split"] == "test")
    common = ["--data", str(tiny_set), "--ckpt", str(lfn_path), "--volumetric", str(volumetric_path),
              "--res", str(RES), "--out", str(tmp_path / "f.png"), "--device", "cpu"]
    assert compare_views.main([*common, "--cars", held_out, "--crop", "16"]) == 1
    assert capsys.readouterr().err == f"error: --cars: {held_out} is not a training car of this checkpoint\n"
    with pytest.raises(SystemExit) as exit_info:
        compare_views.main([*common, "--crop", "99"])
    assert exit_info.value.code == 2 and capsys.readouterr().err.count("\n") == 1
    assert compare_views.main([*common, "--cars", "torcs-no-such-car", "--crop", "16"]) == 1
    assert "torcs-no-such-car not among the cars" in capsys.readouterr().err
    assert not (tmp_path / "f.png").exists()
