"""The normal metric of tools.evaluate_depth on geometry with a known answer."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from models.cameras import orbit_pose
from models.depth import normals_from_depth
from models.renderer import frame_rays
from tools.evaluate_depth import angular_error_deg, normal_summary


def test_a_tilted_plane_is_off_by_its_tilt() -> None:
    tilt = math.radians(25.0)
    up = torch.tensor([0.0, 0.0, 1.0]).expand(40, 40, 3)
    tilted = torch.tensor([math.sin(tilt), 0.0, math.cos(tilt)]).expand(40, 40, 3)
    angles = angular_error_deg(2.0 * tilted, up)  # lengths do not matter
    assert torch.allclose(angles, torch.full_like(angles, 25.0), atol=1e-9)
    summary = normal_summary(angles.flatten())
    assert summary["normal_angle_median_deg"] == pytest.approx(25.0)
    assert summary["normal_within_10deg"] == 0.0 and summary["normal_within_20deg"] == 0.0
    assert summary["normal_within_30deg"] == 1.0
    assert angular_error_deg(up, -up).max() == pytest.approx(180.0)  # a flipped normal counts


def test_normals_of_an_exact_sphere_depth_score_near_zero() -> None:
    """Ray-traced depth of a sphere through the project's depth-to-normals operator, against the
    sphere's radial normals: only the operator's (lightest) smoothing of a curved surface remains, and a
    normal rotated by 15° about the view axis's perpendicular scores 15°."""
    res, radius = 96, 0.8
    pose = orbit_pose(40.0, 30.0)
    origins, dirs = frame_rays(pose, res, "cpu")
    b = (origins * dirs).sum(-1)
    disc = b**2 - ((origins**2).sum(-1) - radius**2)
    hit = disc > 0
    depth = torch.where(hit, -b - torch.sqrt(disc.clamp(min=0)), 0.0).view(res, res)
    points = (origins + depth.reshape(-1, 1) * dirs).view(res, res, 3)
    truth = points / radius
    normals, defined = normals_from_depth(depth, hit.view(res, res), pose, res, smoothing=3, step=1)
    # away from the silhouette, where the surface turns edge-on
    facing = -(truth * dirs.view(res, res, 3)).sum(-1) > 0.5
    use = defined & facing
    angles = angular_error_deg(normals[use], truth[use])
    assert use.sum() > 2000
    assert angles.median() < 1.0 and (angles < 3.0).all()
    # rotate the truth by 15° about an axis perpendicular to it: every pixel is off by 15°
    axis = torch.nn.functional.normalize(torch.linalg.cross(truth[use], torch.ones(3).expand(
        int(use.sum()), 3), dim=-1), dim=-1)
    angle = math.radians(15.0)
    rotated = truth[use] * math.cos(angle) + torch.linalg.cross(axis, truth[use], dim=-1) * math.sin(angle)
    assert torch.allclose(angular_error_deg(rotated, truth[use]), torch.tensor(15.0).double(),
                          atol=1e-4)


@pytest.mark.parametrize("bad", ["data", "ckpt"])
def test_bad_input_is_one_error_line_and_exit_1(bad, tmp_path, capsys) -> None:
    from tools.evaluate_depth import main

    ckpt = Path(__file__).resolve().parents[1] / "checkpoints" / "cars.pt"
    args = {"ckpt": tmp_path / "missing.pt" if bad == "ckpt" else ckpt, "data": tmp_path}
    assert main(["--ckpt", str(args["ckpt"]), "--data", str(args["data"])]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert ("missing.pt" if bad == "ckpt" else "manifest") in err[0]


def test_cars_are_picked_per_source_models_before_repaints(tmp_path) -> None:
    import json

    from tools.evaluate_depth import select_cars

    def car(id_, source, variant_of=None, split="train"):
        return {"id": id_, "source": source, "variant_of": variant_of, "split": split}

    cars = [car("torcs-a", "torcs:a"), car("torcs-a-paint1", "torcs:a", "torcs-a"),
            car("torcs-b", "torcs:b", split="test"), car("torcs-c", "torcs:c"),
            car("proc-0", "procedural:0", split="test"), car("proc-1", "procedural:1"),
            car("proc-2", "procedural:2"), car("proc-3", "procedural:3")]
    (tmp_path / "manifest.json").write_text(json.dumps({"cars": cars}))
    assert select_cars(tmp_path, 2) == {"torcs-a": "real", "torcs-c": "real",
                                        "proc-1": "procedural", "proc-2": "procedural"}


def test_stereo_scores_the_refined_depth_beside_the_gradient_depth(tmp_path) -> None:
    """--stereo adds stereo_ keys on the same pixels as the gradient depth's (the same coverage)."""
    import json

    from models.checkpoint import save_checkpoint
    from tests.conftest import tiny_lfn
    from tests.synthetic_cars import write_synthetic_dataset
    from tools.evaluate_depth import main

    data = write_synthetic_dataset(tmp_path / "cars", cars=3, views=6, test_views=2, test_cars=1, res=24)
    ckpt = tmp_path / "tiny.pt"
    save_checkpoint(tiny_lfn(num_instances=2), ["sphere000", "sphere001"],
                    {"steps": 0, "dataset": "cars", "metrics": {}}, ckpt)
    out = tmp_path / "depth.json"
    assert main(["--ckpt", str(ckpt), "--data", str(data), "--device", "cpu", "--max-views", "1",
                 "--stereo", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["views_scored"] == 2 and result["stereo"]["angles_deg"] == [20.0, 35.0]
    assert result["depth_coverage"] > 0
    for scores in (result, *result["per_source"].values()):
        assert scores["stereo_depth_coverage"] == scores["depth_coverage"]
    assert result["stereo_depth_absrel_median"] is not None


def test_cars_loaded_a_few_at_a_time_score_as_all_at_once(tmp_path, monkeypatch) -> None:
    """The cars' views are loaded CARS_PER_LOAD at a time (all 710 training cars' would not fit
    24 GB); the scores do not depend on where the loads split."""
    from models.checkpoint import save_checkpoint
    from tests.conftest import tiny_lfn
    from tests.synthetic_cars import write_synthetic_dataset
    from tools import evaluate_depth

    data = write_synthetic_dataset(tmp_path / "cars", cars=3, views=6, test_views=2, test_cars=0, res=24)
    ckpt = tmp_path / "tiny.pt"
    save_checkpoint(tiny_lfn(num_instances=3), [f"sphere00{i}" for i in range(3)],
                    {"steps": 0, "dataset": "cars", "metrics": {}}, ckpt)
    config = evaluate_depth.DepthEvaluationConfig(checkpoint=ckpt, data=data, device=torch.device("cpu"),
                                                  max_views=2)
    together = evaluate_depth.evaluate_depth(config)
    monkeypatch.setattr(evaluate_depth, "CARS_PER_LOAD", 2)  # loads of 2 and 1
    assert [car_id for _, _, car_id in evaluate_depth.training_cars(data, ["sphere002", "sphere000"])] \
        == ["sphere000", "sphere002"]  # the data set's order
    apart = evaluate_depth.evaluate_depth(config)
    assert together["views_scored"] == apart["views_scored"] == 6
    assert apart == together
