"""The volumetric baseline as interactive renderers run it: empty-space skipping and early stopping.

Dense rendering (models/volumetric.py) evaluates the network at all 196 samples of every ray. Most
of them are in empty space or behind the opaque surface, where they change nothing visible.
instant-ngp and nerfacc skip both, and so does this module:

1. An occupancy grid over the unit sphere's cube, built from the model's own density for the
   current latent: a cell is occupied if the density at any of its 8 corners, seen from any of
   PROBE_DIRECTIONS (this network's density also sees the direction), exceeds DENSITY_THRESHOLD.
   Corners are shared between neighbouring cells, so a surface between two probes marks both
   cells without a dilation pass. The build goes coarse to fine: the corners of a grid of half
   the resolution first, then only the fine corners near the coarse cells that were occupied.
2. Marching: the dense sample positions are kept exactly (so the image matches the dense one).
   The samples in occupied cells are found coarse to fine, without a pass over every sample: the
   centre of each block of SAMPLE_BLOCK consecutive samples is looked up in the grid dilated by the
   block's reach, and only the samples of the blocks found there are looked up one by one. Each
   ray's list of its occupied samples is then marched in rounds of up to a MarchSchedule's samples (fewer
   once the ray's density says it turns opaque sooner), only over the rays still marching, and a ray
   stops once its transmittance falls under EARLY_STOP_TRANSMITTANCE or its list ends. march() sizes
   every tensor by what the rays need (host syncs); march_static() runs the same march in the fixed
   sizes of a MarchCapacity, which models/static_marcher.py replays from CUDA graphs.

A skipped sample in a cell with no corner over the threshold has, where the density is smooth
over a cell, an alpha under ~1e-4 at the dense step; the rest of a stopped ray could add at most
its remaining transmittance. The benchmark checks the result against the dense render (PSNR), so a
speed-up never comes from a worse picture.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from itertools import chain, islice, repeat

import torch
import torch.nn.functional as F

from models.folded_field import FoldedField
from models.volumetric import sample_weights, sphere_interval

DENSITY_THRESHOLD = 0.01  # nerfacc's default for its occupancy grid
# The coarse pass keeps cells at a tenth of the threshold, and their neighbours, so that a peak
# between coarse corners still has its fine corners probed. On the cars checkpoint at 128³ the
# build then marks every cell that probing all 129³ corners marks (46 of 143 k lost without it).
COARSE_MARGIN = 0.1
EARLY_STOP_TRANSMITTANCE = 1e-4


@dataclass(frozen=True)
class MarchSchedule:
    """How the occupied samples of the rays still marching are taken, round by round."""

    rounds: tuple[int, ...]  # samples a ray takes in each round; the last size repeats
    # A ray that has met density takes, within a round, at most `stop_slack` times the samples its
    # latest optical depth says it needs to turn opaque. Density mostly rises into a surface, where
    # that count is already more than enough; the margin spares another round where it falls off.
    stop_slack: float

    def __post_init__(self):
        # a ray that took nothing in a round would march forever
        if not self.rounds or min(self.rounds) < 1 or not self.stop_slack > 0:
            raise ValueError(f"a march schedule needs rounds of at least one sample and a positive "
                             f"stop slack, not {self.rounds} and {self.stop_slack}")


# Most rays that hit the car stop within ~20 occupied samples. On a CPU the evaluations are the
# cost: a first round of 8 covers many, small rounds then stop the rest close to where they turn
# opaque, and doubling rounds finish the few long, faint rays.
CPU_SCHEDULE = MarchSchedule((8, 4, 4, 8, 16, 32, 64), 1.5)
# On a GPU every round costs ~150 operators (and two host syncs in march()) however few rays it
# runs, and replayed from a CUDA graph it still pays its padded kernels over every ray: fewer,
# fuller rounds win. 4-5 rounds instead of 9-11 for +25 % evaluations (19 -> 24 a hit ray): at
# 512² on an H100 the graph march 13.7 -> 12.3 ms, march() 26 -> 18 ms, at 1920x1080 the faster
# of the two 49.6 -> 48.1 ms; on this CPU (128², march()) 278 -> 399 ms, so the CPU keeps its own
# (BENCHMARKS.md, "Fewer, fuller rounds on a GPU"; results/march_schedules_h100.json).
GPU_SCHEDULE = MarchSchedule((16, 16, 64), 6.0)


def schedule_for(device: torch.device) -> MarchSchedule:
    return GPU_SCHEDULE if device.type == "cuda" else CPU_SCHEDULE


# Consecutive samples of a ray whose block is tested at its centre before its samples are (the
# centre is looked up in the grid dilated by the block's reach). On the cars checkpoint at 256² with
# the 128³ grid, 8 leaves ~2.6 blocks of a ray's 25 to look up sample by sample: ~46 lookups a ray
# instead of 196, for its ~12 occupied samples; 4 and 16 cost about as many.
SAMPLE_BLOCK = 8
# Axis directions both ways: density is read from every side a camera can see the cell from.
PROBE_DIRECTIONS = ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1))


@dataclass
class OccupancyGrid:
    occupied: torch.Tensor  # (G, G, G) bool over the cube [-1, 1]^3, indexed [x, y, z]
    build_evaluations: int = 0  # density evaluations the build took (per latent, not per frame)
    # grid_sample volumes, made once per grid: cells dilated by 0, 1, ... cells → (1, 1, G, G, G)
    _volumes: dict[int, torch.Tensor] = field(default_factory=dict, repr=False, compare=False)

    @property
    def resolution(self) -> int:
        return self.occupied.shape[0]

    def lookup(self, points: torch.Tensor, dilation: int = 0) -> torch.Tensor:
        """(..., 3) points → (...) bool: inside an occupied cell (outside the cube: empty), or with
        `dilation` within that many cells of one along every axis (outside the cube: as the nearest
        cell on its surface, which is at least as near to every cell)."""
        # grid_sample's nearest mode reads the cell a point is in, in one pass over the points,
        # where integer indexing takes a dozen passes over (..., 3) tensors. A dilated lookup is a
        # test for points near occupied cells: one just outside the cube (a block's centre while its
        # samples lie on a face, in fp16) must still find the cells inside.
        found = F.grid_sample(self._volume(dilation), points.reshape(1, -1, 1, 1, 3).float(), mode="nearest",
                              padding_mode="border" if dilation else "zeros", align_corners=False)
        return found.view(points.shape[:-1]) > 0

    def _volume(self, dilation: int) -> torch.Tensor:
        if dilation not in self._volumes:
            volume = self.occupied.permute(2, 1, 0)[None, None].float()  # its (D, H, W) is our (z, y, x)
            if dilation:  # a cube of 2 * dilation + 1 cells, one axis at a time
                for kernel in ((1, 1, 2 * dilation + 1), (1, 2 * dilation + 1, 1), (2 * dilation + 1, 1, 1)):
                    volume = F.max_pool3d(volume, kernel, stride=1, padding=tuple(k // 2 for k in kernel))
            self._volumes[dilation] = volume
        return self._volumes[dilation]

    @property
    def occupied_share(self) -> float:
        return float(self.occupied.float().mean())


def cell_centers(resolution: int, device: torch.device) -> torch.Tensor:
    """(G, G, G, 3) centers of the grid's cells in [-1, 1]^3, indexed [x, y, z]."""
    axis = (torch.arange(resolution, device=device, dtype=torch.float32) + 0.5) * (2.0 / resolution) - 1.0
    return torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1)


