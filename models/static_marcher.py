"""The accelerated baseline's march with no host sync in its frame, replayed from CUDA graphs.

march() (models/occupancy.py) sizes each round's tensors by what the rays need: two host syncs a
round and operators launched one by one (about 150 a round; 4-5 rounds at 512² in the GPU's
schedule). march_static() runs the same computation in tensors of fixed sizes, a MarchCapacity, so
its launches are the same every frame and a CUDA graph replays them in one call. The capacity of
each ray count comes from a dynamic march with margin (the first frame of that size is one); the
frame's demand, read once at its end, says whether it held. A round short of room leaves work to the
next rounds (the frame is then right, though not march()'s bit for bit); a frame whose lists of
occupied samples had no room, or whose rays did not finish in its rounds, is marched again by
march() and the capacity grows to cover it, so no pixel ever comes from an overflowed march.

Fixed sizes are not always faster: a capacity must hold the busiest frame of its ray count, and a
Full-HD frame's chunks differ (sky, car), so each static chunk does the busiest one's work. Measured
on an H100 (fp16, 2026-12-06): 512², one chunk, the graph 17 ms against march()'s 18-22 ms; 1920×1080,
seven chunks, 210 ms against 86 ms. So each ray count's first frames time both (TRIAL_FRAMES each,
a capture not counted) and the faster is kept for the marcher's life.

    marcher = StaticMarcher(field, samples, grid, graphs=True, choose_faster=True, schedule=GPU_SCHEDULE)
    result = marcher(origins, dirs)  # MarchResult, as march() returns it
"""

from __future__ import annotations

import statistics
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace

import torch

from models.folded_field import FoldedField
from models.frame_graphs import capture
from models.occupancy import (
    MarchCapacity,
    MarchResult,
    MarchSchedule,
    OccupancyGrid,
    StaticMarch,
    march,
    march_static,
    no_phase,
)
from models.step_timing import Result, timed

# How the accelerated baseline may march a frame (bench/march_phases.py --marcher times each):
# march() as is; march_static() run eagerly; march_static() replayed from a CUDA graph.
MARCHERS = ("dynamic", "static", "graph")
# Graphs a marcher keeps, the latest captured: each holds a memory pool as large as its march's
# tensors (~GBs at 512²), and a viewer whose window is resized marches many ray counts.
KEPT_GRAPHS = 2
# Frames each marcher is timed on, per ray count, before the faster is kept; compared by medians,
# so one slow frame (a first use's allocations, a busy GPU) does not decide.
TRIAL_FRAMES = 3
# A ray count's frames until its marcher is chosen: the capture's and each marcher's trial frames
# (march()'s first is the planning frame); a timed run warms up through them (benchmark_methods.py).
FRAMES_TO_CHOOSE = 1 + 2 * TRIAL_FRAMES

Key = tuple[int, torch.dtype]  # a march's ray count and dtype: one capacity, one graph, one choice


@dataclass
class MarcherTrial:
    """One ray count's frame times (ms) on each marcher, until the faster is known."""

    dynamic_ms: list[float] = field(default_factory=list)
    static_ms: list[float] = field(default_factory=list)  # an overflowed frame: with its march() again

    def wants_dynamic(self) -> bool:
        """Whether the next frame should time march(): the two take turns, the static march first
        (the frame that planned its capacity was march()'s)."""
        return len(self.dynamic_ms) < TRIAL_FRAMES and len(self.dynamic_ms) < len(self.static_ms)

    def faster(self) -> str | None:
        """"dynamic" or "static" once each has TRIAL_FRAMES times, by their medians; None before."""
        if min(len(self.dynamic_ms), len(self.static_ms)) < TRIAL_FRAMES:
            return None
        static, dynamic = statistics.median(self.static_ms), statistics.median(self.dynamic_ms)
        return "static" if static < dynamic else "dynamic"


@dataclass
class CapturedMarch:
    """A static march's graph: the rays are copied into `origins` and `dirs`, and `output` is what
    each replay rewrites."""

    graph: torch.cuda.CUDAGraph
    origins: torch.Tensor
    dirs: torch.Tensor
    output: StaticMarch


