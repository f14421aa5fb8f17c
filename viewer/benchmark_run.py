"""The viewer's benchmark run: the same measurement as `main.py --benchmark`, on a worker thread
(the UI keeps drawing). The window's panel draws it as an ImPlot chart (viewer/benchmark_panel.py),
the browser's page as a table (viewer/web.py); this module imports no GUI, so a browser server
needs none.

The benchmark thread builds its own renderers and an offscreen EGL context and owns them alone; it
posts progress lines and the result into a locked mailbox, which the UI thread empties once per
frame (poll). Cancel (shown while it runs; on a CPU a run takes minutes) sets the run's stop event,
which the run reads before each build and frame and between the chunks of a volumetric frame or
occupancy grid (a 64² volumetric frame takes seconds on a CPU); close() sets it too, refuses new
runs and waits, bounded, for the thread to end.
"""

from __future__ import annotations

import threading
from pathlib import Path

import torch

from engine.benchmark import BenchmarkCancelled, benchmark, load_volumetric
from engine.benchmark_report import row_resolution
from engine.memory import then_trim
from models.checkpoint import Checkpoint
from viewer.worker import CLOSE_TIMEOUT_S, join_within

# Small on a CPU: one volumetric frame at 64² takes ~20 s there with the full-size network.
PANEL_RESOLUTIONS = {"cuda": (128, 256, 512), "cpu": (32, 64)}
PANEL_FRAMES = {"cuda": 30, "cpu": 3}


class BenchmarkRun:
    """One benchmark run at a time on its thread, its progress line and its result."""

    def __init__(self, ckpt: Checkpoint, volumetric_path: Path, device: torch.device):
        self.ckpt, self.volumetric_path, self.device = ckpt, volumetric_path, device
        # the UI thread's copies, refreshed from the mailbox by poll()
        self.status = ""
        self.result: dict | None = None
        self._lock = threading.Lock()  # guards the mailbox: what the thread posted since the last poll
        self._posted_status: str | None = None
        self._posted_result: dict | None = None
        self._closed = False
        self._stop = threading.Event()  # the current run's: it ends before its next frame or chunk once set
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, instance: int, precision: str, backend: str) -> None:
        """Benchmark the LFN in the viewer's active precision and backend against the baseline."""
        if not self.running and not self._closed:
            self._stop = threading.Event()
            # a daemon: should close() time out, the thread cannot hold the process open
            self._thread = threading.Thread(
                target=then_trim(self._run), args=(instance, precision, backend, self._stop),
                name="lfn-benchmark", daemon=True,
            )
            self._thread.start()

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> bool:
        """Stop a running benchmark before its next frame and wait up to `timeout_s` for its thread
        (which releases its renderers and GL context); whether it ended."""
        self._closed = True
        self.cancel()
        return self._thread is None or join_within(self._thread, timeout_s)

    def cancel(self) -> None:
        """End the running benchmark before its next frame or chunk of one (a CPU volumetric frame
        takes seconds)."""
        self._stop.set()

    def poll(self) -> None:
        """Take what the benchmark thread posted since the last call (the UI thread, once a frame)."""
        with self._lock:
            status, result = self._posted_status, self._posted_result
            self._posted_status = self._posted_result = None
        if status is not None:
            self.status = status
        if result is not None:
            self.result = result

    def _post(self, status: str, result: dict | None = None) -> None:
        with self._lock:
            self._posted_status = status
            if result is not None:
                self._posted_result = result

    def _run(self, instance: int, precision: str, backend: str, stop: threading.Event) -> None:
        kind = "cuda" if self.device.type == "cuda" else "cpu"
        try:
            volumetric = load_volumetric(self.volumetric_path)
            result = benchmark(
                self.ckpt, volumetric, self.device, precision, PANEL_RESOLUTIONS[kind],
                PANEL_FRAMES[kind], instance, [backend], progress=self._post, stop=stop,
            )
            speedups = ", ".join(f"{row_resolution(r).label}: {x:.0f}x" for r, x in result["speedup"].items())
            self._post(f"speedup over volumetric: {speedups}" if speedups else "done (no volumetric)",
                       result)
        except BenchmarkCancelled:
            self._post("benchmark cancelled")
        except Exception as error:  # shown in the panel; the viewer keeps running
            self._post(f"benchmark failed: {type(error).__name__}: {error}")