def cell_corners(resolution: int, device: torch.device) -> torch.Tensor:
    """(G+1, G+1, G+1, 3) corners of the grid's cells in [-1, 1]^3, indexed [x, y, z]."""
    axis = torch.linspace(-1.0, 1.0, resolution + 1, device=device)
    return torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1)


def peak_density(
    density: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], points: torch.Tensor, chunk: int,
    before_chunk: Callable[[], None] = lambda: None,
) -> torch.Tensor:
    """(P, 3) points → (P,) the largest density over PROBE_DIRECTIONS; `before_chunk` runs before
    each chunk's evaluation (it may raise to give the build up)."""
    peak = torch.zeros(points.shape[0], device=points.device)
    for direction in PROBE_DIRECTIONS:
        dirs = torch.tensor(direction, device=points.device, dtype=torch.float32).expand_as(points)
        for start in range(0, points.shape[0], chunk):
            before_chunk()
            stop = start + chunk
            values = density(points[start:stop], dirs[start:stop]).float()
            peak[start:stop] = torch.maximum(peak[start:stop], values)
    return peak


def cells_over(corner_peak: torch.Tensor, threshold: float) -> torch.Tensor:
    """(G+1)^3 densities at the corners → (G, G, G) bool: any of a cell's 8 corners over threshold."""
    return F.max_pool3d(corner_peak[None, None], kernel_size=2, stride=1)[0, 0] > threshold


