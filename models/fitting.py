"""Single-image inference: fit a fresh latent to posed views with the network frozen.

The learned prior over the class is the latent table: fitting starts at its mean and a penalty
keeps the code near the table's scale, so one view determines a plausible whole light field.

On a GPU a step is a few hundred small kernels launched one by one (4.4 ms on an H100 at 4096
rays, 8.1 ms with the pose refined), so `cuda_graph` replays the steps after the first few from one
CUDA graph (1.0 and 2.2 ms; bench/fit_step.py): the pixels are drawn outside it into fixed
buffers, the rest (rays, network, loss, backward, Adam) is captured once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from models.cameras import Orbit, orbit_pose
from models.frame_graphs import capture, on_side_stream
from models.sampling import PixelDraw, draw_pixels, rays_at_pixels

# A car is mirror-symmetric about its length-and-up plane, y = 0 (models/cameras.py): the observed
# rays reflected in it see (nearly) the same colors, a second view of the other side for free.
# Their squared error is weighted below the observed rays' since paint and decals need not be
# symmetric; the weight was chosen on 16 held-out cars on a CPU (RESULTS.md, "A mirrored view for
# free").
MIRROR_WEIGHT = 0.25
REFLECT_Y = (1.0, -1.0, 1.0)

# Steps run eagerly (on a side stream) before the capture, as CUDA graphs need: they initialise
# cuBLAS's workspaces and Adam's state. They are real steps of the fit.
EAGER_STEPS_BEFORE_CAPTURE = 3


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
    init: torch.Tensor | None = None, seed: int = 0, pose_lr: float = 0.5, cuda_graph: bool = False,
    mirror_weight: float = MIRROR_WEIGHT,
) -> Iterator[FitStep]:
    """Yield one FitStep per optimization step, forever; the caller decides when to stop.

    rgb (V, H, W, 3) uint8 and cam2world (V, 4, 4) are the observed views (usually V = 1).
    Given an Orbit instead of cam2world (then V = 1), its azimuth and elevation are refined with
    the latent by the same gradient steps (`pose_lr` degrees a step, Adam); the radius is kept,
    since a closer camera and a larger car look alike.
    `mirror_weight` > 0 also fits each drawn ray's reflection in the car's plane of symmetry to
    the same color, with that weight (MIRROR_WEIGHT); 0 fits the observed rays alone.
    Works for any model called as `model(origins, dirs, latents)` and a `latents` table.
    `cuda_graph` replays the steps after EAGER_STEPS_BEFORE_CAPTURE from a CUDA graph (on a CUDA
    device; ignored elsewhere): the same draws and arithmetic, a fraction of the launch cost.
    The model must then read nothing back from the device in its forward (the LFN does not).
    """
    device = next(model.parameters()).device
    graphed = cuda_graph and device.type == "cuda"
    table = model.latents.weight.detach()
    latent = (table.mean(0) if init is None else init.to(device)).clone().requires_grad_(True)
    scale = table.pow(2).sum(1).mean().clamp(min=1e-6)
    groups = [{"params": [latent], "lr": lr}]
    orbit = cam2world if isinstance(cam2world, Orbit) else None
    if orbit is not None:
        angles = torch.tensor([orbit.azimuth, orbit.elevation], device=device, requires_grad=True)
        groups.append({"params": [angles], "lr": pose_lr})
    # capturable: Adam keeps its step count on the device, so a replayed step advances it
    optimizer = torch.optim.Adam(groups, capturable=graphed)
    generator = torch.Generator(device=device).manual_seed(seed)
    rgb = rgb.to(device)[None]
    intrinsics = intrinsics.to(device)  # a copy from the host cannot be captured
    views = torch.arange(rgb.shape[1], device=device)
    fixed_pose = None if orbit is not None else cam2world.to(device)[None]
    pixels = PixelDraw.empty((1, rays_per_step), device)
    reflect = torch.tensor(REFLECT_Y, device=device)

    def current_pose() -> torch.Tensor:
        if orbit is None:
            return fixed_pose
        return orbit_pose(angles[0], angles[1], orbit.radius, orbit.target)[None, None]

    def step() -> tuple[torch.Tensor, torch.Tensor]:
        """One optimization step on the pixels drawn into `pixels`: (loss, image MSE)."""
        origins, dirs, target = rays_at_pixels(rgb, current_pose(), intrinsics, views, pixels)
        if mirror_weight > 0:  # one evaluation of the observed rays and their reflections
            colors = model(torch.cat([origins, origins * reflect], 1),
                           torch.cat([dirs, dirs * reflect], 1), latent[None])
            mse = torch.nn.functional.mse_loss(colors[:, :rays_per_step], target)
            mirrored = torch.nn.functional.mse_loss(colors[:, rays_per_step:], target)
        else:
            mse = torch.nn.functional.mse_loss(model(origins, dirs, latent[None]), target)
            mirrored = 0.0
        loss = mse + latent_weight * latent.pow(2).sum() / scale + mirror_weight * mirrored
        # to None, not zeros: captured, the backward then writes the gradients, not adds to them
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach(), mse.detach()

    def fit_step(count: int, loss: torch.Tensor, mse: torch.Tensor) -> FitStep:
        refined = None if orbit is None else dataclasses.replace(
            orbit, azimuth=angles[0].item(), elevation=angles[1].item())
        return FitStep(count, loss.item(), psnr_from_mse(mse.item()), latent.detach().clone(), refined)

    graph = None
    for p in model.parameters():
        p.requires_grad_(False)
    count = 0
    try:
        while True:
            draw_pixels(len(views), rgb.shape[2], rgb.shape[3], (1, rays_per_step), device,
                        generator, out=pixels)
            if not graphed:
                losses = step()
            elif count < EAGER_STEPS_BEFORE_CAPTURE:
                losses = on_side_stream(step)
            else:
                if graph is None:  # captured, not run: the warm-up steps were the eager ones
                    graph, losses = capture(step, warmup_runs=0)
                graph.replay()
            count += 1
            yield fit_step(count, *losses)
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
