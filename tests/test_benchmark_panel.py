"""The panel's benchmark button runs the real benchmark on a worker thread; close() stops it."""

import json
import subprocess
import sys
import time
from pathlib import Path

import torch

import engine.memory
from models.checkpoint import load_checkpoint
from viewer import benchmark_cancel, benchmark_run
from viewer.benchmark_panel import BenchmarkPanel

ROOT = Path(__file__).resolve().parents[1]
CLOSE_BOUND_S = 20.0  # one tiny-checkpoint frame takes milliseconds; this is the bound with slack
ENDLESS_FRAMES = {"cpu": 100_000}  # a run that would take hours: only a cancel ends it soon

# A viewer's exit while its panel benchmark runs: start one, wait until it times frames, close the
# panel, let the interpreter exit. A thread killed inside a torch call at exit aborts the process.
EXIT_WHILE_RUNNING = """
import sys, time, torch
from pathlib import Path
from models.checkpoint import load_checkpoint
from viewer import benchmark_panel, benchmark_run
benchmark_run.PANEL_FRAMES = {"cpu": 100_000}
panel = benchmark_panel.BenchmarkPanel(load_checkpoint(sys.argv[1]), Path(sys.argv[2]),
                                       torch.device("cpu"))
panel.start(instance=0, precision="fp32", backend="eager")
deadline = time.monotonic() + 60
while panel.running and not panel.status.startswith("timing") and time.monotonic() < deadline:
    time.sleep(0.05)
    panel.poll()
print(panel.status, flush=True)
print("closed" if panel.close() else "still running", flush=True)
"""


def finished(panel: BenchmarkPanel, timeout_s: float) -> None:
    panel._thread.join(timeout=timeout_s)
    assert not panel.running
    panel.poll()


def wait_for_timing(panel: BenchmarkPanel) -> None:
    deadline = time.monotonic() + 60
    while panel.running and not panel.status.startswith("timing") and time.monotonic() < deadline:
        time.sleep(0.02)
        panel.poll()
    assert panel.status.startswith("timing") and panel.running, panel.status


def test_panel_benchmark_runs_off_thread_and_reports_a_speedup(tiny_ckpt, tiny_volumetric_ckpt):
    panel = BenchmarkPanel(load_checkpoint(tiny_ckpt), tiny_volumetric_ckpt, torch.device("cpu"))
    panel.start(instance=1, precision="fp32", backend="eager")  # the viewer's active backend
    finished(panel, 120)
    assert panel.status.startswith("speedup over volumetric"), panel.status
    methods = {r["method"] for r in panel.result["results"]}
    assert {"lfn:eager", "volumetric", "lfn_depth"} <= methods
    assert set(panel.result["speedup"]) == {"32", "64"}


def test_panel_benchmark_failure_is_a_status_line_not_a_crash(tiny_ckpt, tmp_path):
    bad = tmp_path / "vol.pt"
    bad.write_bytes(b"junk")
    panel = BenchmarkPanel(load_checkpoint(tiny_ckpt), bad, torch.device("cpu"))
    panel.start(instance=0, precision="fp32", backend="torchscript")
    finished(panel, 60)
    assert panel.status.startswith("benchmark failed") and "vol.pt" in panel.status


def test_the_ui_sees_posts_only_when_it_polls(tiny_ckpt, tmp_path):
    panel = BenchmarkPanel(load_checkpoint(tiny_ckpt), tmp_path / "none.pt", torch.device("cpu"))
    panel.start(instance=0, precision="fp32", backend="eager")
    panel._thread.join(timeout=120)
    assert (panel.status, panel.result) == ("", None)  # posted, not yet taken by the UI thread
    panel.poll()
    assert panel.status == "done (no volumetric)" and panel.result["results"]
    panel.poll()  # an empty mailbox leaves the last status and result shown
    assert panel.status == "done (no volumetric)" and panel.result is not None


def test_a_finished_run_hands_its_freed_memory_back(tiny_ckpt, tmp_path, monkeypatch):
    panel = BenchmarkPanel(load_checkpoint(tiny_ckpt), tmp_path / "none.pt", torch.device("cpu"))
    trims = []  # what the run had posted at each trim of the heap
    monkeypatch.setattr(engine.memory, "trim_heap", lambda: trims.append(panel._posted_status))
    panel.start(instance=0, precision="fp32", backend="eager")
    finished(panel, 120)
    assert trims and trims[-1] == "done (no volumetric)"  # the last one after the run, on its thread


def test_close_stops_a_running_benchmark_within_a_bound(tiny_ckpt, tmp_path, monkeypatch):
    monkeypatch.setattr(benchmark_run, "PANEL_FRAMES", ENDLESS_FRAMES)
    panel = BenchmarkPanel(load_checkpoint(tiny_ckpt), tmp_path / "none.pt", torch.device("cpu"))
    panel.start(instance=0, precision="fp32", backend="eager")
    wait_for_timing(panel)
    start = time.monotonic()
    assert panel.close(timeout_s=CLOSE_BOUND_S)
    assert time.monotonic() - start < CLOSE_BOUND_S and not panel.running
    panel.poll()
    assert panel.status == "benchmark cancelled" and panel.result is None
    panel.start(instance=0, precision="fp32", backend="eager")  # closed: no new run
    assert panel._thread is not None and not panel.running


def test_cancel_ends_a_run_and_the_next_one_runs(tiny_ckpt, tmp_path, monkeypatch):
    monkeypatch.setattr(benchmark_run, "PANEL_FRAMES", ENDLESS_FRAMES)
    panel = BenchmarkPanel(load_checkpoint(tiny_ckpt), tmp_path / "none.pt", torch.device("cpu"))
    panel.start(instance=0, precision="fp32", backend="eager")
    wait_for_timing(panel)
    panel.cancel()
    finished(panel, CLOSE_BOUND_S)
    assert panel.status == "benchmark cancelled"
    panel.start(instance=0, precision="fp32", backend="eager")  # not closed: a new run starts
    wait_for_timing(panel)
    assert panel.close(timeout_s=CLOSE_BOUND_S)


def test_exiting_while_the_panel_benchmark_runs_exits_cleanly(tiny_ckpt, tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", EXIT_WHILE_RUNNING, str(tiny_ckpt), str(tmp_path / "none.pt")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("timing") and lines[-1] == "closed", result.stdout
    assert "terminate called" not in result.stderr


def test_the_cancel_latency_script_cancels_at_a_moment(tiny_ckpt, tiny_volumetric_ckpt, tmp_path):
    out = tmp_path / "cancel.json"
    assert benchmark_cancel.main(["--ckpt", str(tiny_ckpt), "--volumetric", str(tiny_volumetric_ckpt),
                                  "--backend", "eager", "--only", "first backend", "--json", str(out)]) == 0
    (cancel,) = json.loads(out.read_text())["cancels"]
    assert cancel["moment"] == "first backend build" and cancel["during"] == "building lfn:eager"
    assert cancel["status"] == "benchmark cancelled" and cancel["latency_s"] >= 0