def touching_corners(cells: torch.Tensor) -> torch.Tensor:
    """(G, G, G) bool cells → (G+1)^3 bool: the corners of any of them."""
    padded = F.pad(cells[None, None].float(), (1, 1, 1, 1, 1, 1))
    return F.max_pool3d(padded, kernel_size=2, stride=1)[0, 0] > 0


@torch.no_grad()
def build_occupancy(
    density: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], resolution: int, device: torch.device,
    chunk: int = 1 << 16, before_chunk: Callable[[], None] = lambda: None,
) -> OccupancyGrid:
    """The grid (an even `resolution` per axis) of cells where `density(points (N, 3), dirs (N, 3))
    → (N,)` exceeds the threshold at any corner from any of PROBE_DIRECTIONS, built coarse to fine.
    `before_chunk` runs before each chunk of `chunk` density evaluations (a CPU build takes seconds:
    a caller may raise there to give it up)."""
    if resolution % 2:
        raise ValueError(f"occupancy resolution {resolution}: must be even (built from half of it)")
    half = resolution // 2
    coarse = peak_density(density, cell_corners(half, device).view(-1, 3), chunk, before_chunk)
    coarse = coarse.view((half + 1,) * 3)
    kept = F.max_pool3d(cells_over(coarse, DENSITY_THRESHOLD * COARSE_MARGIN)[None, None].float(),
                        kernel_size=3, stride=1, padding=1)[0, 0] > 0
    fine_cells = kept.repeat_interleave(2, 0).repeat_interleave(2, 1).repeat_interleave(2, 2)
    fine = torch.zeros((resolution + 1,) * 3, device=device)
    fine[::2, ::2, ::2] = coarse  # the coarse corners are every other fine one
    wanted = touching_corners(fine_cells)
    wanted[::2, ::2, ::2] = False
    fine[wanted] = peak_density(density, cell_corners(resolution, device)[wanted], chunk, before_chunk)
    evaluations = (coarse.numel() + int(wanted.sum())) * len(PROBE_DIRECTIONS)
    return OccupancyGrid(cells_over(fine, DENSITY_THRESHOLD), evaluations)


@dataclass
class MarchDemand:
    """What a march over a set of rays needed: the sizes march() gave its tensors, which a static
    march (march_static) must have room for."""

    dilation: int  # cells the block lookup's grid is dilated by (in fp16 it grows with the rays' far end)
    blocks: int  # (ray, block) pairs near occupied cells, looked up sample by sample
    samples: int  # samples in occupied cells
    rays: tuple[int, ...]  # rays marching in each round
    evaluations: tuple[int, ...]  # network evaluations in each round
    unfinished: int = 0  # rays still marching after a static march's last round

    @property
    def rounds(self) -> int:
        return sum(count > 0 for count in self.rays)


@dataclass
class MarchResult:
    color: torch.Tensor  # (N, 3) over the white background
    depth: torch.Tensor  # (N,) expected distance, normalised by opacity
    opacity: torch.Tensor  # (N,)
    evaluations: torch.Tensor  # (N,) network evaluations each ray took
    demand: MarchDemand

    @property
    def rounds(self) -> int:
        """Marching rounds the rays took (in march() each one network call and two host syncs)."""
        return self.demand.rounds


# A static march's room for each count of a MarchDemand: this share more, and this many more (tiny
# frames), so that the next views of a moving camera still fit. A round's padded evaluations cost
# network time as real ones do, and a round without room for every marching ray or evaluation leaves
# the rest to the next rounds; the lists of occupied blocks and samples cost little padded, but a
# frame whose lists do not fit is marched again by march() (~a dynamic frame and a new capture).
# Along the benchmark's orbit the counts vary by ~1.4× (cars_volumetric.pt, 128², 50 views).
CAPACITY_MARGIN = 1.2
LIST_MARGIN = 1.5
CAPACITY_SLACK = 256
# A round's room is at least this share of the busiest round's rays and of all the evaluations: the
# late rounds, of few rays each, vary most from view to view, and take what fuller rounds left.
ROUND_FLOOR = 0.03
# Rounds a static march has beyond those its planning march took: they take what fuller rounds left,
# and the rays of a view that take a round or two more. A round of few rays costs its launches.
EXTRA_ROUNDS = 2


