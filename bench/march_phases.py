"""Where the accelerated volumetric frame's time goes: the occupancy march (models/occupancy.py) by phase.

    python bench/march_phases.py [--device cpu] [--res 128 512] [--occupancy-res 128] [--azimuth 0]
                                 [--rounds 16 16 64] [--stop-slack 6] [--repeats 5]
                                 [--marcher dynamic static graph] [--network eager triton]
                                 [--volumetric checkpoints/cars_volumetric.pt] [--json PATH]

One march over all of a frame's rays (what the GPU renders at 512² in one chunk; a CPU frame renders
in chunks), with the benchmark's camera (elevation 20°, radius 3, the given azimuth) and the model's
occupancy grid for the latent, built once before. Each phase (the coarse lookup of sample blocks, the
fine lookup of their samples, the list of occupied samples; per round the selection of samples, the
network call and the compositing) is timed with CUDA events on a GPU, the wall clock on a CPU, after
a warm-up march: the median over --repeats marches. One more march runs under torch.profiler and
counts each phase's operators issued from Python (the launches a GPU pays, whatever their size; views
included) and the host syncs among them and their callees (nonzero and scalar reads; on a CPU they
cost nothing, on a GPU each waits for the stream). The counts, evaluations and rounds do not depend
on the device; the milliseconds do. Peak memory is the most the march had allocated at once beyond
what it was given: CUDA's allocator peak on a GPU, the profiled march's allocations and frees on a
CPU. --rounds and --stop-slack try another schedule than the renderer's for the device
(models/occupancy.py's MarchSchedule): fewer, larger rounds trade network evaluations for launches
and syncs, which only a GPU can weigh.

--marcher times each of models/static_marcher.py's MARCHERS in turn, one row each: `dynamic` is
march(), `static` march_static() run eagerly (its rounds' fixed sizes, no host sync but the demand's
read), `graph` the same replayed from a CUDA graph (one phase; CUDA only: skipped elsewhere), the
accelerated renderer's marcher on CUDA. A static marcher's warm-up is two marches (the first plans
its capacity, the second captures); `fallbacks` counts the measured marches that did not hold and
were marched again, `deferred` those a round of which left work to later rounds, and each row says
how far its colors are from march()'s and whether its evaluations are the same.

--network evaluates the samples eagerly (models/volumetric.py's inputs, then one operator a layer)
or through the fused Triton kernel (models/triton_field.py; CUDA with fp16 or bf16 only), a row
each; by default the renderer's choice (the kernel on a GPU). Each row's march() reference uses
its network.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile, record_function

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/march_phases.py` anywhere

from bench.volumetric_scripts import parse_volumetric_args, volumetric_parser, write_rows  # noqa: E402
from engine.benchmark import ELEVATION, RADIUS, device_name  # noqa: E402
from engine.cli import run_entry_point  # noqa: E402
from engine.timing import synchronize  # noqa: E402
from models.cameras import orbit_pose  # noqa: E402
from models.checkpoint import load_checkpoint  # noqa: E402
from models.folded_field import FoldedField  # noqa: E402
from models.occupancy import MarchSchedule, march, schedule_for  # noqa: E402
from models.renderer import OCCUPANCY_RES, VolumetricRenderer, frame_rays, fused_field_unavailable  # noqa: E402
from models.resolution import Resolution  # noqa: E402
from models.static_marcher import MARCHERS, StaticMarcher  # noqa: E402

PHASE_PREFIX = "phase: "
# Operators that wait for the GPU before they return (on CUDA): a result's size or a scalar.
HOST_SYNC_OPS = {"aten::nonzero", "aten::_local_scalar_dense"}
NETWORKS = ("eager", "triton")


class PhaseClock:
    """A march's `phase`: the time of each named phase of one march, CUDA events on a GPU (read
    after the march), perf_counter on a CPU."""

    def __init__(self, device: torch.device):
        self.device = device
        self.spans: list[tuple[str, object, object]] = []

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if self.device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            yield
            end.record()
        else:
            start = time.perf_counter()
            yield
            end = time.perf_counter()
        self.spans.append((name, start, end))

    def milliseconds(self) -> dict[str, float]:
        synchronize(self.device)
        if self.device.type == "cuda":
            return {name: start.elapsed_time(end) for name, start, end in self.spans}
        return {name: (end - start) * 1000.0 for name, start, end in self.spans}


@contextmanager
def profiled_phase(name: str) -> Iterator[None]:
    with record_function(PHASE_PREFIX + name):
        yield


def descendants(event) -> Iterator:
    for child in event.cpu_children:
        yield child
        yield from descendants(child)


def operator_counts(events) -> dict[str, dict[str, int]]:
    """Per phase: operators called directly from its Python code, and host syncs anywhere below."""
    counts = {}
    for event in events:
        if event.name.startswith(PHASE_PREFIX):
            counts[event.name.removeprefix(PHASE_PREFIX)] = {
                "ops": sum(child.name.startswith("aten::") for child in event.cpu_children),
                "host_syncs": sum(op.name in HOST_SYNC_OPS for op in descendants(event)),
            }
    return counts


def peak_allocated_mb(events) -> float:
    """The most bytes live at once from a profile's allocations and frees, in MB: each op's own
    (its callees' are theirs) and the frees outside ops, in the order they happened."""
    leaves = sorted((event for event in events if not event.cpu_children), key=lambda e: e.time_range.start)
    live = np.cumsum([event.cpu_memory_usage for event in leaves])
    return float(live.max(initial=0)) / 2**20


def measure(renderer: VolumetricRenderer, res: Resolution, azimuth: float, schedule: MarchSchedule,
            repeats: int, marcher: str, network: str) -> dict:
    cfg = renderer.model.config
    origins, dirs = frame_rays(orbit_pose(azimuth, ELEVATION, RADIUS), res, renderer.device)
    origins, dirs = origins.to(renderer.dtype), dirs.to(renderer.dtype)
    folded = FoldedField.of(renderer.field.mlp_tensors, cfg.frequencies, fused=network == "triton")
    field = (folded, cfg.samples_per_ray, renderer.grid)
    dynamic = march(origins, dirs, *field, schedule)  # the reference (and the grid's dilated volumes)
    static = None if marcher == "dynamic" else \
        StaticMarcher(*field, graphs=marcher == "graph", choose_faster=False, schedule=schedule)

    def run_march(phase):
        if static is None:
            return march(origins, dirs, *field, schedule, phase)
        return static(origins, dirs, phase)

    if static is not None:
        run_march(PhaseClock(renderer.device))  # plans its capacity
    result = run_march(PhaseClock(renderer.device))  # warm-up (and a graph's capture)
    planning_fallbacks = static.fallbacks if static else 0
    if renderer.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(renderer.device)
        given = torch.cuda.memory_allocated(renderer.device)
    phases, totals = defaultdict(list), []
    for _ in range(repeats):
        clock = PhaseClock(renderer.device)
        synchronize(renderer.device)
        start = time.perf_counter()
        run_march(clock)
        synchronize(renderer.device)
        totals.append((time.perf_counter() - start) * 1000.0)
        for name, ms in clock.milliseconds().items():
            phases[name].append(ms)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run_march(profiled_phase)
    counts = operator_counts(prof.events())
    evaluations = result.evaluations
    hit = result.opacity > 0.5
    return {
        "res": str(res), "rays": origins.shape[0], "azimuth": azimuth, "marcher": marcher, "network": network,
        "occupancy_res": renderer.grid.resolution, "round_sizes": list(schedule.rounds),
        "stop_slack": schedule.stop_slack,
        "static_rounds": len(static.capacities[origins.shape[0], origins.dtype].sizes) if static else None,
        "fallbacks": static.fallbacks - planning_fallbacks if static else 0,
        "deferred": static.deferred if static else 0,  # frames a round of which left work to later ones
        "graph_error": static.graph_error if static else None,  # a refused capture: it ran eagerly
        "color_max_diff_vs_dynamic": float((result.color.float() - dynamic.color.float()).abs().max()),
        "evaluations_equal_dynamic": bool(torch.equal(result.evaluations, dynamic.evaluations)),
        "march_ms_median": float(np.median(totals)),
        "phases": [{"phase": name, "ms_median": float(np.median(ms)), **counts.get(name, {})}
                   for name, ms in phases.items()],
        "ops": sum(count["ops"] for count in counts.values()),
        "host_syncs": sum(count["host_syncs"] for count in counts.values()),
        "rounds": result.rounds, "evaluations": int(evaluations.sum()),
        "evals_per_ray": float(evaluations.float().mean()),
        "evals_per_hit_ray": float(evaluations[hit].float().mean()) if bool(hit.any()) else 0.0,
        "peak_mem_mb": (torch.cuda.max_memory_allocated(renderer.device) - given) / 2**20
        if renderer.device.type == "cuda" else peak_allocated_mb(prof.events()),
    }


def main(args) -> int:
    device = torch.device(args.device)
    ckpt = load_checkpoint(args.volumetric)
    renderer = VolumetricRenderer(ckpt.model, device, args.precision, sampling="accelerated",
                                  occupancy_res=args.occupancy_res or OCCUPANCY_RES[device.type])
    renderer.set_latent(ckpt.latents[ckpt.resolve_instance(args.instance)])
    renderer.render(orbit_pose(args.azimuth, ELEVATION, RADIUS), Resolution.square(8))  # builds the grid
    marchers = [name for name in args.marcher if name != "graph" or device.type == "cuda"]
    if marchers != args.marcher:
        print("graph: skipped (CUDA graphs need a CUDA device)")
    default = schedule_for(device)
    schedule = MarchSchedule(tuple(args.rounds or default.rounds),
                             default.stop_slack if args.stop_slack is None else args.stop_slack)
    asked = args.network or ["triton" if renderer.fused_kernel else "eager"]  # the renderer's
    why_not = fused_field_unavailable(device, args.precision)
    networks = [name for name in asked if name == "eager" or why_not is None]
    if networks != asked:
        print(f"triton: skipped ({why_not})")
    rows = [measure(renderer, res, args.azimuth, schedule, args.repeats, marcher, network)
            for res in args.res for network in networks for marcher in marchers]
    env = {"device": device_name(device), "precision": args.precision, "torch": torch.__version__,
           "threads": torch.get_num_threads(), "volumetric": str(args.volumetric), "repeats": args.repeats,
           "timer": "cuda-events" if device.type == "cuda" else "perf_counter",
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    for row in rows:
        print(f"\n{env['device']}, {args.precision}, {row['res']}, {row['occupancy_res']}³ grid,"
              f" {row['marcher']}, {row['network']} network: march {row['march_ms_median']:.2f} ms,"
              f" {row['rounds']} rounds,"
              f" {row['evals_per_ray']:.2f} evaluations a ray "
              f"({row['evals_per_hit_ray']:.1f} a hit ray), {row['ops']} ops, {row['host_syncs']} host syncs,"
              f" peak {row['peak_mem_mb']:.0f} MB, {row['fallbacks']} fallbacks, {row['deferred']} deferred,"
              f" colors within"
              f" {row['color_max_diff_vs_dynamic']:.2g} of march()'s, evaluations"
              f" {'equal' if row['evaluations_equal_dynamic'] else 'NOT equal'}")
        if row["graph_error"]:
            print(f"  its CUDA graph capture failed, so it ran eagerly: {row['graph_error']}")
        for phase in row["phases"]:
            print(f"  {phase['phase']:<22} {phase['ms_median']:9.2f} ms  {phase.get('ops', 0):4d} ops"
                  f"  {phase.get('host_syncs', 0):2d} syncs")
    write_rows(args.json, env, rows)
    return 0


if __name__ == "__main__":
    parser = volumetric_parser(__doc__.splitlines()[0], default_res=[Resolution.square(128)])
    parser.add_argument("--occupancy-res", type=int, default=None,
                        help="occupancy grid cells per axis (default: the renderer's for the device)")
    parser.add_argument("--azimuth", type=float, default=0.0,
                        help="the camera's azimuth on the benchmark's orbit, degrees (default 0)")
    parser.add_argument("--rounds", type=int, nargs="+",
                        help="samples a ray takes in each marching round, the last repeating "
                             "(default: the renderer's schedule for the device)")
    parser.add_argument("--stop-slack", type=float,
                        help="a ray takes at most this times the samples its optical depth says it "
                             "needs in a round (default: the device's schedule)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed marches after the warm-up; each phase's median is over them (default 5)")
    parser.add_argument("--marcher", nargs="+", choices=MARCHERS, default=["dynamic"],
                        help="the marchers to time, a row each (graph: CUDA only)")
    parser.add_argument("--network", nargs="+", choices=NETWORKS,
                        help="how the samples are evaluated, a row each (triton: CUDA, fp16 or bf16; "
                             "default: the renderer's choice here)")
    args = parse_volumetric_args(parser)
    sys.exit(run_entry_point(lambda: main(args), args.debug))
