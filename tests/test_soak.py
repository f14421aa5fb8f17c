"""bench/soak.py: the frame schedule, a short soak through the CLI, and a leak it must catch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from bench import soak
from engine.frame import FrameRenderer
from engine.latents import BlendLatent, InstanceLatent

ROOT = Path(__file__).resolve().parents[1]


def test_every_frame_moves_the_camera_and_changes_the_latent():
    instances = 3
    requests = [soak.soak_request(k, instances, 32) for k in range(instances * soak.MIX_FRAMES + 1)]
    for before, after in zip(requests, requests[1:], strict=False):
        assert before.orbit != after.orbit and before.latent != after.latent
    latents = [r.latent for r in requests]
    assert {s.index for s in latents if isinstance(s, InstanceLatent)} == set(range(instances))
    assert sum(isinstance(s, BlendLatent) for s in latents) == instances * (soak.MIX_FRAMES - 1)
    assert latents[-1] == InstanceLatent(0)  # the cycle wraps to the first instance
    elevations = [soak.soak_request(k, 1, 32).orbit.elevation for k in range(soak.ELEVATION_PERIOD)]
    assert min(elevations) == soak.ELEVATION_RANGE[0] and max(elevations) > 0.99 * soak.ELEVATION_RANGE[1]


def test_a_300_frame_soak_keeps_memory_flat(tiny_ckpt, tmp_path):
    out = tmp_path / "soak.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--ckpt", str(tiny_ckpt), "--frames", "300", "--res", "32",
         "--json", str(out), "--quiet"],
        # One thread: a 32² frame of the tiny net is too small to share, and two threads contending with
        # other processes for the cores slow it down tenfold.
        cwd=ROOT, capture_output=True, text=True, timeout=120, env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("\n") == 1 and result.stdout.startswith("soak: 300 frames at 32x32")
    report = json.loads(out.read_text())
    assert report["passed"] and report["rss_growth"] < soak.GROWTH_LIMIT
    assert report["frames"] == 300 and report["warmup"] == soak.WARMUP_FRAMES
    assert report["readings"][0]["frame"] == 0 and report["readings"][-1]["frame"] == 300


class LeakyFrameRenderer(FrameRenderer):
    """Keeps 512 KB alive per frame: the kind of growth the soak exists to catch."""

    kept: list[torch.Tensor] = []

    def render(self, request):
        self.kept.append(torch.ones(1 << 17))
        return super().render(request)


def test_a_leak_fails_the_soak(tiny_ckpt, monkeypatch, capsys):
    monkeypatch.setattr(soak, "FrameRenderer", LeakyFrameRenderer)
    monkeypatch.setattr(soak, "SAMPLES", 2)  # a reading collects garbage: slow in pytest's big heap
    code = soak.main(["--ckpt", str(tiny_ckpt), "--frames", "60", "--warmup", "5", "--res", "16", "--quiet"])
    LeakyFrameRenderer.kept.clear()
    line = capsys.readouterr().out.strip()
    assert code == 1 and "FAIL: growth >= 2 %" in line, line


def test_a_bad_checkpoint_is_one_error_line(tmp_path, capsys):
    assert soak.main(["--ckpt", str(tmp_path / "none.pt")]) == 1
    assert capsys.readouterr().err == f"error: checkpoint {tmp_path / 'none.pt'}: no such file\n"