def with_margin(count: int, margin: float = CAPACITY_MARGIN) -> int:
    return math.ceil(count * margin) + CAPACITY_SLACK


@dataclass(frozen=True)
class MarchCapacity:
    """The fixed sizes of a static march: its rounds and the room its tensors have in each stage."""

    sizes: tuple[int, ...]  # samples a ray takes in each round: a fixed number of rounds
    stop_slack: float  # the schedule's
    dilation: int
    blocks: int
    samples: int
    rays: tuple[int, ...]  # per round
    evaluations: tuple[int, ...]  # per round

    @classmethod
    def covering(cls, demand: MarchDemand, schedule: MarchSchedule,
                 previous: MarchCapacity | None = None) -> MarchCapacity:
        """Room for `demand` (a march in `schedule`) with margin in EXTRA_ROUNDS more rounds than
        it took, and at least `previous`'s."""
        count = max(len(demand.rays) + EXTRA_ROUNDS, len(previous.sizes) if previous else 0)
        sizes = tuple(islice(round_sizes(schedule.rounds), count))

        def room(needed: Sequence[int], floor: float, had: Sequence[int] | None) -> tuple[int, ...]:
            padded = tuple(needed) + (0,) * (count - len(needed))
            wanted = tuple(max(with_margin(n), math.ceil(floor)) for n in padded)
            return wanted if had is None else tuple(map(max, wanted, tuple(had) + (0,) * (count - len(had))))

        rays = room(demand.rays, ROUND_FLOOR * max(demand.rays, default=0), previous and previous.rays)
        # a round evaluates at most each of its rays' `size` samples
        wanted = room(demand.evaluations, ROUND_FLOOR * sum(demand.evaluations),
                      previous and previous.evaluations)
        evaluations = tuple(min(e, r * s) for e, r, s in zip(wanted, rays, sizes, strict=True))
        return cls(sizes, schedule.stop_slack, max(demand.dilation, previous.dilation if previous else 0),
                   max(with_margin(demand.blocks, LIST_MARGIN), previous.blocks if previous else 0),
                   max(with_margin(demand.samples, LIST_MARGIN), previous.samples if previous else 0),
                   rays, evaluations)

    def holds(self, demand: MarchDemand) -> bool:
        """Whether a static march with `demand` is right: its lists had room, its lookup's dilation
        sufficed, and every ray finished. Otherwise it has wrong pixels."""
        return (demand.unfinished == 0 and demand.dilation <= self.dilation and demand.blocks <= self.blocks
                and demand.samples <= self.samples)

    def fits(self, demand: MarchDemand) -> bool:
        """Whether a static march with `demand` is march()'s bit for bit: it holds, and every round
        had room for all it wanted (a round without leaves the rest to later ones, so a ray may stop
        a sample or so elsewhere: colors within EARLY_STOP_TRANSMITTANCE)."""
        return (self.holds(demand) and len(demand.rays) <= len(self.sizes)
                and all(map(int.__le__, demand.rays, self.rays))
                and all(map(int.__le__, demand.evaluations, self.evaluations)))


@dataclass
class OccupiedSamples:
    """Every ray's samples in occupied cells in one list, ray after ray and in order along each ray:
    ray i's are distances[first[i]:first[i] + counts[i]] (a static list is padded past the last)."""

    distances: torch.Tensor  # (M,) in the rays' dtype, equal to the dense render's distances
    counts: torch.Tensor  # (N,) long
    first: torch.Tensor  # (N,) long
    step: torch.Tensor  # (N,) the rays' sample length (0 on a ray that misses the unit sphere)
    dilation: int | torch.Tensor  # what the rays needed (MarchDemand): ints, or 0-d tensors if static
    blocks: int | torch.Tensor
    samples: int | torch.Tensor


def round_sizes(rounds: Sequence[int]) -> Iterator[int]:
    """The sizes of `rounds`, then its last one forever."""
    return chain(rounds, repeat(rounds[-1]))


def no_phase(name: str) -> AbstractContextManager:
    return nullcontext()


