"""Training on a tiny analytic data set: the loss falls, resume continues, DDP runs on gloo."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from models.checkpoint import load_checkpoint
from tests.synthetic_cars import write_synthetic_dataset
from tools.train import load_latest_state, parse_args, train

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
    first = load_latest_state(out)
    assert first["step"] == 40
    train(parse_args([*common, "--steps", "60", "--resume"]))
    state = load_latest_state(out)
    assert state["step"] == 60
    assert state["optimizer"]["state"][0]["step"] == 60  # Adam's own counter continued too


def test_a_corrupt_latest_state_falls_back_to_the_previous(data, tmp_path):
    out = tmp_path / "run"
    train(parse_args(["--data", str(data), "--out", str(out), "--steps", "40", "--save-every",
                      "20", "--eval-every", "1000", *TINY_ARGS]))
    newest = sorted(out.glob("state_*.pt"))[-1]
    newest.write_bytes(newest.read_bytes()[:1000])
    assert load_latest_state(out)["step"] == 20


def test_ddp_with_two_gloo_processes(data, tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
         "--standalone", "-m", "tools.train", "--data", str(data), "--out", str(out),
         "--steps", "30", "--save-every", "30", "--eval-every", "1000", *TINY_ARGS],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert rows[-1]["world"] == 2
    ckpt = load_checkpoint(out / "model.pt")
    assert torch.isfinite(ckpt.latents).all()
