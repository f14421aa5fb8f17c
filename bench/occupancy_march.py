"""The accelerated volumetric baseline against the dense one: evaluations, rounds, PSNR, time.

    python bench/occupancy_march.py [--device cpu] [--res 64 128] [--frames 3] [--occupancy-res 64 128]
                                    [--volumetric checkpoints/cars_volumetric.pt] [--json PATH]

For each resolution, the benchmark's orbit (elevation 20°, radius 3, --frames poses): the dense
frame of every pose once (the reference), then for each occupancy grid resolution the accelerated
renderer (models/occupancy.py), one warm-up frame, then every pose timed. Per row: ms median,
network evaluations per ray that hits the car (opacity > 0.5) and per ray (means over the poses),
the most marching rounds a chunk took, the worst PSNR against the dense frame, and what building the
grid cost (once per latent, not in the frame time). The evaluation counts do not depend on the
device; the milliseconds do. On CUDA the renderer marches from CUDA graphs (models/static_marcher.py):
`march_fallbacks` counts its timed frames that march() marched instead (any whose view needed more
room than the capacity planned from the warm-up frame had, or than it grew to since), and
`march_deferred` those a round of which left work to later rounds.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/occupancy_march.py` anywhere

from bench.volumetric_scripts import parse_volumetric_args, volumetric_parser, write_rows  # noqa: E402
from engine.benchmark import ELEVATION, RADIUS, device_name  # noqa: E402
from engine.cli import run_entry_point  # noqa: E402
from engine.metrics import psnr  # noqa: E402
from engine.timing import median_p90, time_frames  # noqa: E402
from models.cameras import orbit_pose  # noqa: E402
from models.checkpoint import load_checkpoint  # noqa: E402
from models.renderer import VolumetricRenderer  # noqa: E402
from models.resolution import Resolution  # noqa: E402


def measure(renderer: VolumetricRenderer, res: Resolution, poses: list[torch.Tensor],
            references: list[torch.Tensor]) -> dict:
    """Time `renderer` over `poses` (after one warm-up frame) and compare each frame with its dense
    reference."""
    renderer.render(poses[0], res)
    stats = []
    before = (renderer.marcher.fallbacks, renderer.marcher.deferred) if renderer.marcher else (0, 0)

    def frame(pose: torch.Tensor) -> None:
        image = renderer.render(pose, res)
        stats.append((renderer.evals_per_hit_ray, renderer.evals_per_ray_all, renderer.march_rounds, image))

    ms = time_frames(frame, poses, renderer.device)
    hit, every, rounds, images = zip(*stats, strict=True)
    median, p90 = median_p90(ms)
    worst = min(psnr(image.float(), reference) for image, reference in zip(images, references, strict=True))
    return {"res": str(res), "occupancy_res": renderer.occupancy_res, "ms_median": median, "ms_p90": p90,
            "evals_per_hit_ray": float(np.mean(hit)), "evals_per_ray": float(np.mean(every)),
            "march_rounds": max(rounds), "psnr_vs_dense": worst, "grid_build_ms": renderer.grid_build_ms,
            "grid_build_evaluations": renderer.grid.build_evaluations,
            "occupied_share": renderer.grid.occupied_share,
            "march_fallbacks": renderer.marcher.fallbacks - before[0] if renderer.marcher else None,
            "march_deferred": renderer.marcher.deferred - before[1] if renderer.marcher else None}


def main(args) -> int:
    device = torch.device(args.device)
    ckpt = load_checkpoint(args.volumetric)
    latent = ckpt.latents[ckpt.resolve_instance(args.instance)]
    poses = [orbit_pose(360.0 * k / args.frames, ELEVATION, RADIUS) for k in range(args.frames)]
    dense = VolumetricRenderer(ckpt.model, device, args.precision)
    dense.set_latent(latent)
    accelerated = []
    for occupancy_res in args.occupancy_res:
        renderer = VolumetricRenderer(ckpt.model, device, args.precision, sampling="accelerated",
                                      occupancy_res=occupancy_res)
        renderer.set_latent(latent)
        accelerated.append(renderer)
    rows = []
    for res in args.res:
        references = [dense.render(pose, res).float() for pose in poses]
        for renderer in accelerated:
            rows.append(measure(renderer, res, poses, references))
            print(rows[-1], flush=True)
    env = {"device": device_name(device), "precision": args.precision, "torch": torch.__version__,
           "volumetric": str(args.volumetric), "frames": args.frames,
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    print(f"\n{env['device']}, {args.precision}")
    print("res   grid  ms median  evals/hit ray  evals/ray  rounds  PSNR vs dense  grid build (per latent)")
    for row in rows:
        print(f"{row['res']:>4}  {row['occupancy_res']:>3}³  {row['ms_median']:9.1f}"
              f"  {row['evals_per_hit_ray']:13.2f}  {row['evals_per_ray']:9.2f}  {row['march_rounds']:6d}"
              f"  {row['psnr_vs_dense']:10.1f} dB  {row['grid_build_ms']:.0f} ms,"
              f" {row['grid_build_evaluations'] / 1e6:.2f} M evaluations")
    write_rows(args.json, env, rows)
    return 0


if __name__ == "__main__":
    parser = volumetric_parser(__doc__.splitlines()[0],
                               default_res=[Resolution.square(side) for side in (64, 128)])
    parser.add_argument("--frames", type=int, default=3,
                        help="orbit poses, spread evenly in azimuth, rendered at each size (default 3)")
    parser.add_argument("--occupancy-res", type=int, nargs="+", default=[64, 128],
                        help="occupancy grid cells per axis, a row each (default 64 128)")
    args = parse_volumetric_args(parser)
    sys.exit(run_entry_point(lambda: main(args), args.debug))
