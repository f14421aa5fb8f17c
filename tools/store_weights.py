"""Rewrite a checkpoint with its network weights stored as float16 (or float32), and say what it
changes: the file's size and how far its colors move over rays of its cars (largest difference,
and the PSNR of one against the other).

    python -m tools.store_weights --ckpt runs/rank8/model.pt --out checkpoints/cars_rank8.pt --dtype float16

Half the bytes, for a network that would pass the 16 MiB limit in float32 (an LFN with generated
weight changes of a high rank, TRAINING.md). The latent table and any modulation offsets stay
float32; loading widens the weights back to float32, so the file renders as the rounded weights
do on every backend. Rounding moves a weight by at most 2⁻¹¹ of itself.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path

import torch

from engine.cli import OneLineParser, UsageError, positive_int, run_entry_point
from models.cameras import DEFAULT_RADIUS
from models.checkpoint import WEIGHT_DTYPES, Checkpoint, load_checkpoint


@dataclasses.dataclass(frozen=True)
class StoreWeightsConfig:
    checkpoint: Path
    out: Path
    dtype: torch.dtype
    check_cars: int = 32  # cars whose colors are compared, spread over the table
    check_rays: int = 2048  # rays a car


@dataclasses.dataclass(frozen=True)
class StoredWeights:
    bytes_before: int
    bytes_after: int
    max_color_difference: float  # over the compared rays, colors in [0, 1]
    agreement_psnr: float  # dB, of the rewritten file's colors against the original's
    cars_compared: int


def probe_rays(count: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(count, 3) origins on the orbit's sphere and unit directions toward points near the car."""
    gen = torch.Generator().manual_seed(seed)
    origins = DEFAULT_RADIUS * torch.nn.functional.normalize(torch.randn(count, 3, generator=gen), dim=-1)
    targets = 0.5 * torch.randn(count, 3, generator=gen)
    return origins, torch.nn.functional.normalize(targets - origins, dim=-1)


@torch.no_grad()
def color_differences(before: Checkpoint, after: Checkpoint, cars: int, rays: int) -> torch.Tensor:
    """(cars', rays, 3) color differences of the two models over `rays` probe rays of `cars` cars
    spread evenly over the table (their latents; the models share them)."""
    count = len(before.instance_names)
    rows = torch.linspace(0, count - 1, min(cars, count)).round().long().unique()
    origins, dirs = probe_rays(rays)
    return torch.cat([after.model(origins[None], dirs[None], before.latents[row:row + 1])
                      - before.model(origins[None], dirs[None], before.latents[row:row + 1])
                      for row in rows.tolist()])


def store_weights(config: StoreWeightsConfig) -> StoredWeights:
    if config.out.resolve() == config.checkpoint.resolve():
        raise UsageError(f"--out {config.out}: that is --ckpt; write the copy elsewhere")
    before = load_checkpoint(config.checkpoint)
    dataclasses.replace(before, weights_dtype=config.dtype).save(config.out)
    after = load_checkpoint(config.out)
    differences = color_differences(before, after, config.check_cars, config.check_rays)
    mse = differences.square().mean().item()
    return StoredWeights(config.checkpoint.stat().st_size, config.out.stat().st_size,
                         differences.abs().max().item(),
                         -10 * math.log10(mse) if mse > 0 else math.inf, len(differences))


def report(config: StoreWeightsConfig, stored: StoredWeights) -> int:
    mib = 1024 * 1024
    print(f"wrote {config.out}: {stored.bytes_after / mib:.2f} MiB "
          f"({stored.bytes_before / mib:.2f} MiB before); colors differ by at most "
          f"{stored.max_color_difference:.2e}, agree to {stored.agreement_psnr:.1f} dB PSNR "
          f"({config.check_rays} rays of {stored.cars_compared} cars)")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", type=Path, required=True, help="the checkpoint to read (left as it is)")
    p.add_argument("--out", type=Path, required=True,
                   help="where to write the rewritten checkpoint (not --ckpt itself)")
    p.add_argument("--dtype", choices=sorted(WEIGHT_DTYPES), default="float16",
                   help="how the network weights are stored; latents stay float32 (default float16)")
    p.add_argument("--check-cars", type=positive_int, default=StoreWeightsConfig.check_cars,
                   help="cars whose colors are compared, spread over the latent table "
                        f"(default {StoreWeightsConfig.check_cars})")
    p.add_argument("--check-rays", type=positive_int, default=StoreWeightsConfig.check_rays,
                   help="probe rays per compared car, from the orbit's sphere toward the car "
                        f"(default {StoreWeightsConfig.check_rays})")
    args = p.parse_args(argv)
    config = config_from(args)
    return run_entry_point(lambda: report(config, store_weights(config)), args.debug)


def config_from(args: argparse.Namespace) -> StoreWeightsConfig:
    return StoreWeightsConfig(args.ckpt, args.out, WEIGHT_DTYPES[args.dtype], args.check_cars,
                              args.check_rays)


if __name__ == "__main__":
    sys.exit(main())
