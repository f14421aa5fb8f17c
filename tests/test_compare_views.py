"""tools.compare_views: the ground truth it renders is the data set's own at the data set's size,
the scores are each network's PSNR against it, a column per network, and bad input gets one line."""

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
        lfn_score, volumetric_score = row["networks"]
        assert (lfn_score["label"], lfn_score["kind"]) == ("lfn (LFN)", "lfn")
        assert (volumetric_score["label"], volumetric_score["kind"]) == ("vol (volumetric)", "volumetric")
        expected = psnr(image, torch.from_numpy(truth).float() / 255)
        assert lfn_score["psnr"] == pytest.approx(expected, abs=1e-4)
        assert np.isfinite(volumetric_score["psnr"]) and np.isfinite(volumetric_score["crop_psnr"])


def test_two_lfns_of_one_stem_without_the_volumetric_column(tiny_set, tmp_path, capsys):
    _, _, train = checkpoints(tiny_set, tmp_path)
    first, second = tmp_path / "a" / "lfn.pt", tmp_path / "b" / "lfn.pt"
    save_checkpoint(tiny_lfn(len(train), seed=1), train, {"metrics": {}, "resolution": RES}, first)
    save_checkpoint(tiny_lfn(len(train), seed=2), train, {"metrics": {}}, second)
    out, scores = tmp_path / "figure.png", tmp_path / "scores.json"
    code = compare_views.main(["--data", str(tiny_set), "--ckpt", str(first), str(second),
                               "--volumetric", "none", "--cars", train[0], "--res", str(RES), "--crop", "16",
                               "--out", str(out), "--json", str(scores), "--device", "cpu"])
    assert code == 0
    assert Image.open(out).size == (3 * 16, 16 + compare_views.LABEL_HEIGHT)  # ground truth and two LFNs
    (row,) = json.loads(scores.read_text())["cars"]
    with np.load(tiny_set / f"{train[0]}.npz") as z:
        truth = torch.from_numpy(z["rgb"][z["split"] == "test"][0]).float() / 255
        pose = torch.from_numpy(z["cam2world"][z["split"] == "test"][0])
    expected = [("a/lfn (LFN, 24x24)", str(first), RES, 1), ("b/lfn (LFN)", str(second), None, 2)]
    for score, (label, path, trained_at, seed) in zip(row["networks"], expected, strict=True):
        assert (score["label"], score["path"], score["kind"], score["trained_resolution"]) == (
            label, path, "lfn", trained_at)
        renderer = make_renderer(tiny_lfn(len(train), seed=seed), "cpu", "fp32", "eager")
        renderer.set_latent(tiny_lfn(len(train), seed=seed).latents.weight[0])
        image = renderer.render(pose, RES).clamp(0, 1)
        assert score["psnr"] == pytest.approx(psnr(image, truth), abs=1e-4)
    printed = capsys.readouterr().out
    assert "a/lfn (LFN, 24x24)" in printed and "b/lfn (LFN)" in printed


def test_a_car_the_checkpoint_did_not_train_on_or_a_crop_too_big_is_one_line(tiny_set, tmp_path, capsys):
    lfn_path, volumetric_path, train = checkpoints(tiny_set, tmp_path)
    manifest = json.loads((tiny_set / "manifest.json").read_text())
    held_out = next(car["id"] for car in manifest["cars"] if car["split"] == "test")
    common = ["--data", str(tiny_set), "--ckpt", str(lfn_path), "--volumetric", str(volumetric_path),
              "--res", str(RES), "--out", str(tmp_path / "f.png"), "--device", "cpu"]
    assert compare_views.main([*common, "--cars", held_out, "--crop", "16"]) == 1
    assert capsys.readouterr().err == f"error: --cars: {held_out} is not a training car of {lfn_path}\n"
    fewer = tmp_path / "fewer.pt"  # a second checkpoint without the first training car
    save_checkpoint(tiny_lfn(1), [train[1]], {"metrics": {}}, fewer)
    two = ["--ckpt", str(lfn_path), str(fewer)]
    assert compare_views.main([*common, *two, "--cars", train[0], "--crop", "16"]) == 1
    assert capsys.readouterr().err == f"error: --cars: {train[0]} is not a training car of {fewer}\n"
    assert compare_views.main([*common, "--ckpt", str(lfn_path), str(lfn_path), "--crop", "16"]) == 1
    assert capsys.readouterr().err == f"error: --ckpt/--volumetric: {lfn_path} is given twice\n"
    with pytest.raises(SystemExit) as exit_info:
        compare_views.main([*common, "--crop", "99"])
    assert exit_info.value.code == 2 and capsys.readouterr().err.count("\n") == 1
    assert compare_views.main([*common, "--cars", "torcs-no-such-car", "--crop", "16"]) == 1
    assert "torcs-no-such-car not among the cars" in capsys.readouterr().err
    assert not (tmp_path / "f.png").exists()
