"""Single-image inference: fit a fresh latent to posed views with the network frozen.

The learned prior over the class is the latent table: fitting starts at its mean and a penalty
keeps the code near the table's scale, so one view determines a plausible whole light field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from models.cameras import Orbit, orbit_pose
from models.sampling import sample_rays


@dataclass
class FitStep:
    step: int
    loss: float
    psnr: float
    latent: torch.Tensor
    orbit: Orbit | None = None  # the refined camera, when the pose is refined too


def psnr_from_mse(mse: float) -> float:
    return float(-10.0 * torch.log10(torch.tensor(max(mse, 1e-10))))


def fit_latent_steps(
    model, rgb: torch.Tensor, cam2world: torch.Tensor | Orbit, intrinsics: torch.Tensor,
    rays_per_step: int = 4096, lr: float = 1e-2, latent_weight: float = 1e-3,
    init: torch.Tensor | None = None, seed: int = 0, pose_lr: float = 0.5,
) -> Iterator[FitStep]:
    """Yield one FitStep per optimization step, forever; the caller decides when to stop.

    rgb (V, H, W, 3) uint8 and cam2world (V, 4, 4) are the observed views (usually V = 1).
    Given an Orbit instead of cam2world (then V = 1), its azimuth and elevation are refined with
    the latent by the same gradient steps (`pose_lr` degrees a step, Adam); the radius is kept,
    since a closer camera and a larger car look alike.
    Works for any model called as `model(origins, dirs, latents)` and a `latents` table.
    """
    device = next(model.parameters()).device
    table = model.latents.weight.detach()
    latent = (table.mean(0) if init is None else init.to(device)).clone().requires_grad_(True)
    scale = table.pow(2).sum(1).mean().clamp(min=1e-6)
    groups = [{"params": [latent], "lr": lr}]
    orbit = cam2world if isinstance(cam2world, Orbit) else None
    if orbit is not None:
        angles = torch.tensor([orbit.azimuth, orbit.elevation], requires_grad=True)
        groups.append({"params": [angles], "lr": pose_lr})
    optimizer = torch.optim.Adam(groups)
    generator = torch.Generator(device=device).manual_seed(seed)
    rgb = rgb.to(device)[None]
    views = torch.arange(rgb.shape[1], device=device)

    def current_pose() -> torch.Tensor:
        if orbit is None:
            return cam2world.to(device)[None]
        return orbit_pose(angles[0], angles[1], orbit.radius, orbit.target).to(device)[None, None]

    def refined_orbit() -> Orbit | None:
        if orbit is None:
            return None
        return dataclasses.replace(orbit, azimuth=angles[0].item(), elevation=angles[1].item())

    for p in model.parameters():
        p.requires_grad_(False)
    step = 0
    try:
        while True:
            origins, dirs, target = sample_rays(
                rgb, current_pose(), intrinsics, views, rays_per_step, generator
            )
            color = model(origins, dirs, latent[None])
            mse = torch.nn.functional.mse_loss(color, target)
            loss = mse + latent_weight * latent.pow(2).sum() / scale
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            yield FitStep(step, loss.item(), psnr_from_mse(mse.item()), latent.detach().clone(),
                          refined_orbit())
    finally:
        for p in model.parameters():
            p.requires_grad_(True)


def fit_latent(
    model, rgb: torch.Tensor, cam2world: torch.Tensor | Orbit, intrinsics: torch.Tensor, steps: int,
    on_step: Callable[[FitStep], None] | None = None, **options,
) -> FitStep:
    """Run `steps` steps of fit_latent_steps and return the last."""
    last = None
    for last in fit_latent_steps(model, rgb, cam2world, intrinsics, **options):
        if on_step is not None:
            on_step(last)
        if last.step >= steps:
            break
    return last
