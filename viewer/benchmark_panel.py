"""The panel's benchmark: the same measurement as `main.py --benchmark`, run on a worker thread
(the UI keeps drawing) and shown as an ImPlot bar chart of FPS per method and resolution."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch
from imgui_bundle import imgui, implot

from engine.benchmark import benchmark, load_volumetric
from engine.benchmark_report import fps_grid
from models.checkpoint import Checkpoint

# Small on a CPU: one volumetric frame at 64² takes ~20 s there with the full-size network.
PANEL_RESOLUTIONS = {"cuda": (128, 256, 512), "cpu": (32, 64)}
PANEL_FRAMES = {"cuda": 30, "cpu": 3}


class BenchmarkPanel:
    """A button that starts one benchmark run, its progress line, and the result as a bar chart."""

    def __init__(self, ckpt: Checkpoint, volumetric_path: Path, device: torch.device):
        self.ckpt, self.volumetric_path, self.device = ckpt, volumetric_path, device
        self.status = ""
        self.result: dict | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, instance: int, precision: str, backend: str) -> None:
        """Benchmark the LFN in the viewer's active precision and backend against the baseline."""
        if not self.running:
            self._thread = threading.Thread(
                target=self._run, args=(instance, precision, backend), daemon=True
            )
            self._thread.start()

    def _run(self, instance: int, precision: str, backend: str) -> None:
        kind = "cuda" if self.device.type == "cuda" else "cpu"
        try:
            volumetric = load_volumetric(self.volumetric_path)
            self.result = benchmark(
                self.ckpt, volumetric, self.device, precision, PANEL_RESOLUTIONS[kind],
                PANEL_FRAMES[kind], instance, [backend], progress=self._progress,
            )
            speedups = ", ".join(f"{r}²: {x:.0f}x" for r, x in self.result["speedup"].items())
            self.status = f"speedup over volumetric: {speedups}" if speedups else "done (no volumetric)"
        except Exception as error:  # shown in the panel; the viewer keeps running
            self.status = f"benchmark failed: {type(error).__name__}: {error}"

    def _progress(self, line: str) -> None:
        self.status = line

    def draw(self, instance: int, precision: str, backend: str) -> None:
        imgui.separator_text("Benchmark")
        imgui.begin_disabled(self.running)
        if imgui.button("Run benchmark"):
            self.start(instance, precision, backend)
        imgui.end_disabled()
        if self.status:
            imgui.text_wrapped(self.status)
        if self.result is not None:
            self._chart()

    def _chart(self) -> None:
        methods, resolutions, fps = fps_grid(self.result)
        values = np.nan_to_num(np.log10(np.maximum(fps, 1e-3)), nan=-3.0)  # log scale, as in --plot
        if implot.begin_plot("FPS (log10) per resolution", imgui.ImVec2(-1, 200)):
            implot.setup_axes("resolution", "log10 FPS")
            positions = np.arange(len(resolutions), dtype=np.float64)
            labels = [f"{r}²" for r in resolutions]
            implot.setup_axis_ticks(implot.ImAxis_.x1.value, positions.tolist(), labels)
            width = 0.8 / max(len(methods), 1)
            for i, method in enumerate(methods):
                offsets = positions - 0.4 + width * (i + 0.5)
                implot.plot_bars(method, offsets, values[i].astype(np.float64), width)
            implot.end_plot()
