"""Benchmark mode on the CPU with tiny checkpoints: the result's shape, the table, the chart, the CLI."""

import json
import math
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from engine import benchmark_methods
from engine.benchmark import BenchmarkCancelled, benchmark, load_volumetric
from engine.benchmark_report import details, format_table, ms_table, plot
from engine.memory import PeakMemory
from models import renderer as renderer_module
from models.checkpoint import load_checkpoint
from models.folded_field import FoldedField
from models.renderer import OCCUPANCY_RES
from models.resolution import Resolution

MAIN = Path(__file__).resolve().parents[1] / "main.py"
TOP_KEYS = {"device": str, "torch": str, "precision": str, "date": str, "results": list, "speedup": dict}
ROW_KEYS = {"method": str, "resolution": str, "width": int, "height": int, "backend": str, "precision": str,
            "ms_median": float, "ms_p90": float, "fps": float, "evals_per_ray": int, "peak_mem_mb": float}
METHODS = {"lfn", "lfn_every_ray", "lfn_depth", "lfn_depth_summed", "volumetric", "volumetric:fused",
           "volumetric:accelerated", "lfn_frame", "lfn_frame_pipelined"}


@pytest.fixture
def checkpoints(tiny_ckpt, tiny_volumetric_ckpt):
    lfn, volumetric = load_checkpoint(tiny_ckpt), load_checkpoint(tiny_volumetric_ckpt)
    assert volumetric.model.config.samples_per_ray == 196
    return lfn, volumetric


def check_shape(result: dict) -> None:
    json.dumps(result, allow_nan=False)  # plain JSON, every number finite
    for key, kind in TOP_KEYS.items():
        assert isinstance(result[key], kind), key
    for row in result["results"]:
        for key, kind in ROW_KEYS.items():
            assert isinstance(row[key], kind), (row["method"], key)
        # lfn:<backend>, and on a GPU with shared frames the interop path beside them
        # (engine/benchmark_methods.py)
        assert row["method"] in METHODS or row["method"].startswith("lfn:") or (
            row["method"].removesuffix(":interop") in {"lfn_frame", "lfn_frame_pipelined"})
        for key in ("ms_median", "ms_p90", "fps", "width", "height", "evals_per_ray"):
            assert math.isfinite(row[key]) and row[key] > 0, (row["method"], key)
        assert row["resolution"] == str(Resolution(row["width"], row["height"]))  # "16", "48x32"
        # A render may touch no new pages (its memory already resident): growth is then 0, not less.
        assert math.isfinite(row["peak_mem_mb"]) and row["peak_mem_mb"] >= 0
        assert row["ms_p90"] >= row["ms_median"]
        assert row["fps"] == pytest.approx(1000.0 / row["ms_median"])
    for res, speedup in result["speedup"].items():
        assert res in {row["resolution"] for row in result["results"]}
        assert math.isfinite(speedup) and speedup > 0


