"""tools.evaluate on a tiny analytic data set: every car scored, rows and summaries per source
(real / procedural), one-split data sets, data sets made elsewhere, and missing keys."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import engine.evaluation
from engine.cardata import CarSource, car_source
from engine.evaluation import INPUT_VIEW, evaluate
from engine.metrics import psnr
from models.checkpoint import load_checkpoint, save_checkpoint
from models.encoder import CarEncoder, EncoderConfig, encoder_path, network_fingerprint, save_encoder
from models.fitting import MIRROR_WEIGHT
from models.renderer import make_renderer
from tests.conftest import TINY, tiny_lfn
from tests.synthetic_cars import write_synthetic_dataset
from tools.evaluate import main, source_table

CPU = torch.device("cpu")
TRAIN_IDS = [f"sphere{c:03d}" for c in range(4)]  # write_synthetic_dataset(cars=6, test_cars=2)
REAL_IDS = {"sphere000", "sphere001", "sphere004"}  # two training cars, one held out


def rewrite_manifest(data: Path, change) -> None:
    manifest = json.loads((data / "manifest.json").read_text())
    for car in manifest["cars"]:
        change(car)
    (data / "manifest.json").write_text(json.dumps(manifest))


def mark_real(car: dict) -> None:
    if car["id"] in REAL_IDS:
        car["source"] = f"torcs:{car['id']}"


@pytest.fixture
def data(tmp_path) -> Path:
    out = write_synthetic_dataset(tmp_path / "cars", cars=6, views=6, test_views=2, test_cars=2)
    rewrite_manifest(out, mark_real)
    return out


@pytest.fixture
def ckpt_path(tmp_path) -> Path:
    path = tmp_path / "tiny.pt"
    save_checkpoint(tiny_lfn(num_instances=len(TRAIN_IDS)), TRAIN_IDS,
                    {"steps": 0, "dataset": "cars", "metrics": {}}, path)
    return path


def test_every_car_gets_a_row_and_each_source_a_summary(data, ckpt_path):
    ckpt = load_checkpoint(ckpt_path)
    result = evaluate(ckpt, data, CPU, fit_steps=2)
    rows = {r.car_id: r for r in result.cars}
    assert list(rows) == [*TRAIN_IDS, "sphere004", "sphere005"]
    for car_id, row in rows.items():
        assert row.source == (CarSource.REAL if car_id in REAL_IDS else CarSource.PROCEDURAL)
        assert row.views_scored == 2
        assert (row.fit_seconds is not None) == (row.split == "test")
        assert (row.input_view_psnr is not None) == (row.split == "test")
    assert [r.split for r in result.cars] == ["train"] * 4 + ["test"] * 2

    # a training car's row is its latent's mean PSNR over its two held-out views
    with np.load(data / "sphere002.npz") as z:
        rgb, poses, split = torch.from_numpy(z["rgb"]), torch.from_numpy(z["cam2world"]), z["split"]
    renderer = make_renderer(ckpt.model, CPU, "fp32", "eager", bounded=False)  # scored on every ray
    renderer.set_latent(ckpt.latents[2])
    expected = np.mean([psnr(renderer.render(poses[v], 16), rgb[v].float() / 255)
                        for v in np.flatnonzero(split == "test")])
    assert rows["sphere002"].psnr == pytest.approx(expected, abs=1e-4)

    real = result.summary("heldout_views", CarSource.REAL)
    assert (real.cars, real.views) == (2, 4)
    assert real.psnr == pytest.approx(np.mean([rows["sphere000"].psnr, rows["sphere001"].psnr]))
    assert result.summary("single_image", CarSource.PROCEDURAL).psnr == rows["sphere005"].psnr
    overall = result.summary("heldout_views")  # every car has two views: a plain mean
    assert overall.psnr == pytest.approx(np.mean([rows[i].psnr for i in TRAIN_IDS]))

    report = json.loads(json.dumps(result.to_json()))
    assert set(report["per_source"]) == {"real", "procedural", "all"}
    assert report["per_source"]["real"]["single_image"]["cars"] == 1
    assert report["psnr_heldout_views"] == pytest.approx(overall.psnr)
    assert report["single_image_cars"] == 2 and report["limits"] is None
    assert {r["car_id"]: r["source"] for r in report["cars"]}["sphere004"] == "real"


def test_a_limited_run_says_so(data, ckpt_path):
    result = evaluate(load_checkpoint(ckpt_path), data, CPU, fit_steps=1, max_cars=1, max_views=1)
    assert [(r.car_id, r.views_scored) for r in result.cars] == [("sphere000", 1), ("sphere004", 1)]
    assert result.to_json()["limits"] == {"max_cars": 1, "max_views": 1}


@pytest.mark.parametrize("only", ["test", "train"])
def test_a_data_set_with_one_split_scores_that_split_and_notes_the_other(data, ckpt_path, only):
    def move(car: dict) -> None:
        car["split"] = only

    rewrite_manifest(data, move)
    result = evaluate(load_checkpoint(ckpt_path), data, CPU, fit_steps=1, max_views=1)
    report = result.to_json()
    scored, absent = ("single_image", "heldout_views") if only == "test" else (
        "heldout_views", "single_image")
    assert report[f"psnr_{absent}"] is None and report[f"psnr_{scored}"] > 0
    assert any(f"{absent} metrics absent" in note for note in result.notes)
    all_row = next(row for row in source_table(result).splitlines() if row.startswith("all "))
    assert "—" in all_row and "dB" in all_row
    if only == "test":
        assert len(result.cars) == 6
    else:  # the two held-out cars' ids are not in the checkpoint
        assert len(result.cars) == 4 and any("2 training cars" in n for n in result.notes)


def test_training_cars_without_a_code_are_noted_and_not_loaded(data, tmp_path, monkeypatch):
    path = tmp_path / "two.pt"  # a checkpoint trained on two of the four training cars
    save_checkpoint(tiny_lfn(num_instances=2), ["sphere003", "sphere001"],
                    {"steps": 0, "dataset": "cars", "metrics": {}}, path)
    loaded, load_cars = [], engine.evaluation.load_cars

    def recording_load_cars(data_dir, split, **kwargs):
        cars = load_cars(data_dir, split, **kwargs)
        loaded.append((split, list(cars.ids)))
        return cars

    monkeypatch.setattr(engine.evaluation, "load_cars", recording_load_cars)
    result = evaluate(load_checkpoint(path), data, CPU, fit_steps=1, max_views=1)
    assert loaded == [("train", ["sphere001", "sphere003"]), ("test", ["sphere004", "sphere005"])]
    assert [r.car_id for r in result.cars if r.split == "train"] == ["sphere001", "sphere003"]
    assert "2 training cars are not in the checkpoint, not scored (first: sphere000)" in result.notes


@pytest.mark.parametrize("task", ["heldout-views", "single-image"])
def test_one_task_is_scored_alone_and_the_other_noted(data, ckpt_path, tmp_path, task, capsys):
    out = tmp_path / "eval.json"
    main(["--ckpt", str(ckpt_path), "--data", str(data), "--fit-steps", "1", "--device", "cpu",
          "--max-views", "1", "--tasks", task, "--json", str(out)])
    report = json.loads(out.read_text())
    asked, other = ("heldout_views", "single_image")[:: 1 if task == "heldout-views" else -1]
    assert report[f"psnr_{asked}"] > 0 and report[f"psnr_{other}"] is None
    assert {r["split"] for r in report["cars"]} == {"train" if task == "heldout-views" else "test"}
    assert f"{other} not asked for: its metrics absent" in report["notes"]
    with pytest.raises(SystemExit) as stop:
        main(["--ckpt", str(ckpt_path), "--data", str(data), "--tasks", task, "--write-metrics"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: --write-metrics stores every headline metric: not with --tasks naming one")


def test_the_command_prints_a_table_per_source_and_stores_metrics(data, ckpt_path, tmp_path,
                                                                  capsys):
    out = tmp_path / "eval.json"
    main(["--ckpt", str(ckpt_path), "--data", str(data), "--fit-steps", "1", "--device", "cpu",
          "--json", str(out), "--write-metrics"])
    table = capsys.readouterr().out.rsplit("}\n", 1)[1].splitlines()
    assert [line.split()[0] for line in table[2:]] == ["real", "procedural", "all"]
    assert table[-1].split()[-3:] == ["4", "+", "2"] and table[2].split()[-3:] == ["2", "+", "1"]
    report = json.loads(out.read_text())
    assert len(report["cars"]) == 6
    metrics = load_checkpoint(ckpt_path).meta["metrics"]
    assert metrics["psnr_single_image"] == pytest.approx(report["psnr_single_image"], abs=1e-4)
    assert metrics["per_source"]["real"]["ssim_heldout_views"] == pytest.approx(
        report["per_source"]["real"]["heldout_views"]["ssim"], abs=1e-4)
    assert set(metrics["per_source"]["procedural"]) == {
        "psnr_heldout_views", "ssim_heldout_views", "psnr_single_image", "ssim_single_image"}


def test_a_data_set_made_elsewhere_needs_only_the_documented_keys(data, ckpt_path):
    def strip(car: dict) -> None:
        for key in set(car) - {"id", "split"}:
            del car[key]

    rewrite_manifest(data, strip)
    for path in data.glob("*.npz"):
        with np.load(path) as z:
            kept = {k: z[k] for k in ("rgb", "cam2world", "intrinsics", "split")}
        np.savez(path, **kept)
    result = evaluate(load_checkpoint(ckpt_path), data, CPU, fit_steps=1, max_views=1)
    assert len(result.cars) == 6 and {r.source for r in result.cars} == {CarSource.OTHER}


def test_a_missing_key_is_one_error_naming_the_file_and_the_key(data, ckpt_path):
    path = data / "sphere001.npz"
    with np.load(path) as z:
        kept = {k: z[k] for k in z.files if k != "cam2world"}
    np.savez(path, **kept)
    with pytest.raises(ValueError, match=r"sphere001\.npz: missing key 'cam2world'"):
        evaluate(load_checkpoint(ckpt_path), data, CPU, fit_steps=1)


def test_a_manifest_car_without_a_split_is_named(data, ckpt_path):
    def drop_split(car: dict) -> None:
        if car["id"] == "sphere003":
            del car["split"]

    rewrite_manifest(data, drop_split)
    with pytest.raises(ValueError, match=r"manifest\.json, car sphere003: missing key 'split'"):
        evaluate(load_checkpoint(ckpt_path), data, CPU, fit_steps=1)


@pytest.mark.parametrize("entry, source", [
    ({"id": "torcs-p406-paint2", "source": "torcs:p406"}, CarSource.REAL),
    ({"id": "proc-0-0003", "source": "procedural:3"}, CarSource.PROCEDURAL),
    ({"id": "proc2-0-0003", "source": "procedural:v2:3"}, CarSource.PROCEDURAL),
    ({"id": "sumo-minibus-citrus", "source": "sumo:car-minibus-citrus"}, CarSource.REAL),
    ({"id": "fg-camaro-skin1", "source": "flightgear:camaroblack"}, CarSource.REAL),
    ({"id": "mycar", "source": "real"}, CarSource.REAL),
    ({"id": "torcs-155-DTM"}, CarSource.REAL),  # data sets without the field: the id's prefix
    ({"id": "proc-0-0000"}, CarSource.PROCEDURAL),
    ({"id": "scan-17"}, CarSource.OTHER),
    ({"id": "torcs-x", "source": "photo:17"}, CarSource.OTHER),  # the field, when there, decides
])
def test_car_source(entry, source):
    assert car_source(entry) is source


def test_real_cars_of_several_origins_get_a_summary_each(data, ckpt_path):
    def from_sumo(car: dict) -> None:
        if car["id"] == "sphere001":
            car["source"] = "sumo:car-normal-citrus"

    rewrite_manifest(data, from_sumo)
    result = evaluate(load_checkpoint(ckpt_path), data, CPU, fit_steps=1, max_views=1)
    rows = {r.car_id: r for r in result.cars}
    assert rows["sphere001"].origin == "sumo" and rows["sphere001"].source is CarSource.REAL
    assert result.origins == ["procedural", "sumo", "torcs"]
    torcs = result.summary("heldout_views", origin="torcs")
    assert torcs.cars == 1 and torcs.psnr == rows["sphere000"].psnr
    assert result.summary("heldout_views", CarSource.REAL).cars == 2  # both real origins
    report = result.to_json()
    assert report["per_origin"]["sumo"]["single_image"] is None
    assert report["per_origin"]["torcs"]["single_image"]["cars"] == 1  # sphere004
    table = source_table(result).splitlines()
    assert [line.split()[0] for line in table[2:8]] == [
        "real", "procedural", "all", "procedural", "sumo", "torcs"]
    assert table[8].startswith("limited run")


def test_one_origin_per_source_adds_no_origin_rows(data, ckpt_path):
    result = evaluate(load_checkpoint(ckpt_path), data, CPU, fit_steps=1, max_views=1)
    assert result.origins == ["procedural", "torcs"]
    table = source_table(result).splitlines()
    assert [line.split()[0] for line in table[2:]] == ["real", "procedural", "all", "limited"]


def test_views_of_another_resolution_are_refused_unless_asked_for(data, tmp_path, capsys):
    path = tmp_path / "trained_at_8.pt"
    save_checkpoint(tiny_lfn(num_instances=len(TRAIN_IDS)), TRAIN_IDS,
                    {"steps": 0, "dataset": "cars", "metrics": {}, "resolution": 8}, path)
    with pytest.raises(ValueError, match="--any-resolution"):
        evaluate(load_checkpoint(path), data, CPU, fit_steps=1, max_views=1)
    result = evaluate(load_checkpoint(path), data, CPU, fit_steps=1, max_views=1,
                      any_resolution=True)
    assert len(result.cars) == 6
    assert any("trained on 8² px views" in note for note in result.notes)
    assert main(["--ckpt", str(path), "--data", str(data), "--max-views", "1"]) == 1
    assert "--any-resolution" in capsys.readouterr().err
    with pytest.raises(SystemExit) as rejected:
        main(["--ckpt", str(path), "--data", str(data), "--any-resolution", "--write-metrics"])
    assert rejected.value.code == 2


def test_single_image_fits_can_start_from_the_encoders_code(data, ckpt_path, tmp_path, monkeypatch,
                                                           capsys):
    model = load_checkpoint(ckpt_path).model
    torch.manual_seed(0)
    encoder = CarEncoder(EncoderConfig(latent_dim=TINY["latent_dim"], input_res=32, channels=(8, 16),
                                       hidden=32, azimuth_bins=24)).eval()
    starts, real_fit = [], engine.evaluation.fit_latent

    def fit_and_note_start(*args, init=None, **options):
        starts.append(init)
        return real_fit(*args, init=init, **options)

    monkeypatch.setattr(engine.evaluation, "fit_latent", fit_and_note_start)
    out = tmp_path / "eval.json"
    command = ["--ckpt", str(ckpt_path), "--data", str(data), "--fit-steps", "1", "--device", "cpu",
               "--fit-start", "encoder", "--json", str(out)]
    assert main(command) == 1  # no encoder beside the checkpoint yet
    assert capsys.readouterr().err.startswith("error: --fit-start encoder: no encoder beside")
    save_encoder(encoder, network_fingerprint(model), {}, encoder_path(ckpt_path))
    assert main(command) == 0 and json.loads(out.read_text())["fit_start"] == "encoder"
    with np.load(data / "sphere004.npz") as z:  # the first held-out car, its input view
        expected = encoder.encode_photo(torch.from_numpy(z["rgb"][INPUT_VIEW])).latent[0]
    assert len(starts) == 2 and torch.equal(starts[0], expected)
    starts.clear()
    main(command[:-4] + ["--json", str(out)])  # from the mean, as before
    assert starts == [None, None] and json.loads(out.read_text())["fit_start"] == "mean"


def test_the_fits_mirror_weight_is_passed_on_and_recorded(data, ckpt_path, tmp_path, monkeypatch):
    weights, real_fit = [], engine.evaluation.fit_latent

    def fit_and_note_weight(*args, mirror_weight, **options):
        weights.append(mirror_weight)
        return real_fit(*args, mirror_weight=mirror_weight, **options)

    monkeypatch.setattr(engine.evaluation, "fit_latent", fit_and_note_weight)
    out = tmp_path / "eval.json"
    command = ["--ckpt", str(ckpt_path), "--data", str(data), "--fit-steps", "1", "--device", "cpu",
               "--json", str(out)]
    assert main(command) == 0
    assert weights == [MIRROR_WEIGHT] * 2
    assert json.loads(out.read_text())["fit_mirror_weight"] == MIRROR_WEIGHT
    weights.clear()
    assert main(command + ["--mirror-weight", "0"]) == 0
    assert weights == [0.0, 0.0] and json.loads(out.read_text())["fit_mirror_weight"] == 0.0
    with pytest.raises(SystemExit) as rejected:
        main(command + ["--mirror-weight", "-1"])
    assert rejected.value.code == 2


def test_evaluation_scores_the_refined_cars(data, ckpt_path):
    ckpt = load_checkpoint(ckpt_path)
    plain = evaluate(ckpt, data, CPU, fit_steps=3, modulation_steps=0)
    refined = evaluate(ckpt, data, CPU, fit_steps=3, modulation_steps=5)
    assert refined.to_json()["fit_modulation_steps"] == 5
    before = {r.car_id: r.psnr for r in plain.cars if r.split == "test"}
    after = {r.car_id: r.psnr for r in refined.cars if r.split == "test"}
    assert before.keys() == after.keys() and before != after
    # training cars are scored with their own latents either way
    assert [r for r in plain.cars if r.split == "train"] == [r for r in refined.cars if r.split == "train"]


def test_the_cli_refuses_modulations_of_a_volumetric_model(data, tiny_volumetric_ckpt, capsys):
    assert main(["--ckpt", str(tiny_volumetric_ckpt), "--data", str(data), "--device", "cpu",
                 "--modulation-steps", "5"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --modulation-steps refines an LFN's")
    with pytest.raises(SystemExit) as stop:
        main(["--ckpt", str(tiny_volumetric_ckpt), "--data", str(data), "--modulation-steps", "-1"])
    assert stop.value.code == 2
