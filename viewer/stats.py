"""UI frame times and render times: the live FPS and plot in the panel, and the --stats JSON."""

from __future__ import annotations

import gc
import json
import statistics
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

PLOT_FRAMES = 240  # about four seconds of UI frames at 60 FPS
SLOWEST_KEPT = 5  # the slowest UI frames kept with where their time went
COLLECTIONS_KEPT = 256  # the garbage collections a UI frame can be matched with: far more than a frame sees


@dataclass
class SlowFrame:
    ms: float
    at_s: float  # when it ended, seconds since the stats started
    phases_ms: dict[str, float]  # where its time went, by the loop's phase marks (FrameStats.phase)
    # the background work running meanwhile: a thread holding the GIL stalls whichever phase runs
    beside: tuple[str, ...] = ()
    # Python's cyclic garbage collections that ended within the frame, on any thread: one holds the
    # GIL from start to end, so every other thread waits for it. "gen2" is a full collection.
    collections: tuple[str, ...] = ()


@dataclass(frozen=True)
class Collection:
    ended_s: float  # perf_counter
    ms: float
    generation: int
    thread: str


class CollectionLog:
    """Every cyclic garbage collection while it is watching (gc.callbacks), from any thread."""

    def __init__(self):
        self.recent: deque[Collection] = deque(maxlen=COLLECTIONS_KEPT)
        self.full_ms: list[float] = []  # every full (generation 2) collection's
        self._started_s: dict[int, float] = {}  # by thread: a collection runs on one thread at a time

    def __call__(self, phase: str, info: dict) -> None:
        thread = threading.get_ident()
        if phase == "start":
            self._started_s[thread] = time.perf_counter()
        elif (started := self._started_s.pop(thread, None)) is not None:
            ended = time.perf_counter()
            collection = Collection(ended, 1000.0 * (ended - started), info["generation"],
                                    threading.current_thread().name)
            self.recent.append(collection)
            if collection.generation == 2:
                self.full_ms.append(collection.ms)

    def within(self, since_s: float) -> list[Collection]:
        return [c for c in list(self.recent) if c.ended_s >= since_s]


class FrameStats:
    def __init__(self):
        self.started_s = time.perf_counter()
        self.ui_frame_ms: list[float] = []
        self.recent_ms: deque[float] = deque(maxlen=PLOT_FRAMES)
        self.render_ms: list[float] = []
        self.render_res: list[int] = []  # each frame's rows: its height
        self.slowest: list[SlowFrame] = []  # slowest first
        self._phases_ms: dict[str, float] = {}  # the current UI frame's, so far
        self._mark_s: float | None = None
        self.collections = CollectionLog()

    def watch_collections(self) -> None:
        """Record garbage collections from now on (until close): a slow frame names those in it."""
        gc.callbacks.append(self.collections)

    def close(self) -> None:
        if self.collections in gc.callbacks:
            gc.callbacks.remove(self.collections)

    def phase(self, name: str) -> None:
        """The time since the last mark went to `name` in the current UI frame: a frame that stalls
        says in which part of the loop."""
        now = time.perf_counter()
        if self._mark_s is not None:
            self._phases_ms[name] = self._phases_ms.get(name, 0.0) + 1000.0 * (now - self._mark_s)
        self._mark_s = now

    def ui_frame(self, frame_ms: float, beside: tuple[str, ...] = ()) -> None:
        """One UI frame ended, taking `frame_ms`: the phases marked since the last call were its;
        `beside`: the background work running meanwhile."""
        self.ui_frame_ms.append(frame_ms)
        self.recent_ms.append(frame_ms)
        if len(self.slowest) < SLOWEST_KEPT or frame_ms > self.slowest[-1].ms:
            now = time.perf_counter()
            collections = tuple(f"gen{c.generation} {c.ms:.0f} ms on {c.thread}"
                                for c in self.collections.within(now - frame_ms / 1000.0) if c.ms >= 1.0)
            slow = SlowFrame(round(frame_ms, 1), round(now - self.started_s, 1),
                             {name: round(ms, 1) for name, ms in self._phases_ms.items()}, beside,
                             collections)
            self.slowest = sorted([*self.slowest, slow], key=lambda frame: -frame.ms)[:SLOWEST_KEPT]
        self._phases_ms = {}

    def rendered(self, rows: int, render_ms: float) -> None:
        self.render_ms.append(render_ms)
        self.render_res.append(rows)

    def fps(self) -> float:
        """UI frames per second over the plotted window."""
        return 1000.0 * len(self.recent_ms) / sum(self.recent_ms) if self.recent_ms else 0.0

    def plot_values(self) -> np.ndarray:
        return np.asarray(self.recent_ms, dtype=np.float32)

    def summary(self, **extra) -> dict:
        elapsed = time.perf_counter() - self.started_s
        frames = len(self.ui_frame_ms)
        return {
            "ui_fps": frames / elapsed if elapsed > 0 else 0.0,
            "frames": frames,
            "seconds": elapsed,
            # the average hides stalls; the slowest UI frames show whether the window ever froze
            "ui_frame_ms_p95": float(np.percentile(self.ui_frame_ms, 95)) if frames else None,
            "ui_frame_ms_max": max(self.ui_frame_ms, default=None),
            "ui_frames_slowest": [asdict(frame) for frame in self.slowest],
            "gc_full_collections": len(self.collections.full_ms),
            "gc_full_ms_max": round(max(self.collections.full_ms, default=0.0), 1),
            "renders": len(self.render_ms),
            "render_ms_median": statistics.median(self.render_ms) if self.render_ms else None,
            "render_res_min": min(self.render_res, default=None),
            "render_res_max": max(self.render_res, default=None),
            **extra,
        }

    def write(self, path: Path, **extra) -> None:
        path.write_text(json.dumps(self.summary(**extra), indent=2) + "\n")