def test_benchmark_result_table_and_chart(checkpoints, tmp_path):
    result = benchmark(*checkpoints, "cpu", "fp32", resolutions=[16, 24], frames=4, instance=-1)
    check_shape(result)
    methods = {row["method"] for row in result["results"]}
    required = {"lfn", "lfn_every_ray", "lfn:eager", "volumetric", "volumetric:accelerated", "lfn_frame",
                "lfn_frame_pipelined"}
    assert required <= methods
    rows = {(row["method"], row["resolution"]): row for row in result["results"]}
    for res in ("16", "24"):  # the bound: the viewer's row evaluates the rays that meet the unit sphere
        viewer = rows["lfn", res]
        assert 0.5 < viewer["rays_in_bound"] < 1 and viewer["psnr_vs_every_ray"] > 0
        assert "rays_in_bound" in rows["lfn:eager", res] and "psnr_vs_every_ray" not in rows["lfn:eager", res]
        assert "rays_in_bound" not in rows["lfn_every_ray", res]
    for row in result["results"]:
        if row["method"] == "volumetric:accelerated":  # mean over rays that hit: at most the dense count
            assert 0 < row["evals_per_ray"] <= 196 and row["psnr_vs_dense"] >= 40.0
            assert 0 < row["occupied_share"] <= 1 and row["occupancy_res"] == OCCUPANCY_RES["cpu"]
            # the grid's cost is its own (once per latent), beside the frame's
            assert row["grid_build_ms"] > 0 and row["grid_build_evaluations"] > 0 and row["march_rounds"] >= 1
            continue
        assert row["evals_per_ray"] == (196 if row["method"] == "volumetric" else 1)
        # The CPU volumetric baseline gets fewer frames and one warm-up; the pipelined frame times
        # 5 passes over the 4-pose path.
        expected = {"volumetric": (3, 1), "lfn_frame_pipelined": (20, 2)}.get(row["method"], (4, 2))
        assert (row["frames"], row["warmup"]) == expected
    volumetric = [row for row in result["results"] if row["method"] == "volumetric"]
    assert all(row["chunks_per_frame"] >= 1 and row["rays_per_chunk"] >= 1 for row in volumetric)
    assert set(result["speedup"]) == {"16", "24"}
    assert set(result["speedup_by_baseline"]) == {"volumetric", "volumetric:accelerated"}
    assert result["speedup_by_baseline"]["volumetric"] == result["speedup"]
    assert "volumetric:fused skipped: the fused Triton kernel runs on CUDA only" in " ".join(result["notes"])
    assert result["instance"] == 2

    table = format_table(result)
    print(table)
    for method in methods:
        assert method in table
    assert "speedup" in table and "volumetric times 3 frame(s) after 1 warm-up" in table

    plot(result, tmp_path / "fps.png")
    assert (tmp_path / "fps.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_set_stop_event_ends_the_run_before_its_next_frame_and_closes_its_methods(
        checkpoints, monkeypatch):
    stop, lines, closed = threading.Event(), [], []
    original = benchmark_methods.MethodSet.close
    monkeypatch.setattr(benchmark_methods.MethodSet, "close",
                        lambda found: (closed.append(True), original(found)))

    def progress(line: str) -> None:  # the third measurement is asked to stop from "another thread"
        lines.append(line)
        if len(timed()) == 3:
            stop.set()

    def timed() -> list[str]:
        return [line for line in lines if line.startswith("timing ")]

    with pytest.raises(BenchmarkCancelled):
        benchmark(checkpoints[0], checkpoints[1], "cpu", "fp32", resolutions=[16, 32], frames=2,
                  backends=["eager"], progress=progress, stop=stop)
    assert len(timed()) == 3 and closed == [True]  # no measurement after the stop; renderers and GL freed
    # every build was announced before the first measurement, the one that may crash named last
    builds = lines[:lines.index(timed()[0])]
    assert builds[0] == "building lfn:eager" and builds[-1].startswith("building lfn_frame")
    assert "building volumetric:accelerated" in builds
    with pytest.raises(BenchmarkCancelled):  # set before the run: not one frame
        benchmark(checkpoints[0], None, "cpu", "fp32", resolutions=[16], frames=2, backends=["eager"],
                  progress=lines.append, stop=stop)
    assert len(timed()) == 3


def test_a_stop_during_the_builds_ends_the_run_before_the_next_build(checkpoints):
    stop, lines = threading.Event(), []

    def progress(line: str) -> None:
        lines.append(line)
        if line == "building lfn:eager":
            stop.set()  # as the panel's Cancel would, while the viewer's backend builds

    with pytest.raises(BenchmarkCancelled):
        benchmark(checkpoints[0], checkpoints[1], "cpu", "fp32", resolutions=[16], frames=2,
                  backends=["eager"], progress=progress, stop=stop)
    assert lines == ["building lfn:eager"]  # no volumetric renderer, no GL context built after it


