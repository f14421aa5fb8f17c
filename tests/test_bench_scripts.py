"""The GPU-only bench scripts on a machine without CUDA: they import, say why they stop, and
their CPU-side helpers work."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench import chaos, fit_speed, fit_step, frame_scripts, photo_first_frame, soak, thread_frames
from bench.depth_skip import TILE, saturated_share
from engine.cli import OneLineParser
from models.fitting import MIRROR_WEIGHT

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the answer without CUDA")
@pytest.mark.parametrize("script", ["frame_path.py", "interop_paths.py", "depth_skip.py", "gpu_check.py"])
def test_gpu_scripts_stop_with_one_line_without_cuda(script):
    result = subprocess.run([sys.executable, str(ROOT / "bench" / script)], capture_output=True,
                            text=True, timeout=120)
    assert (result.returncode, result.stdout, result.stderr) == (
        2, "no CUDA device: this script runs on the GPU machine\n", "")


def test_saturated_share_counts_tiles_whose_colors_all_saturated():
    color = torch.full((4 * TILE + 5, 3), 1.0)  # white: sigmoid' exactly 0
    color[TILE + 7, 1] = 0.5  # one live ray makes its tile live
    color[3 * TILE:4 * TILE, 0] = 0.0  # black saturates too
    equations = torch.cat([color, torch.zeros(color.shape[0], 2)], 1)
    assert saturated_share(equations) == pytest.approx(4 / 5)  # the partial fifth tile is white too
    equations[-1, 2] = 0.9
    assert saturated_share(equations) == pytest.approx(3 / 5)


def test_frame_path_times_a_non_square_viewer_frame_on_a_cpu(tiny_ckpt, tmp_path):
    out = tmp_path / "frame_path.json"
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "frame_path.py"), "--device", "cpu",
                             "--ckpt", str(tiny_ckpt), "--res", "24x16", "--json", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [row["variant"] for row in rows] == ["finish", "upload + finish", "render", "latency",
                                               "throughput"]
    for row in rows:
        assert (row["res"], row["width"], row["height"]) == ("24x16", 24, 16)
        assert row["texture_path"] == "cpu-copy" and row["median_ms"] > 0
    assert "24×16" in result.stdout  # the ms table's column


def test_fit_step_times_the_eager_step_on_a_cpu(tiny_ckpt, tmp_path):
    out = tmp_path / "fit_step.json"
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "fit_step.py"), "--device", "cpu",
                             "--ckpt", str(tiny_ckpt), "--rays", "64", "--steps", "4", "--warmup", "1",
                             "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert (data["rays_per_step"], data["timed_steps"], data["timer"]) == (64, 4, "perf_counter")
    rows = data["rows"]
    assert [(row["camera"], row["mirror_weight"], row["step"]) for row in rows] == [
        (camera, weight, "eager") for camera in ("given", "estimated") for weight in (0.0, MIRROR_WEIGHT)]
    for row in rows:  # no graph on a CPU, so nothing to compare with
        assert row["step_ms_median"] > 0 and "speedup_vs_eager" not in row
        assert row["fit_300_s_at_median"] == pytest.approx(0.3 * row["step_ms_median"])


def test_thread_frames_times_each_malloc_setting_in_its_own_process(tiny_ckpt, tmp_path):
    out = tmp_path / "thread_frames.json"
    shutil.copy(tiny_ckpt, tmp_path / "mine.pt")  # named relative to the user's folder
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "thread_frames.py"), "--ckpt",
                             "mine.pt", "--res", "16", "--frames", "2", "--precision", "fp32",
                             "--json", str(out)], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [row["setting"] for row in rows] == ["glibc", "fixed, top pad 0.125 MiB", "fixed, top pad 8 MiB"]
    for row in rows:
        assert row["precision"] == "fp32" and len(row["ms_all"]) == 2 and row["ms_median"] > 0
        assert row["rss_mb_after"] > 0


def test_bf16_memory_measures_each_setting_at_rest_in_its_own_process(tiny_ckpt, tiny_volumetric_ckpt,
                                                                        tmp_path):
    out = tmp_path / "bf16_memory.json"
    script = str(ROOT / "bench" / "bf16_memory.py")
    result = subprocess.run([sys.executable, script, "--ckpt", str(tiny_ckpt), "--volumetric",
                             str(tiny_volumetric_ckpt), "--sizes", "8", "12", "--latents", "1",
                             "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [(row["precision"], row["rows_bucketed"]) for row in rows] == [("fp32", True), ("bf16", True),
                                                                          ("bf16", False)]
    for row in rows:
        assert list(row["rest_mb"]) == ["renderers built", "after the frames", "thread ended"]
        assert all(mb > 0 for mb in row["rest_mb"].values())
    missing = subprocess.run([sys.executable, script, "--ckpt", str(tmp_path / "none.pt")],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1 and missing.stderr.strip().startswith("error:")
    assert len(missing.stderr.strip().splitlines()) == 1


def test_occupancy_march_compares_the_accelerated_frames_with_the_dense_ones(tiny_volumetric_ckpt, tmp_path):
    out = tmp_path / "occupancy.json"
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "occupancy_march.py"), "--device", "cpu",
                             "--volumetric", str(tiny_volumetric_ckpt), "--res", "16", "--frames", "2",
                             "--occupancy-res", "8", "--json", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    [row] = json.loads(out.read_text())["rows"]
    assert (row["res"], row["occupancy_res"]) == ("16", 8) and row["psnr_vs_dense"] >= 40.0
    assert 0 < row["evals_per_ray"] <= row["evals_per_hit_ray"] <= 196  # rays that miss take fewer
    assert row["grid_build_evaluations"] > 0 and row["march_rounds"] >= 1 and row["ms_median"] > 0


def test_march_phases_times_and_counts_each_phase_of_the_march(tiny_volumetric_ckpt, tmp_path):
    out = tmp_path / "phases.json"
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "march_phases.py"), "--device", "cpu",
                             "--volumetric", str(tiny_volumetric_ckpt), "--res", "16", "--occupancy-res", "8",
                             "--rounds", "3", "5", "--repeats", "2", "--json", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    [row] = json.loads(out.read_text())["rows"]
    phases = {phase["phase"]: phase for phase in row["phases"]}
    assert {"coarse lookup", "fine lookup", "sample list", "march setup"} <= set(phases)
    for stage in ("select", "network", "composite"):  # every round's three stages, each timed and counted
        assert {f"round {k} {stage}" for k in range(1, row["rounds"] + 1)} <= set(phases)
    assert row["rounds"] >= 1 and row["round_sizes"] == [3, 5]
    assert all(phase["ms_median"] >= 0 and phase["ops"] > 0 for phase in phases.values())
    assert phases["round 1 network"]["host_syncs"] == 0 and phases["round 1 select"]["host_syncs"] == 2
    assert row["ops"] == sum(phase["ops"] for phase in phases.values()) and row["evaluations"] > 0
    assert row["host_syncs"] >= 2 * row["rounds"] and row["peak_mem_mb"] > 0


def test_march_phases_times_the_static_marcher_beside_the_dynamic_one(tiny_volumetric_ckpt, tmp_path):
    out = tmp_path / "phases.json"
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "march_phases.py"), "--device", "cpu",
                             "--volumetric", str(tiny_volumetric_ckpt), "--res", "16", "--occupancy-res", "8",
                             "--repeats", "2", "--marcher", "dynamic", "static", "graph", "--json", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "graph: skipped (CUDA graphs need a CUDA device)" in result.stdout
    dynamic, static = json.loads(out.read_text())["rows"]
    assert (dynamic["marcher"], static["marcher"]) == ("dynamic", "static")
    assert static["host_syncs"] == 0 < dynamic["host_syncs"] and static["fallbacks"] == 0
    assert static["evaluations_equal_dynamic"] and static["color_max_diff_vs_dynamic"] == 0.0
    assert static["evaluations"] == dynamic["evaluations"] and static["static_rounds"] > dynamic["rounds"]
    phases = {phase["phase"] for phase in static["phases"]}
    assert {f"round {k} network" for k in range(1, static["static_rounds"] + 1)} | {"read demand"} <= phases


class Parsed(Exception):
    """Stops an entry point right after its command line is parsed, with what argparse made of it."""

    def __init__(self, namespace):
        super().__init__()
        self.namespace = namespace


# Each entry point's main on an empty command line (frame_scripts.run: the frame scripts' main).
PARSING_MAINS = {
    "thread_frames": thread_frames.main,
    "fit_step": fit_step.main,
    "fit_speed": fit_speed.main,
    "frame_scripts": lambda argv: frame_scripts.run("a frame script", None, argv),
    "chaos": chaos.main,
    "photo_first_frame": photo_first_frame.main,
    "soak": soak.main,
}


@pytest.mark.parametrize("name", list(PARSING_MAINS))
def test_the_default_checkpoint_is_the_repositorys_from_any_folder(name, tmp_path, monkeypatch):
    parse = OneLineParser.parse_args

    def parse_and_stop(self, *args, **kwargs):
        raise Parsed(parse(self, *args, **kwargs))

    monkeypatch.setattr(OneLineParser, "parse_args", parse_and_stop)
    monkeypatch.chdir(tmp_path)  # another folder: a default relative to it names no file
    with pytest.raises(Parsed) as parsed:
        PARSING_MAINS[name]([])
    ckpt = parsed.value.namespace.ckpt
    assert ckpt.is_absolute() and ckpt == ROOT / "checkpoints" / "cars.pt" and ckpt.is_file(), ckpt
