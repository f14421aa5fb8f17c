"""Training on a tiny analytic data set: the loss falls, resume continues, DDP runs on gloo."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from models.checkpoint import load_checkpoint
from models.lfn import LFNConfig, LightFieldNetwork
from tests.synthetic_cars import write_synthetic_dataset
from tools.train import learning_rate_scale, load_latest_state, parse_args, replica_check, train

ROOT = Path(__file__).resolve().parents[1]
TINY_ARGS = ["--objects-per-step", "3", "--rays-per-object", "256", "--width", "32",
             "--latent-dim", "16", "--hidden-layers", "3", "--eval-cars", "1", "--eval-views", "1",
             "--log-every", "10", "--lr", "2e-3", "--device", "cpu"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_synthetic_dataset(tmp_path_factory.mktemp("cars"), cars=4, views=8, res=16)


def losses(run: Path) -> list[float]:
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


def test_a_few_steps_lower_the_loss(data, tmp_path):
    out = tmp_path / "run"
    final = train(parse_args(["--data", str(data), "--out", str(out), "--steps", "150",
                              "--save-every", "150", "--eval-every", "1000", *TINY_ARGS]))
    history = losses(out)
    assert history[-1] < 0.7 * history[0]
    ckpt = load_checkpoint(final)
    assert ckpt.meta["steps"] == 150 and len(ckpt.instance_names) == 3


def test_resume_continues_from_the_saved_step(data, tmp_path):
    out = tmp_path / "run"
    common = ["--data", str(data), "--out", str(out), "--save-every", "20",
              "--eval-every", "1000", *TINY_ARGS]
    train(parse_args([*common, "--steps", "40"]))
    _, first = load_latest_state(out)
    assert first["step"] == 40
    train(parse_args([*common, "--steps", "60", "--resume"]))
    _, state = load_latest_state(out)
    assert state["step"] == 60
    assert state["optimizer"]["state"][0]["step"] == 60  # Adam's own counter continued too


def test_a_corrupt_latest_state_falls_back_to_the_previous(data, tmp_path):
    out = tmp_path / "run"
    train(parse_args(["--data", str(data), "--out", str(out), "--steps", "40", "--save-every",
                      "20", "--eval-every", "1000", *TINY_ARGS]))
    newest = sorted(out.glob("state_*.pt"))[-1]
    newest.write_bytes(newest.read_bytes()[:1000])
    assert load_latest_state(out)[1]["step"] == 20


def test_ddp_with_two_gloo_processes_stops_together_with_equal_replicas(data, tmp_path):
    # A time budget: each rank times itself, so without a shared clock the ranks could stop at
    # different steps (a hang, caught by the timeout) or decay their rates differently.
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
         "--standalone", "-m", "tools.train", "--data", str(data), "--out", str(out),
         "--minutes", "0.05", "--save-every", "1000", "--eval-every", "20", *TINY_ARGS],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["world"] for r in rows if "loss" in r][-1] == 2
    checks = [r for r in rows if "replica_max_abs_diff" in r]
    assert len(checks) >= 2
    assert all(r["replica_max_abs_diff"] == 0 and r["latent_replica_max_abs_diff"] == 0
               for r in checks)
    ckpt = load_checkpoint(out / "model.pt")
    assert ckpt.meta["replicas"] == {k: checks[-1][k] for k in ckpt.meta["replicas"]}
    assert ckpt.meta["replicas"]["cars_never_drawn"] == 0
    assert torch.isfinite(ckpt.latents).all()


def _replica_check_with_one_code_changed(rank: int, store_file: str, results) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store_file}", rank=rank, world_size=2)
    torch.manual_seed(0)
    model = LightFieldNetwork(LFNConfig(num_instances=3, latent_dim=4, width=8, hidden_layers=1))
    drawn = torch.tensor([True, False, rank == 1])
    if rank == 1:
        with torch.no_grad():
            model.latents.weight[2, 0] += 0.25  # one stale (or drifted) code on one rank
    results[rank] = replica_check(model, drawn)
    dist.destroy_process_group()


def test_replica_check_finds_a_code_that_differs_between_ranks(tmp_path):
    results = mp.Manager().dict()
    mp.spawn(_replica_check_with_one_code_changed, args=(str(tmp_path / "store"), results),
             nprocs=2)
    for rank in (0, 1):
        assert results[rank]["latent_replica_max_abs_diff"] == pytest.approx(0.25)
        assert results[rank]["replica_max_abs_diff"] == pytest.approx(0.25)
        assert results[rank]["cars_never_drawn"] == 1


def test_a_time_budget_alone_is_not_cut_short_by_a_default_step_count():
    timed = parse_args(["--data", "d", "--out", "o", "--minutes", "21"])
    assert timed.step_budget is None  # the wider run stopped at the old default 200 000 with 4 min left
    assert learning_rate_scale(timed, step=10**7, seconds=21 * 30) == pytest.approx(0.1 ** 0.5)
    assert parse_args(["--data", "d", "--out", "o"]).step_budget == 200_000
    both = parse_args(["--data", "d", "--out", "o", "--minutes", "21", "--steps", "1000"])
    assert both.step_budget == 1000
    assert learning_rate_scale(both, step=500, seconds=1.0) == pytest.approx(0.1 ** 0.5)


def test_a_state_resumes_only_with_its_ray_encoding(data, tmp_path):
    common = ["--data", str(data), "--out", str(tmp_path / "run"), "--save-every", "5",
              "--eval-every", "1000", *TINY_ARGS]
    train(parse_args([*common, "--steps", "5", "--frequencies", "2"]))
    with pytest.raises(ValueError, match="--frequencies 2 \\(now 0\\)"):
        train(parse_args([*common, "--steps", "10", "--resume"]))
    train(parse_args([*common, "--steps", "10", "--resume", "--frequencies", "2"]))
    assert load_latest_state(tmp_path / "run")[1]["step"] == 10