# Dense chunks are counted per phase: the dense baseline's own frames, and the dense reference frame
# that volumetric:accelerated's details render for its PSNR after its timed frames.
@pytest.mark.parametrize("phase", ["timing volumetric at", "timing volumetric:accelerated at"])
def test_a_stop_inside_a_dense_volumetric_frame_ends_the_run_before_its_next_chunk(
        checkpoints, monkeypatch, phase):
    monkeypatch.setattr(renderer_module, "CPU_WORKING_BYTES", 1 << 21)  # 16² in ~10 chunks of 27 rays
    stop, lines, chunks_after_stop = threading.Event(), [], []
    render_rays = renderer_module.VolumetricRenderer._render_rays

    def spy(renderer, *args, **kwargs):
        if stop.is_set():
            chunks_after_stop.append(renderer.sampling)
        elif renderer.sampling == "dense" and lines[-1].startswith(phase):
            stop.set()  # cancelled while this chunk renders: the frame has more chunks to go
        return render_rays(renderer, *args, **kwargs)

    monkeypatch.setattr(renderer_module.VolumetricRenderer, "_render_rays", spy)
    with pytest.raises(BenchmarkCancelled):
        benchmark(checkpoints[0], checkpoints[1], "cpu", "fp32", resolutions=[16], frames=2,
                  backends=["eager"], progress=lines.append, stop=stop)
    assert stop.is_set() and lines[-1].startswith(phase)
    assert chunks_after_stop == []  # not the rest of the frame (before, 9 more chunks and frames)


def test_a_stop_inside_the_occupancy_grid_build_ends_the_run_before_its_next_chunk(checkpoints, monkeypatch):
    stop, lines, chunks_after_stop = threading.Event(), [], []
    density = FoldedField.density

    def chunk(field, points, dirs):  # one chunk of density evaluations (6 probe directions a corner)
        if stop.is_set():
            chunks_after_stop.append(len(points))
        stop.set()
        return density(field, points, dirs)

    monkeypatch.setattr(FoldedField, "density", chunk)
    with pytest.raises(BenchmarkCancelled):
        benchmark(checkpoints[0], checkpoints[1], "cpu", "fp32", resolutions=[16], frames=2,
                  backends=["eager"], progress=lines.append, stop=stop)
    assert chunks_after_stop == []  # before: the whole build, 6 directions × coarse and fine corners
    assert lines[-1].startswith("timing volumetric:accelerated")  # the grid: in its first warm-up frame


def test_the_volumetric_rows_draw_the_lfns_car_by_name_and_say_when_they_cannot(checkpoints):
    import dataclasses

    lfn, volumetric = checkpoints
    n = len(lfn.instance_names)
    # the LFN's car 0 is the volumetric checkpoint's last: found by name, whatever its index
    named = dataclasses.replace(lfn, instance_names=[volumetric.instance_names[-1], *lfn.instance_names[1:]])
    small = {"resolutions": [16], "frames": 2, "backends": ["eager"]}
    result = benchmark(named, volumetric, "cpu", "fp32", instance=0, **small)
    assert result["volumetric_instance_name"] == volumetric.instance_names[-1]
    assert "has no" not in " ".join(result["notes"])
    # a car the volumetric checkpoint lacks: its rows draw the same index, and a note says so
    alone = dataclasses.replace(lfn, instance_names=[f"only-in-the-lfn-{i}" for i in range(n)])
    result = benchmark(alone, volumetric, "cpu", "fp32", instance=1, **small)
    assert result["volumetric_instance_name"] == volumetric.instance_names[1]
    assert (f"the volumetric checkpoint has no only-in-the-lfn-1: its rows render "
            f"{volumetric.instance_names[1]} (its instance 1)") in result["notes"]


