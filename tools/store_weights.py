"""Rewrite a checkpoint with its network weights stored as float16 (or float32), and say what it
changes: the file's size and how far its colors move over rays of its cars (largest difference,
and the PSNR of one against the other).

    python -m tools.store_weights --ckpt runs/rank8/model.pt --out checkpoints/cars_rank8.pt --dtype float16

Half the bytes, for a network that would pass the 16 MiB limit in float32 (an LFN with generated
weight changes of a high rank, TRAINING.md). The latent table and any modulation offsets stay
float32; loading widens the weights back to float32, so the file renders as the rounded weights
do on every backend. Rounding moves a weight by at most 2⁻¹¹ of itself.

An encoder file (`CKPT.encoder.pt`) is rewritten the same way, so that it and a large checkpoint
stay under the limit together; the report then says how far its codes and poses move over
synthetic photos (a colored blob on white), not its colors.
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
from models.encoder import CarEncoder, angular_distance, is_encoder_file, load_encoder, store_encoder_as

PROBE_PHOTOS = 32  # synthetic photos an encoder's outputs are compared on


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


@dataclasses.dataclass(frozen=True)
class StoredEncoderWeights:
    bytes_before: int
    bytes_after: int
    max_latent_change: float  # |Δ code| / |code|, the largest over the probe photos
    max_elevation_change: float  # degrees
    max_azimuth_change: float  # degrees, the most probable azimuth
    photos_compared: int


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


def probe_photos(count: int, res: int, seed: int = 0) -> torch.Tensor:
    """(count, 3, res, res) in [0, 1]: an ellipse of smoothly varying color on white, one per
    photo, of random size and place; what an encoder sees, without a data set."""
    gen = torch.Generator().manual_seed(seed)
    colors = torch.nn.functional.interpolate(torch.rand(count, 3, 4, 4, generator=gen), size=(res, res),
                                             mode="bilinear", align_corners=False)
    grid = torch.linspace(-1, 1, res)
    y, x = grid[None, :, None], grid[None, None, :]
    center = 0.3 * (2 * torch.rand(count, 2, 1, 1, generator=gen) - 1)
    half_axes = 0.3 + 0.5 * torch.rand(count, 2, 1, 1, generator=gen)
    inside = (((x - center[:, 0]) / half_axes[:, 0]) ** 2
              + ((y - center[:, 1]) / half_axes[:, 1]) ** 2 <= 1).float()[:, None]
    return inside * colors + (1 - inside)


@torch.no_grad()
def encoder_changes(before: CarEncoder, after: CarEncoder, photos: int) -> tuple[float, float, float]:
    """The largest relative code change, elevation change and azimuth change (degrees) of the
    two encoders over `photos` probe photos."""
    images = probe_photos(photos, before.config.input_res)
    a, b = before(images), after(images)
    latent = ((b.latent - a.latent).norm(dim=-1) / a.latent.norm(dim=-1).clamp_min(1e-12)).max()
    azimuth = angular_distance(b.azimuth_hypotheses()[0][:, 0], a.azimuth_hypotheses()[0][:, 0])
    return (latent.item(), (b.elevation - a.elevation).abs().max().item(), azimuth.max().item())


def store_weights(config: StoreWeightsConfig) -> StoredWeights | StoredEncoderWeights:
    if config.out.resolve() == config.checkpoint.resolve():
        raise UsageError(f"--out {config.out}: that is --ckpt; write the copy elsewhere")
    if is_encoder_file(config.checkpoint):
        store_encoder_as(config.checkpoint, config.out, config.dtype)
        changes = encoder_changes(load_encoder(config.checkpoint), load_encoder(config.out), PROBE_PHOTOS)
        return StoredEncoderWeights(config.checkpoint.stat().st_size, config.out.stat().st_size,
                                    *changes, PROBE_PHOTOS)
    before = load_checkpoint(config.checkpoint)
    dataclasses.replace(before, weights_dtype=config.dtype).save(config.out)
    after = load_checkpoint(config.out)
    differences = color_differences(before, after, config.check_cars, config.check_rays)
    mse = differences.square().mean().item()
    return StoredWeights(config.checkpoint.stat().st_size, config.out.stat().st_size,
                         differences.abs().max().item(),
                         -10 * math.log10(mse) if mse > 0 else math.inf, len(differences))


def report(config: StoreWeightsConfig, stored: StoredWeights | StoredEncoderWeights) -> int:
    mib = 1024 * 1024
    sizes = (f"wrote {config.out}: {stored.bytes_after / mib:.2f} MiB "
             f"({stored.bytes_before / mib:.2f} MiB before)")
    if isinstance(stored, StoredEncoderWeights):
        print(f"{sizes}; codes move by at most {100 * stored.max_latent_change:.3f} % of their "
              f"length, the elevation by {stored.max_elevation_change:.3f}°, the azimuth by "
              f"{stored.max_azimuth_change:.3f}° ({stored.photos_compared} probe photos)")
    else:
        print(f"{sizes}; colors differ by at most {stored.max_color_difference:.2e}, agree to "
              f"{stored.agreement_psnr:.1f} dB PSNR ({config.check_rays} rays of "
              f"{stored.cars_compared} cars)")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", type=Path, required=True,
                   help="the checkpoint, or an encoder file, to read (left as it is)")
    p.add_argument("--out", type=Path, required=True,
                   help="where to write the rewritten checkpoint (not --ckpt itself)")
    p.add_argument("--dtype", choices=sorted(WEIGHT_DTYPES), default="float16",
                   help="how the network weights are stored; latents stay float32 (default float16)")
    p.add_argument("--check-cars", type=positive_int, default=StoreWeightsConfig.check_cars,
                   help="cars whose colors are compared, spread over the latent table (a checkpoint) "
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