def sample_distances(near: torch.Tensor, step: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Distances of samples `index` (long, broadcast with near and step) at bin centres, computed
    as models.volumetric.sample_along_rays does without jitter, so they are bit-equal to its."""
    return near + (index.to(near.dtype) + 0.5) * step


def compact(mask: torch.Tensor, capacity: int | None) -> tuple[torch.Tensor, int | torch.Tensor]:
    """The indices of a 1-D mask's set entries, in order, and how many there are. Without a capacity,
    all of them (the host waits for the count). With one, exactly `capacity`, padded with mask.numel()
    (one past the end), and the count a 0-d tensor that may exceed it: nothing waits."""
    if capacity is None:
        found = mask.nonzero()[:, 0]
        return found, found.numel()
    return torch.nonzero_static(mask, size=capacity, fill_value=mask.numel())[:, 0], mask.sum()


def block_dilation(far_max: float | torch.Tensor, samples: int, resolution: int, dtype: torch.dtype):
    """Cells the grid must be dilated by for a block's centre to find every cell its samples may
    touch, on rays ending at most `far_max` away (a float, or a 0-d float64 tensor: then a tensor)."""
    # Samples are at most 2 / samples apart (the sphere's diameter), so a block reaches this far from
    # its centre. A sample's position, computed in the rays' dtype as the dense render does, lies off
    # the exact one by its four roundings (offset, distance, times the direction, plus the origin),
    # each half an ulp: at most eps / 2 * (3 + 2 * far); twice that is allowed (fp16: 0.01 at far 4).
    rounding = torch.finfo(dtype).eps * (3.0 + 2.0 * far_max)
    cells = ((SAMPLE_BLOCK - 1) / 2 * (2.0 / samples) + rounding) * resolution / 2.0
    return math.ceil(cells) if isinstance(cells, float) else torch.ceil(cells).long()


def occupied_samples(
    origins: torch.Tensor, dirs: torch.Tensor, samples: int, grid: OccupancyGrid,
    phase: Callable[[str], AbstractContextManager] = no_phase, capacity: MarchCapacity | None = None,
) -> OccupiedSamples:
    """The dense render's sample positions of (N, 3) rays that lie in occupied cells, found block by
    block (SAMPLE_BLOCK): the samples of a block whose centre is farther from every occupied cell
    than the block reaches are never looked up. A ray that misses the unit sphere has samples of
    length 0 (models/volumetric.py): nothing to see. With a `capacity`, the lists have its fixed
    sizes and nothing waits for the device (the counts may then exceed the room)."""
    near, far = sphere_interval(origins, dirs)
    step = (far - near) / samples
    blocks = -(-samples // SAMPLE_BLOCK)
    with phase("coarse lookup"):
        block_start = torch.arange(blocks, device=origins.device) * SAMPLE_BLOCK
        block_centre = (block_start + (torch.clamp(samples - block_start, max=SAMPLE_BLOCK) - 1) / 2).float()
        centre_t = near.float()[:, None] + (block_centre + 0.5) * step.float()[:, None]
        centres = origins.float()[:, None] + centre_t[..., None] * dirs.float()[:, None]
        if capacity is None:
            dilation = needed = block_dilation(float(far.max() if far.numel() else 0.0), samples,
                                               grid.resolution, origins.dtype)
        else:  # the capacity's; a frame that needs more does not fit it
            dilation = capacity.dilation
            needed = block_dilation(far.max().double(), samples, grid.resolution, origins.dtype)
        near_occupied = grid.lookup(centres, dilation) & (step > 0)[:, None]
    with phase("fine lookup"):
        # in order: ray after ray, block after block; padding: a block of the last ray, looked up in
        # vain (below)
        found, found_count = compact(near_occupied.view(-1), capacity and capacity.blocks)
        ray, block = (found // blocks).clamp(max=max(origins.shape[0] - 1, 0)), found % blocks
        index = block_start[block, None] + torch.arange(SAMPLE_BLOCK, device=origins.device)
        t = sample_distances(near[ray, None], step[ray, None], index)
        points = origins[ray, None] + t[..., None] * dirs[ray, None]
        occupied = grid.lookup(points) & (index < samples) & (found < near_occupied.numel())[:, None]
    with phase("sample list"):
        counts = torch.zeros(origins.shape[0], dtype=torch.long, device=origins.device)
        counts.index_add_(0, ray, occupied.sum(1))
        listed, listed_count = compact(occupied.view(-1), capacity and capacity.samples)
        distances = t.view(-1)[listed.clamp(max=max(t.numel() - 1, 0))]
        return OccupiedSamples(distances, counts, torch.cumsum(counts, 0) - counts, step, needed, found_count,
                               listed_count)


@dataclass
class StaticMarch:
    """A static march's results, tensors of fixed sizes (a CUDA graph's outputs), and its demand:
    read it (the frame's one host sync) before trusting them."""

    color: torch.Tensor
    depth: torch.Tensor
    opacity: torch.Tensor
    evaluations: torch.Tensor
    demand: torch.Tensor  # (5 + 2 * rounds,) long: MarchDemand's counts, in its order

    def read_demand(self) -> MarchDemand:
        dilation, blocks, samples, *per_round, unfinished = self.demand.tolist()
        rounds = len(per_round) // 2
        return MarchDemand(dilation, blocks, samples, tuple(per_round[:rounds]), tuple(per_round[rounds:]),
                           unfinished)

    def result(self, demand: MarchDemand) -> MarchResult:
        return MarchResult(self.color, self.depth, self.opacity, self.evaluations, demand)


@torch.no_grad()
def march(
    origins: torch.Tensor, dirs: torch.Tensor, field: FoldedField, samples: int, grid: OccupancyGrid,
    schedule: MarchSchedule = CPU_SCHEDULE, phase: Callable[[str], AbstractContextManager] = no_phase,
) -> MarchResult:
    """Render (N, 3) rays at the dense sample positions, evaluating `field` only where the grid
    says occupied and only while the ray can still be seen through. Each round's tensors are as
    large as the rays it has need (two host syncs a round). `phase(name)` wraps each stage of the
    work (bench/march_phases.py times them); by default nothing."""
    marched = _march(origins, dirs, field, samples, grid, round_sizes(schedule.rounds), schedule.stop_slack,
                     None, phase)
    listed, rays, evaluations = marched.demand
    demand = MarchDemand(listed.dilation, listed.blocks, listed.samples, tuple(rays), tuple(evaluations))
    return MarchResult(marched.color, marched.depth, marched.opacity, marched.evaluations, demand)


@torch.no_grad()
def march_static(
    origins: torch.Tensor, dirs: torch.Tensor, field: FoldedField, samples: int, grid: OccupancyGrid,
    capacity: MarchCapacity, phase: Callable[[str], AbstractContextManager] = no_phase,
) -> StaticMarch:
    """march() in `capacity`'s rounds with its fixed sizes: the same launches whatever the rays, and
    no host sync, so that a CUDA graph can replay it. Padding entries evaluate the network on
    harmless inputs and are discarded. A round without room for all its rays or evaluations takes
    the first ones and leaves the rest to the next rounds. Its results are march()'s bit for bit
    where the demand fits the capacity, right (within EARLY_STOP_TRANSMITTANCE) where the capacity
    holds it, and wrong otherwise (StaticMarch.read_demand, MarchCapacity.fits and holds)."""
    marched = _march(origins, dirs, field, samples, grid, capacity.sizes, capacity.stop_slack, capacity,
                     phase)
    listed, rays, evaluations = marched.demand
    counts = [listed.dilation, listed.blocks, listed.samples, *rays, *evaluations, marched.unfinished]
    return StaticMarch(marched.color, marched.depth, marched.opacity, marched.evaluations,
                       torch.stack([count.to(torch.long) for count in counts]))


@dataclass
class _Marched:
    color: torch.Tensor
    depth: torch.Tensor
    opacity: torch.Tensor
    evaluations: torch.Tensor
    demand: tuple[OccupiedSamples, list, list]  # the list, rays and evaluations per round
    unfinished: torch.Tensor | None


def _march(
    origins: torch.Tensor, dirs: torch.Tensor, field: FoldedField, samples: int, grid: OccupancyGrid,
    sizes: Iterable[int], stop_slack: float, capacity: MarchCapacity | None,
    phase: Callable[[str], AbstractContextManager],
) -> _Marched:
    """march() without a capacity (until no ray marches), march_static() with one (every round)."""
    n, device = origins.shape[0], origins.device
    listed = occupied_samples(origins, dirs, samples, grid, phase, capacity)
    with phase("march setup"):
        # Each ray's state has one row more, never marching: a static round's padding reads and
        # writes it, and what it gathers is discarded.
        step = F.pad(listed.step.float(), (0, 1))
        ray_origins, ray_dirs = F.pad(origins, (0, 0, 0, 1)), F.pad(dirs, (0, 0, 0, 1))
        counts, first = F.pad(listed.counts, (0, 1)), F.pad(listed.first, (0, 1))
        transmittance = torch.ones(n + 1, device=device)
        color = torch.zeros(n + 1, 3, device=device)
        depth = torch.zeros(n + 1, device=device)
        # also where each ray is in its list
        evaluations = torch.zeros(n + 1, dtype=torch.long, device=device)
        optical_depth = torch.zeros(n + 1, device=device)  # of each ray's latest sample; 0 before the first
        marching = listed.counts > 0  # padded with n, a static round's padding is the extra row
        last = max(listed.distances.numel() - 1, 0)
    demand_rays, demand_evaluations = [], []
    for number, size in enumerate(sizes, 1):
        with phase(f"round {number} select"):
            rays, marching_count = compact(marching, capacity and capacity.rays[number - 1])
            if capacity is None and marching_count == 0:
                break
            # Each marching ray's state is read once a round here and written back once below.
            ray_transmittance, ray_evaluations = transmittance[rays], evaluations[rays]
            ray_counts = counts[rays]
            # At its latest sample's optical depth a ray turns opaque in ln(T / ε) / depth more
            # samples: it takes up to `stop_slack` times that many this round (all `size` while it
            # has seen nothing).
            seen_through = ray_transmittance / EARLY_STOP_TRANSMITTANCE
            needed = stop_slack * torch.log(seen_through) / optical_depth[rays]
            offset = torch.arange(size, device=device)
            rank = ray_evaluations[:, None] + offset
            # (A, size), a prefix of each row: a ray's list may end, or its need be met, within the round
            valid = (rank < ray_counts[:, None]) & (offset < needed[:, None])
            t_round = listed.distances[(first[rays, None] + rank).clamp(max=last)]
            taken = valid
            if capacity is not None:  # without room for all, the first ones in order: each row a prefix
                room = capacity.evaluations[number - 1]
                taken = valid & (torch.cumsum(valid.view(-1), 0).view(valid.shape) <= room)
            entries, entry_count = compact(taken.view(-1), capacity and capacity.evaluations[number - 1])
            evaluated = rays[(entries // size).clamp(max=rays.numel() - 1)]
            demand_rays.append(marching_count)
            demand_evaluations.append(entry_count if capacity is None else valid.sum())
        with phase(f"round {number} network"):
            t_evaluated = t_round.view(-1)[entries.clamp(max=valid.numel() - 1)]
            decoded_density, decoded_rgb = field.at_samples(ray_origins, ray_dirs, evaluated, t_evaluated)
        with phase(f"round {number} composite"):
            # one slot past the round's samples takes the padding's results
            density = torch.zeros(valid.numel() + 1, device=device)
            rgb = torch.zeros(valid.numel() + 1, 3, device=device)
            density[entries], rgb[entries] = decoded_density, decoded_rgb
            density, rgb = density[:-1].view(valid.shape), rgb[:-1].view(*valid.shape, 3)
            # Skipped samples between these ones add nothing (alpha 0), so the round composites as if
            # its samples were adjacent.
            ray_step = step[rays, None]
            round_weights, through = sample_weights(density, ray_step)
            weights = ray_transmittance[:, None] * round_weights
            # A ray is in `rays` once (but the padding row): index_add_ adds to its row once, as
            # `color[rays] += ...` would.
            color.index_add_(0, rays, (weights[..., None] * rgb).sum(1))
            depth.index_add_(0, rays, (weights * t_round.float()).sum(1))
            ray_transmittance = ray_transmittance * through
            transmittance[rays] = ray_transmittance
            # at least 1 on a marching ray of march(): it has samples left and transmittance to lose;
            # 0 on a static round's padding and on rays it had no room for
            took = taken.sum(1)
            ray_evaluations = ray_evaluations + took
            evaluations[rays] = ray_evaluations
            latest = (density * ray_step).gather(1, took.clamp(min=1)[:, None] - 1)[:, 0]
            optical_depth[rays] = torch.where(took > 0, latest, optical_depth[rays])
            marching = ((transmittance > EARLY_STOP_TRANSMITTANCE) & (counts > evaluations))[:n]
    transmittance, evaluations = transmittance[:n], evaluations[:n]
    opacity = 1.0 - transmittance
    unfinished = marching.sum() if capacity else None
    return _Marched(color[:n] + transmittance[:, None], depth[:n] / opacity.clamp(min=1e-6), opacity,
                    evaluations, (listed, demand_rays, demand_evaluations), unfinished)