def test_missing_gl_is_a_note_not_a_failure(checkpoints, monkeypatch):
    import moderngl

    def no_gl(**kwargs):
        raise RuntimeError("no EGL display")

    monkeypatch.setattr(moderngl, "create_standalone_context", no_gl)
    result = benchmark(checkpoints[0], None, "cpu", "fp32", resolutions=[16], frames=2, backends=["eager"])
    check_shape(result)
    assert [row["method"] for row in result["results"]] == ["lfn:eager", "lfn_every_ray", "lfn_depth",
                                                            "lfn_depth_summed"]
    assert result["speedup"] == {}
    notes = " ".join(result["notes"])
    assert "lfn_frame unavailable" in notes and "no EGL display" in notes


def test_volumetric_checkpoint_missing_or_of_the_wrong_kind(tmp_path, tiny_ckpt):
    assert load_volumetric(tmp_path / "none.pt") is None
    with pytest.raises(ValueError, match="is a lfn checkpoint, not a volumetric one"):
        load_volumetric(tiny_ckpt)


def test_cpu_peak_memory_sees_a_large_allocation():
    with PeakMemory(torch.device("cpu")) as peak:
        block = torch.ones(64 * 1024 * 1024 // 4)  # 64 MB, every page written
        del block
    assert 50 < peak.mb < 200


def test_cli_benchmark_writes_json_and_png(tiny_ckpt, tiny_volumetric_ckpt, tmp_path):
    out_json, out_png = tmp_path / "out.json", tmp_path / "out.png"
    result = subprocess.run(
        [sys.executable, str(MAIN), "--benchmark", "--ckpt", str(tiny_ckpt), "--volumetric",
         str(tiny_volumetric_ckpt), "--res", "16", "--frames", "2", "--json", str(out_json),
         "--plot", str(out_png)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "speedup" in result.stdout
    check_shape(json.loads(out_json.read_text()))
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_benchmark_json_carries_non_square_rows(tiny_ckpt, tiny_volumetric_ckpt, tmp_path):
    out_json, out_png = tmp_path / "out.json", tmp_path / "out.png"
    result = subprocess.run(
        [sys.executable, str(MAIN), "--benchmark", "--ckpt", str(tiny_ckpt), "--volumetric",
         str(tiny_volumetric_ckpt), "--res", "16", "24x16", "--frames", "2", "--backend", "eager",
         "--json", str(out_json), "--plot", str(out_png)],
        capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stderr
    saved = json.loads(out_json.read_text())
    check_shape(saved)
    rows = {(row["method"], row["resolution"]): row for row in saved["results"]}
    for method in ("lfn:eager", "lfn_depth", "volumetric", "volumetric:accelerated", "lfn_frame"):
        assert (rows[method, "24x16"]["width"], rows[method, "24x16"]["height"]) == (24, 16)
        assert (rows[method, "16"]["width"], rows[method, "16"]["height"]) == (16, 16)
    assert set(saved["speedup"]) == {"16", "24x16"}
    assert any(line.startswith("lfn:eager") and " 24x16 " in line for line in result.stdout.splitlines())
    assert "16²: " in result.stdout and "24×16: " in result.stdout  # the speedup lines
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_backends_times_those_and_the_viewers_only(tiny_ckpt, tiny_volumetric_ckpt, tmp_path):
    out_json = tmp_path / "out.json"
    result = subprocess.run(
        [sys.executable, str(MAIN), "--benchmark", "--ckpt", str(tiny_ckpt), "--volumetric",
         str(tiny_volumetric_ckpt), "--res", "16", "--frames", "2", "--backend", "eager",
         "--backends", "torchscript", "eager", "--json", str(out_json)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    saved = json.loads(out_json.read_text())
    assert saved["backends"] == ["eager", "torchscript"]
    lfn_rows = {row["method"] for row in saved["results"] if row["method"].startswith("lfn")}
    assert {m for m in lfn_rows if not m.startswith(("lfn_depth", "lfn_frame"))} == {
        "lfn:eager", "lfn_every_ray", "lfn"}
    assert next(row["backend"] for row in saved["results"] if row["method"] == "lfn_every_ray") == "eager"
    assert "building lfn:export" not in result.stdout and "building lfn:aoti" not in result.stdout


@pytest.mark.parametrize("args, code, message", [
    ("--benchmark --backends triton --precision fp32", 1,
     "error: --backends triton: not available with cpu and fp32 here"),
    ("--backends eager", 2, "argument --backends: used by --benchmark only"),
])
def test_cli_backends_misuse_is_one_line(tiny_ckpt, args, code, message):
    result = subprocess.run([sys.executable, str(MAIN), "--ckpt", str(tiny_ckpt), "--device", "cpu",
                             *args.split()], capture_output=True, text=True, timeout=120)
    assert result.returncode == code
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]  # one line
    assert message in result.stderr


def test_cli_explicit_missing_volumetric_is_one_line_error(tiny_ckpt, tmp_path):
    missing = tmp_path / "none.pt"
    result = subprocess.run(
        [sys.executable, str(MAIN), "--benchmark", "--ckpt", str(tiny_ckpt), "--volumetric", str(missing)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: --volumetric {missing}: no such file"


def test_ms_table_has_a_row_per_variant_and_a_column_per_resolution():
    rows = [{"variant": "render", "res": 256, "median_ms": 0.25},
            {"variant": "render", "res": 512, "median_ms": 1.5},
            {"variant": "one frame", "res": 512, "median_ms": 2.125}]
    header, render, frame = ms_table(rows, [256, 512]).splitlines()
    assert "256²" in header and "512²" in header
    assert render.split() == ["render", "0.250", "1.500"]
    assert frame.split() == ["one", "frame", "nan", "2.125"]  # no 256² row: nan, not a shifted cell
    wide = [{"variant": "render", "res": "1920x1080", "median_ms": 0.75}]
    header, render = ms_table(wide, [Resolution(1920, 1080)]).splitlines()
    assert header.split() == ["variant", "1920×1080"] and render.split() == ["render", "0.750"]


def test_the_accelerated_rows_details_tell_what_its_cuda_graph_march_marched_again():
    row = {"chunks_per_frame": 1, "rays_per_chunk": 342_392, "evals_per_ray_all_rays": 3.9,
           "psnr_vs_dense": 60.0, "march_rounds": 9, "occupancy_res": 128, "grid_build_ms": 69.0,
           "march_fallbacks": 2, "march_deferred": 5}
    told = "CUDA-graph march: 2 frame(s) marched again by march(), 5 deferring work to later rounds"
    assert told in details(row)
    row["march_kept"] = ["dynamic", "graph"]  # one ray count's trial kept each
    assert details(row).endswith(", kept after timing both: march() and the CUDA-graph march")
    del row["march_fallbacks"], row["march_deferred"], row["march_kept"]  # a CPU's row: march() alone
    assert "CUDA-graph" not in details(row) and "9 rounds" in details(row)


def test_the_refined_depth_row_times_gradient_depth_then_the_search(tiny_ckpt):
    """lfn_depth_stereo (a CUDA row; its frame checked here on a CPU renderer): the refined depth
    of the view, its evaluations counted for a pixel with depth, their share in the details."""
    from models.cameras import orbit_pose
    from models.depth import gradient_depth

    ckpt = load_checkpoint(tiny_ckpt)
    renderer = benchmark_methods.renderer_for(ckpt, 0, torch.device("cpu"), "fp32", "eager")
    method = benchmark_methods.stereo_depth_method(renderer)
    assert (method.name, method.evals_per_ray, method.details()) == ("lfn_depth_stereo", 401, {})
    pose = orbit_pose(30.0, 20.0)
    result = method.frame(pose, Resolution.square(24))
    gradient = gradient_depth(renderer, pose, Resolution.square(24))
    assert torch.equal(result.valid, gradient.valid) and gradient.valid.any()
    assert method.details() == {"refined_pixels": float(gradient.valid.float().mean())}
