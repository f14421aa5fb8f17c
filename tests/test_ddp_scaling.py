"""The 1-vs-N-GPU training comparison, run end to end on CPUs (2 gloo processes) at a tiny size."""

import json

import pytest
from PIL import Image

from bench.ddp_scaling import main
from tests.synthetic_cars import write_synthetic_dataset
from tests.test_train import TINY_ARGS


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("cars"), cars=4, views=8, res=16)


def test_one_and_two_processes_train_score_and_chart(data, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    tiny = [a for a in TINY_ARGS if a not in ("--device", "cpu")]
    result_json, chart, views = tmp_path / "ddp.json", tmp_path / "ddp.png", tmp_path / "views.png"
    main(["--data", str(data), "--minutes", "0.04", "--gpus", "2", "--out", str(tmp_path / "runs"),
          "--json", str(result_json), "--chart", str(chart), "--views-png", str(views),
          "--eval-cars", "2", "--eval-views", "1", "--fit-steps", "5", "--device", "cpu",
          "--", *tiny, "--eval-every", "20", "--save-every", "1000"])
    result = json.loads(result_json.read_text())
    one, two = result["runs"]["1"], result["runs"]["2"]
    assert (one["world"], two["world"]) == (1, 2)
    assert one["checkpoint_meta"]["world_size"] == 1 and two["checkpoint_meta"]["world_size"] == 2
    assert result["scaling_efficiency"] == pytest.approx(
        two["rays_per_s_median"] / (2 * one["rays_per_s_median"]))
    assert two["replica_checks"] and all(c["latent_replica_max_abs_diff"] == 0
                                         for c in two["replica_checks"])
    assert not one["replica_checks"]
    for run in (one, two):
        assert run["curve"][-1]["seconds"] >= 0.04 * 60
        assert 5 < run["evaluation"]["psnr_heldout_views"] < 60
    assert Image.open(chart).size[0] > 600
    assert Image.open(views).size == (3 * 16, 2 * 16)  # truth | 1 GPU | 2 GPUs, per car


def test_an_earlier_result_is_charted_without_training(tmp_path):
    curve = [{"step": s, "seconds": s / 10, "loss": 1 / s, "psnr": 10 + s / 10} for s in range(1, 30)]
    run = {"world": 1, "rays_per_s_median": 1e6, "curve": curve,
           "heldout": [{"step": 20, "seconds": 2.0, "heldout_psnr": 12.0}],
           "evaluation": {"psnr_heldout_views": 12.0}}
    result = {"gpus": 2, "scaling_efficiency": 0.9, "device_name": "test", "date": "today",
              "runs": {"1": run, "2": run | {"world": 2, "rays_per_s_median": 1.8e6}}}
    source = tmp_path / "r.json"
    source.write_text(json.dumps(result))
    main(["--from", str(source), "--chart", str(tmp_path / "c.png")])
    assert (tmp_path / "c.png").stat().st_size > 10_000


@pytest.mark.parametrize("argv", [[], ["--data", "cars", "--gpus", "1"]])
def test_a_bad_command_line_is_a_usage_error(argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
