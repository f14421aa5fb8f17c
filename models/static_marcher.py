"""The accelerated baseline's march with no host sync in its frame, replayed from CUDA graphs.

march() (models/occupancy.py) sizes each round's tensors by what the rays need: two host syncs a
round and operators launched one by one (about 130 a round, 9 rounds at 512²). march_static() runs
the same computation in tensors of fixed sizes, a MarchCapacity, so its launches are the same every
frame and a CUDA graph replays them in one call. The capacity of each ray count comes from a
dynamic march with margin (the first frame of that size is one); the frame's demand, read once at
its end, says whether it held. A round short of room leaves work to the next rounds (the frame is
then right, though not march()'s bit for bit); a frame whose lists of occupied samples had no room,
or whose rays did not finish in its rounds, is marched again by march() and the capacity grows to
cover it, so no pixel ever comes from an overflowed march.

    marcher = StaticMarcher(mlp_tensors, samples, frequencies, grid, graphs=True)  # per latent and grid
    result = marcher(origins, dirs)  # MarchResult, as march() returns it
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace

import torch

from models.frame_graphs import capture
from models.occupancy import (
    MARCH_ROUNDS,
    MarchCapacity,
    MarchResult,
    OccupancyGrid,
    StaticMarch,
    march,
    march_static,
    no_phase,
)

# How the accelerated baseline may march a frame (bench/march_phases.py --marcher times each):
# march() as is; march_static() run eagerly; march_static() replayed from a CUDA graph.
MARCHERS = ("dynamic", "static", "graph")
# Graphs a marcher keeps, the latest captured: each holds a memory pool as large as its march's
# tensors (~GBs at 512²), and a viewer whose window is resized marches many ray counts.
KEPT_GRAPHS = 2


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

    `fallbacks` counts the frames marched again by march() because the capacity did not hold them
    (the first frame of each size included), `deferred` the static frames some round of which left
    work to later ones, `captures` the graphs captured. A capture this torch refuses (an operator
    that cannot be captured) is warned about once and kept in `graph_error`; the march then runs
    eagerly, still without host syncs. A static march that fails itself (an operator this torch
    lacks on the device, no memory for its room) is warned about once, kept in `static_error`, and
    every frame after it is march()'s: the frame is right, only slower.
    """

    def __init__(self, mlp_tensors: tuple[torch.Tensor, ...], samples: int, frequencies: int,
                 grid: OccupancyGrid, graphs: bool, rounds: Sequence[int] = MARCH_ROUNDS):
        if graphs and mlp_tensors[0].device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA device, not {mlp_tensors[0].device}")
        self.field = (mlp_tensors, samples, frequencies, grid)  # march()'s arguments after the rays
        self.graphs, self.rounds = graphs, tuple(rounds)
        self.capacities: dict[tuple[int, torch.dtype], MarchCapacity] = {}
        self.captured: dict[tuple[int, torch.dtype], CapturedMarch] = {}
        self.fallbacks = self.deferred = self.captures = 0
        self.graph_error: str | None = None
        self.static_error: str | None = None  # set when march_static itself failed: march() from then on

    def __call__(self, origins: torch.Tensor, dirs: torch.Tensor,
                 phase: Callable[[str], AbstractContextManager] = no_phase) -> MarchResult:
        """The rays' march; `phase` wraps its stages as march()'s does (a graph's replay is one), and
        the read of its demand."""
        key = (origins.shape[0], origins.dtype)
        capacity = self.capacities.get(key)
        if capacity is not None and self.static_error is None:
            try:
                static = None
                if self.graphs:
                    with phase("graph replay"):
                        static = self._replay(key, capacity, origins, dirs)
                if static is None:  # no graphs, or the capture was just refused
                    static = march_static(origins, dirs, *self.field, capacity, phase)
                with phase("read demand"):
                    demand = static.read_demand()  # the frame's one host sync
            except RuntimeError as error:  # an operator this torch lacks here, or no memory for the room
                self.graphs, self.static_error = False, str(error)
                warnings.warn(f"the static march is given up, march() marches: {error}", stacklevel=2)
            else:
                if capacity.holds(demand):
                    self.deferred += not capacity.fits(demand)
                    return static.result(demand)
        self.fallbacks += 1
        result = march(origins, dirs, *self.field, self.rounds, phase)
        self.capacities[key] = MarchCapacity.covering(result.demand, self.rounds, capacity)
        self.captured.pop(key, None)  # captured with the old capacity
        return result

    def _replay(self, key: tuple[int, torch.dtype], capacity: MarchCapacity, origins: torch.Tensor,
                dirs: torch.Tensor) -> StaticMarch | None:
        """The static march of the rays replayed from the capacity's graph (captured first if need
        be); None, graphs given up, if the capture was refused."""
        captured = self.captured.get(key)
        if captured is None:
            rays = origins.clone(), dirs.clone()
            try:
                graph, output = capture(lambda: march_static(*rays, *self.field, capacity))
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
