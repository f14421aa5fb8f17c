"""The window panel's benchmark: a button that starts a run (viewer/benchmark_run.py), Cancel while it
runs, its progress line, and the result as an ImPlot bar chart of FPS per method and resolution.
"""

from __future__ import annotations

import numpy as np
from imgui_bundle import imgui, implot

from engine.benchmark_report import fps_grid
from viewer.benchmark_run import BenchmarkRun


class BenchmarkPanel(BenchmarkRun):
    """The run, drawn in the ImGui panel once a frame."""

    def draw(self, instance: int, precision: str, backend: str) -> None:
        self.poll()
        imgui.separator_text("Benchmark")
        imgui.begin_disabled(self.running)
        if imgui.button("Run benchmark"):
            self.start(instance, precision, backend)
        imgui.end_disabled()
        if self.running:
            imgui.same_line()
            imgui.begin_disabled(self._stop.is_set())  # cancelling: ends before its next frame or chunk
            if imgui.button("Cancel benchmark"):
                self.cancel()
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
            labels = [r.label for r in resolutions]
            implot.setup_axis_ticks(implot.ImAxis_.x1.value, positions.tolist(), labels)
            width = 0.8 / max(len(methods), 1)
            for i, method in enumerate(methods):
                offsets = positions - 0.4 + width * (i + 0.5)
                implot.plot_bars(method, offsets, values[i].astype(np.float64), width)
            implot.end_plot()
