"""The panel's benchmark button runs the real benchmark on a worker thread."""

import torch

from models.checkpoint import load_checkpoint
from viewer.benchmark_panel import BenchmarkPanel


def test_panel_benchmark_runs_off_thread_and_reports_a_speedup(tiny_ckpt, tiny_volumetric_ckpt):
    panel = BenchmarkPanel(load_checkpoint(tiny_ckpt), tiny_volumetric_ckpt, torch.device("cpu"))
    panel.start(instance=1, precision="fp32", backend="eager")  # the viewer's active backend
    panel._thread.join(timeout=120)
    assert not panel.running
    assert panel.status.startswith("speedup over volumetric"), panel.status
    methods = {r["method"] for r in panel.result["results"]}
    assert {"lfn:eager", "volumetric", "lfn_depth"} <= methods
    assert set(panel.result["speedup"]) == {"32", "64"}


def test_panel_benchmark_failure_is_a_status_line_not_a_crash(tiny_ckpt, tmp_path):
    bad = tmp_path / "vol.pt"
    bad.write_bytes(b"junk")
    panel = BenchmarkPanel(load_checkpoint(tiny_ckpt), bad, torch.device("cpu"))
    panel.start(instance=0, precision="fp32", backend="torchscript")
    panel._thread.join(timeout=60)
    assert panel.status.startswith("benchmark failed") and "vol.pt" in panel.status