class StaticMarcher:
    """Marches one latent's rays through one grid with march_static(), a capacity per (ray count,
    dtype); with `graphs` (CUDA only) each capacity's march is captured in a CUDA graph once and
    replayed. A new latent or grid needs a new marcher: a graph reads the tensors it was captured with.
    With `choose_faster`, each ray count's first frames time the static march against march() and
    keep the faster; without, every frame is static but those the capacity cannot hold.

    `fallbacks` counts the frames marched again by march() because the capacity did not hold them
    (the first frame of each size included), `deferred` the static frames some round of which left
    work to later ones, `captures` the graphs captured, `kept` which marcher each ray count's trial
    found faster ("dynamic", or "graph" / "static": the static march replayed / eager). A capture
    this torch refuses (an operator that cannot be captured) is warned about once and kept in
    `graph_error`; the march then runs eagerly, still without host syncs. A static march that fails
    itself (an operator this torch lacks on the device, no memory for its room) is warned about
    once, kept in `static_error`, and every frame after it is march()'s: right, only slower.
    """

    def __init__(self, field: FoldedField, samples: int, grid: OccupancyGrid, graphs: bool,
                 choose_faster: bool, schedule: MarchSchedule):
        if graphs and field.mlp_tensors[0].device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA device, not {field.mlp_tensors[0].device}")
        self.marched = (field, samples, grid)  # march()'s arguments after the rays
        self.graphs, self.choose_faster, self.schedule = graphs, choose_faster, schedule
        self.capacities: dict[Key, MarchCapacity] = {}
        self.captured: dict[Key, CapturedMarch] = {}
        self.trials: dict[Key, MarcherTrial] = {}
        self.kept: dict[Key, str] = {}
        self.fallbacks = self.deferred = self.captures = 0
        self.graph_error: str | None = None
        self.static_error: str | None = None  # set when march_static itself failed: march() from then on

    def __call__(self, origins: torch.Tensor, dirs: torch.Tensor,
                 phase: Callable[[str], AbstractContextManager] = no_phase) -> MarchResult:
        """The rays' march; `phase` wraps its stages as march()'s does (a graph's replay is one), and
        the read of its demand."""
        key = (origins.shape[0], origins.dtype)
        dynamic = lambda: march(origins, dirs, *self.marched, self.schedule, phase)  # noqa: E731
        if self.kept.get(key) == "dynamic":
            return dynamic()
        if self.static_error is not None:
            self.fallbacks += 1
            return dynamic()
        trial = self.trials.setdefault(key, MarcherTrial())
        capacity = self.capacities.get(key)
        static_ms = None  # the static march's time this frame, if it ran and was timed
        on_trial = self.choose_faster and key not in self.kept
        if capacity is not None and not (on_trial and trial.wants_dynamic()):
            captures = self.captures
            try:
                (static, demand), static_ms = self._timed_if(
                    on_trial, origins.device, lambda: self._static(key, capacity, origins, dirs, phase))
            except RuntimeError as error:  # an operator this torch lacks here, or no memory for the room
                self.graphs, self.static_error = False, str(error)
                warnings.warn(f"the static march is given up, march() marches: {error}", stacklevel=2)
                self.fallbacks += 1
                return dynamic()
            if self.captures != captures:
                static_ms = None  # the capture's time is not a frame's
            if capacity.holds(demand):
                self.deferred += not capacity.fits(demand)
                self._record(key, trial, static_ms=static_ms)
                return static.result(demand)
            self.fallbacks += 1
        elif capacity is None:
            self.fallbacks += 1
        result, dynamic_ms = self._timed_if(on_trial, origins.device, dynamic)
        if capacity is None or not capacity.fits(result.demand):  # the first frame, or the room overflowed
            self.capacities[key] = MarchCapacity.covering(result.demand, self.schedule, capacity)
            self.captured.pop(key, None)  # captured with the old capacity
        if static_ms is not None:  # the static march overflowed: its frame cost both marches
            self._record(key, trial, static_ms=static_ms + dynamic_ms)
        elif on_trial and (capacity is None or trial.wants_dynamic()):
            self._record(key, trial, dynamic_ms=dynamic_ms)
        return result

    @staticmethod
    def _timed_if(on_trial: bool, device: torch.device,
                  step: Callable[[], Result]) -> tuple[Result, float | None]:
        """`step`'s result, and its time while its ray count is on trial (None after: no sync)."""
        return timed(device, step) if on_trial else (step(), None)

    def _static(self, key: Key, capacity: MarchCapacity, origins: torch.Tensor, dirs: torch.Tensor,
                phase: Callable[[str], AbstractContextManager]):
        """The static march (replayed from its graph where graphs are on) and its demand."""
        static = None
        if self.graphs:
            with phase("graph replay"):
                static = self._replay(key, capacity, origins, dirs)
        if static is None:  # no graphs, or the capture was just refused
            static = march_static(origins, dirs, *self.marched, capacity, phase)
        with phase("read demand"):
            return static, static.read_demand()  # the frame's one host sync

    def _record(self, key: Key, trial: MarcherTrial, static_ms: float | None = None,
                dynamic_ms: float | None = None) -> None:
        """A trial frame's time; once both marchers have theirs, the faster is kept for `key`."""
        if key in self.kept:
            return
        if static_ms is not None:
            trial.static_ms.append(static_ms)
        if dynamic_ms is not None:
            trial.dynamic_ms.append(dynamic_ms)
        faster = trial.faster()
        if faster == "dynamic":
            self.kept[key] = "dynamic"
            self.captured.pop(key, None)  # its memory pool is not needed any more
        elif faster == "static":
            self.kept[key] = "graph" if self.graphs else "static"

    def _replay(self, key: Key, capacity: MarchCapacity, origins: torch.Tensor,
                dirs: torch.Tensor) -> StaticMarch | None:
        """The static march of the rays replayed from the capacity's graph (captured first if need
        be); None, graphs given up, if the capture was refused."""
        captured = self.captured.get(key)
        if captured is None:
            rays = origins.clone(), dirs.clone()
            try:
                graph, output = capture(lambda: march_static(*rays, *self.marched, capacity))
            except RuntimeError as error:
                self.graphs, self.graph_error = False, str(error)
                warnings.warn(f"the static march runs eagerly: its CUDA graph capture failed: {error}",
                              stacklevel=2)
                return None
            captured = self.captured[key] = CapturedMarch(graph, *rays, output)
            self.captures += 1
            for stale in list(self.captured)[:-KEPT_GRAPHS]:
                del self.captured[stale]
        captured.origins.copy_(origins)
        captured.dirs.copy_(dirs)
        captured.graph.replay()
        # the next replay rewrites the output: the caller keeps copies
        output = captured.output
        return replace(output, color=output.color.clone(), depth=output.depth.clone(),
                       opacity=output.opacity.clone(), evaluations=output.evaluations.clone())
