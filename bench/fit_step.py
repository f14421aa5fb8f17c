"""The single-image fit's step, eager and replayed from a CUDA graph, timed in one run.

    python -m bench.fit_step [--ckpt checkpoints/cars.pt] [--device auto|cuda|cpu] [--rays 4096]
        [--steps 300] [--warmup 10] [--json results/fit_step_X.json]

Auto-decoding a photo (models/fitting.py) takes a few hundred steps of a few hundred small kernels
each. For each camera (given, and an estimated orbit refined with the latent), with and without the
photo's mirrored rays (the fit's default MIRROR_WEIGHT and 0: twice the rays or the observed ones
alone) and each way of running the step, a fit of one held-out-like photo (the checkpoint's first
car rendered at azimuth 40°, elevation 15°, its code replaced by the table's mean to start) runs
--warmup steps (the graph's eager steps and its capture among them), then --steps timed steps: each
with CUDA events on a GPU (it ends with the step's loss read back, as a viewer's step does), the
wall clock on a CPU. Reported: the median and p90 step, steps per second, the whole fit's seconds
at that pace, and how far the graph's latent ends from the eager one's (the same draws and
arithmetic; they differ by rounding). On a CPU there is no graph: only the eager row.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/fit_step.py` anywhere

from bench import DEFAULT_CKPT  # noqa: E402
from engine.benchmark import device_name  # noqa: E402
from engine.cli import OneLineParser, run_entry_point, write_json  # noqa: E402
from engine.timing import median_p90  # noqa: E402
from models.cameras import Orbit, intrinsics  # noqa: E402
from models.checkpoint import load_checkpoint  # noqa: E402
from models.fitting import MIRROR_WEIGHT, FitStep, fit_latent_steps  # noqa: E402
from models.inference import render_view  # noqa: E402
from models.step_timing import timed  # noqa: E402

PHOTO_ORBIT = Orbit(40.0, 15.0)
# The estimated camera starts a few degrees off, as the encoder's does (RESULTS.md: 1-2°).
ESTIMATE_OFFSET_DEG = (3.0, -2.0)


def timed_steps(steps: Iterator[FitStep], count: int, device: torch.device
                ) -> tuple[list[float], FitStep]:
    """Milliseconds of each of `count` steps, and the last step."""
    times, last = [], None
    for _ in range(count):
        last, ms = timed(device, lambda: next(steps))
        times.append(ms)
    return times, last


def measure(model, photo: torch.Tensor, camera, graph: bool, mirror_weight: float, rays: int,
            warmup: int, steps: int) -> tuple[dict, torch.Tensor]:
    device = next(model.parameters()).device
    res = photo.shape[0]
    fit = fit_latent_steps(model, photo[None], camera, intrinsics(res, res), rays_per_step=rays,
                           cuda_graph=graph, mirror_weight=mirror_weight)
    timed_steps(fit, warmup, device)
    times, last = timed_steps(fit, steps, device)
    fit.close()
    median, p90 = median_p90(times)
    row = {
        "step_ms_median": median,
        "step_ms_p90": p90,
        "steps_per_s": 1e3 / median,
        "fit_300_s_at_median": 0.3 * median,
        "final_psnr_on_batch": last.psnr,
    }
    return row, last.latent


def run(ckpt_path: Path, device: torch.device, rays: int, warmup: int, steps: int) -> dict:
    model = load_checkpoint(ckpt_path).model.to(device).eval()
    with torch.no_grad():
        photo = (render_view(model, model.latents.weight[0], PHOTO_ORBIT, 128) * 255).round().byte()
    cameras = {
        "given": PHOTO_ORBIT.cam2world()[None],
        "estimated": Orbit(PHOTO_ORBIT.azimuth + ESTIMATE_OFFSET_DEG[0],
                           PHOTO_ORBIT.elevation + ESTIMATE_OFFSET_DEG[1]),
    }
    ways = ["eager", "graph"] if device.type == "cuda" else ["eager"]
    rows = []
    for camera_name, camera in cameras.items():
        for mirror_weight in (0.0, MIRROR_WEIGHT):
            latents = {}
            for way in ways:
                row, latents[way] = measure(model, photo, camera, way == "graph", mirror_weight, rays,
                                            warmup, steps)
                rows.append({"camera": camera_name, "mirror_weight": mirror_weight, "step": way, **row})
            if len(latents) == 2:
                rows[-1]["latent_max_diff_vs_eager"] = float(
                    (latents["graph"] - latents["eager"]).abs().max())
                rows[-1]["speedup_vs_eager"] = rows[-2]["step_ms_median"] / rows[-1]["step_ms_median"]
    return {
        "device": device_name(device), "torch": torch.__version__, "checkpoint": str(ckpt_path),
        "rays_per_step": rays, "warmup_steps": warmup, "timed_steps": steps,
        "timer": "cuda-events" if device.type == "cuda" else "perf_counter",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "rows": rows,
    }


def report(result: dict, json_path: Path | None) -> None:
    print(f"{result['device']}, torch {result['torch']}, {result['rays_per_step']} rays a step, "
          f"median of {result['timed_steps']} steps ({result['timer']})")
    for row in result["rows"]:
        extra = (f", {row['speedup_vs_eager']:.1f}x eager, latent within "
                 f"{row['latent_max_diff_vs_eager']:.1e} of eager's" if "speedup_vs_eager" in row else "")
        print(f"  {row['camera']:<9} mirror {row['mirror_weight']:<4} {row['step']:<5} "
              f"{row['step_ms_median']:7.3f} ms a step "
              f"(p90 {row['step_ms_p90']:.3f}), 300 steps {row['fit_300_s_at_median']:.3f} s{extra}")
    if json_path:
        write_json(json_path, result)


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", type=Path, default=DEFAULT_CKPT,
                   help="LFN checkpoint; its first car is the photo "
                        "(default: the repository's checkpoints/cars.pt)")
    p.add_argument("--device", default="auto", help="auto: cuda when available")
    p.add_argument("--rays", type=int, default=4096,
                   help="photo rays a fitting step draws (default 4096; the mirrored fits add their "
                        "reflections)")
    p.add_argument("--steps", type=int, default=300, help="timed steps of each fit (default 300)")
    p.add_argument("--warmup", type=int, default=10,
                   help="untimed steps before them, the graph's capture among them (default 10)")
    p.add_argument("--json", type=Path, help="also write the result here")
    args = p.parse_args(argv)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu")
                          if args.device == "auto" else args.device)
    return run_entry_point(lambda: report(run(args.ckpt, device, args.rays, args.warmup, args.steps),
                                          args.json), args.debug)


if __name__ == "__main__":
    sys.exit(main())
