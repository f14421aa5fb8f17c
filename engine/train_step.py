"""One training step of an auto-decoded model: draw a ray batch, loss, backward, guarded update.

Two implementations of the same step: the same ray draws, the same loss, gradients equal up to
fp32 rounding (tests/test_train_step.py checks it on every parameter, the latent table included).

    reference  the step as first written: the drawn cars' images are copied out before the pixel
               gather, FiLM modulates every ray's activations (a matmul and two elementwise passes
               per layer, forward and backward), torch's default Adam, the non-finite check reads
               the result back to the host.
    fast       one pixel gather from the resident data set, each car's FiLM folded into its own
               weights (one batched matmul per layer: FiLMNetwork.forward_folded), fused Adam on
               CUDA that skips a non-finite step on the device (no host round trip; the
               multi-tensor Adam on a CPU), and optionally torch.compile around forward and loss.

On CUDA both run the network under bf16 autocast. The fast step optionally adds a geometry term
(engine/reprojection.py) computed on a few rays of each car that carry ray tangents through the
same batched forward; with it off the step is the plain one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from engine.cardata import CarViews
from engine.reprojection import ReprojectionLoss
from models.plucker import plucker
from models.sampling import sample_rays

STEP_IMPLS = ("reference", "fast")
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune-no-cudagraphs")


@dataclass
class RayBatch:
    objects: torch.Tensor  # (B,) rows of the data set and of the latent table
    origins: torch.Tensor  # (B, R, 3)
    dirs: torch.Tensor  # (B, R, 3)
    target: torch.Tensor  # (B, R, 3) colors in [0, 1]


def draw_batch(cars: CarViews, train_views: torch.Tensor, objects_per_step: int,
               rays_per_object: int, generator: torch.Generator, impl: str) -> RayBatch:
    """`objects_per_step` random cars, `rays_per_object` random training pixels of each."""
    objects = torch.randint(cars.rgb.shape[0], (objects_per_step,), device=cars.rgb.device,
                            generator=generator)
    if impl == "reference":  # copies every view of every drawn car, then gathers from the copy
        drawn = sample_rays(cars.rgb[objects], cars.cam2world[objects], cars.intrinsics,
                            train_views, rays_per_object, generator)
    else:
        drawn = sample_rays(cars.rgb, cars.cam2world, cars.intrinsics, train_views,
                            rays_per_object, generator, objects=objects)
    return RayBatch(objects, *drawn)


class BatchForward(nn.Module):
    """(objects, origins, dirs) → (colors, the objects' latent codes): what DDP wraps, so that the
    latent lookup and the network run inside its forward. With `tangents` (T, B, K, 6) (the LFN's
    folded forward only) it also returns the first K colors' derivatives along them.

    `latent_noise` σ > 0 renders each drawn car from its code plus fresh N(0, σ²) noise (drawn
    from torch's global generator of the device, which training states save), so that the
    network renders a car from every code near a training one, not only from the table's point
    (the variational auto-decoder's idea; measured without gain, RESULTS.md "Noise on the
    training codes"). The returned codes are the clean ones, which the latent penalty reads."""

    def __init__(self, model: nn.Module, folded: bool, latent_noise: float = 0.0):
        super().__init__()
        self.model = model
        # Only the LFN has a folded forward; the volumetric model keeps its own.
        self.options = {"folded": True} if folded and model.kind == "lfn" else {}
        self.latent_noise = latent_noise

    def forward(self, objects: torch.Tensor, origins: torch.Tensor, dirs: torch.Tensor,
                tangents: torch.Tensor | None = None):
        latents = self.model.latents(objects)
        rendered = latents
        if self.latent_noise > 0:
            rendered = latents + self.latent_noise * torch.randn_like(latents)
        if tangents is None:
            return self.model(origins, dirs, rendered, **self.options), latents
        colors, derivatives = self.model.colors_with_derivatives(plucker(origins, dirs), tangents,
                                                                 rendered)
        return colors, latents, derivatives


def batch_loss(color: torch.Tensor, latents: torch.Tensor, target: torch.Tensor,
               latent_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, image MSE): MSE plus `latent_weight` · the mean squared norm of the batch's codes."""
    mse = torch.nn.functional.mse_loss(color.float(), target)
    return mse + latent_weight * latents.float().pow(2).sum(-1).mean(), mse


def make_optimizer(model: nn.Module, lr: float, latent_lr: float,
                   kind: str = "default") -> torch.optim.Adam:
    """Adam with two groups: the network (lr) and the latent table (latent_lr); `kind` picks
    torch's default implementation, the multi-tensor one or the fused one."""
    latents = [model.latents.weight]
    network = [p for n, p in model.named_parameters() if not n.startswith("latents")]
    options = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}[kind]
    return torch.optim.Adam([{"params": network, "lr": lr}, {"params": latents, "lr": latent_lr}],
                            **options)


def load_optimizer_state(optimizer: torch.optim.Optimizer, saved: dict) -> None:
    """Load a saved Adam state but keep this run's implementation (fused or not): torch's loader
    would take the saved run's flags, and a state saved on CUDA may be resumed on a CPU."""
    flags = [{k: g[k] for k in ("fused", "foreach")} for g in optimizer.param_groups]
    optimizer.load_state_dict(saved)
    for group, kept in zip(optimizer.param_groups, flags, strict=True):
        group.update(kept)


@dataclass
class StepResult:
    loss: torch.Tensor  # 0-d, on the device: reading it waits for the step
    mse: torch.Tensor
    geometry: torch.Tensor | None = None  # the geometry term before its weight, when on


class TrainingStep:
    """forward, loss, backward and an Adam update that a non-finite gradient skips.

    `forward` is a BatchForward, maybe wrapped in DDP; compile_mode != "off" puts torch.compile
    around forward and loss. A skipped step (NaN or inf anywhere in the gradients, the
    all-reduced ones under DDP, so every rank skips together) leaves weights and Adam's moments
    and step count as they were; `skipped` counts them on the device. `geometry` adds its
    weighted term to the loss.
    """

    def __init__(self, forward: nn.Module, model: nn.Module, optimizer: torch.optim.Optimizer,
                 base_lrs: list[float], latent_weight: float, device: torch.device,
                 skip_nonfinite: bool = True, compile_mode: str = "off",
                 geometry: ReprojectionLoss | None = None):
        self.forward, self.optimizer, self.geometry = forward, optimizer, geometry
        self.params = list(model.parameters())
        self.base_lrs, self.latent_weight = base_lrs, latent_weight
        self.device_type = device.type
        self.fused = all(g["fused"] for g in optimizer.param_groups)
        self.skip_nonfinite = skip_nonfinite
        self.skipped = torch.zeros((), dtype=torch.int64, device=device)
        self.loss = self.forward_and_loss if compile_mode == "off" else torch.compile(
            self.forward_and_loss, mode=None if compile_mode == "default" else compile_mode)
        # CUDA graphs reuse their output memory: each step starts a new generation of outputs.
        self.graphed = compile_mode == "reduce-overhead"

    def forward_and_loss(self, objects: torch.Tensor, origins: torch.Tensor, dirs: torch.Tensor,
                         target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(loss, mse, the geometry term or None); the network under bf16 autocast on CUDA."""
        autocast = torch.autocast(self.device_type, dtype=torch.bfloat16,
                                  enabled=self.device_type == "cuda")
        if self.geometry is None:
            with autocast:
                color, latents = self.forward(objects, origins, dirs)
            return *batch_loss(color, latents, target, self.latent_weight), None
        rays = self.geometry.prepare(objects, origins, dirs)
        with autocast:
            color, latents, derivatives = self.forward(objects, origins, dirs, rays.tangents)
        loss, mse = batch_loss(color, latents, target, self.latent_weight)
        geometry = self.geometry(objects, origins, dirs, derivatives, rays)
        return loss + self.geometry.config.weight * geometry, mse, geometry

    def __call__(self, batch: RayBatch, lr_scale: float) -> StepResult:
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * lr_scale
        if self.graphed:
            torch.compiler.cudagraph_mark_step_begin()
        loss, mse, geometry = self.loss(batch.objects, batch.origins, batch.dirs, batch.target)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if not self.skip_nonfinite:
            self.optimizer.step()
            return StepResult(loss, mse, geometry)
        grads = [p.grad for p in self.params if p.grad is not None]
        bad = ~torch.isfinite(torch.nn.utils.get_total_norm(grads, foreach=True))
        self.skipped += bad
        if self.fused:  # fused Adam takes the verdict as a tensor and skips on the device
            self.optimizer.found_inf = bad.float()
            self.optimizer.step()
        elif not bad.item():
            self.optimizer.step()
        return StepResult(loss, mse, geometry)


def make_training_step(model: nn.Module, impl: str, lr: float, latent_lr: float,
                       latent_weight: float, device: torch.device, wrap=None,
                       compile_mode: str = "off", skip_nonfinite: bool = True,
                       geometry: ReprojectionLoss | None = None,
                       latent_noise: float = 0.0) -> TrainingStep:
    """The step `impl` ("reference" or "fast") for `model` on `device`. `wrap` (e.g. DDP) wraps
    the BatchForward; compile_mode != "off" compiles forward and loss (fast step only);
    `geometry` adds the reprojection term (fast step and LFN only); `latent_noise` is
    BatchForward's."""
    if impl not in STEP_IMPLS:
        raise ValueError(f"step implementation {impl!r}: choose {' or '.join(STEP_IMPLS)}")
    if compile_mode not in COMPILE_MODES:
        raise ValueError(f"compile mode {compile_mode!r}: choose one of {', '.join(COMPILE_MODES)}")
    if compile_mode != "off" and impl != "fast":
        raise ValueError("torch.compile is an option of the fast step only")
    if geometry is not None and (impl != "fast" or model.kind != "lfn"):
        raise ValueError("the geometry term needs the fast step and the LFN (--step-impl fast "
                         "--model lfn)")
    if latent_noise < 0:
        raise ValueError(f"latent noise {latent_noise}: 0 (off) or more")
    fast = impl == "fast"
    forward = BatchForward(model, folded=fast, latent_noise=latent_noise)
    if wrap is not None:
        forward = wrap(forward)
    adam = "default" if not fast else "fused" if device.type == "cuda" else "foreach"
    optimizer = make_optimizer(model, lr, latent_lr, adam)
    return TrainingStep(forward, model, optimizer, [lr, latent_lr], latent_weight, device,
                        skip_nonfinite, compile_mode, geometry)
