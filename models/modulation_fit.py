"""Past the latent: refine a fitted car's FiLM modulations themselves from its photo.

A latent reaches only the modulations the conditioning network maps some code to, a 256-D
family shaped by the training cars. Fitted through all 50 of their views, 8 held-out real cars'
latents render their other views at 22.4 dB, while the same frozen network with the modulations
fitted directly reaches 25.5 dB (RESULTS.md, "Past the latent"): what a new real car lacks is
the latent's reach, not the network's capacity. From one photo the modulations are refined
after the latent fit, a few steps at a small rate from the latent's own modulations and kept
near them by a penalty measured in how much modulations vary between training cars, so the
prior still decides what the photo leaves open.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from models.fitting import MIRROR_WEIGHT, FitStep, fit_latent
from models.lfn import LightFieldNetwork

MODULATION_STEPS = 100
MODULATION_LR = 1e-3
# the penalty on the offset's squared norm over the training cars' mean squared spread; the fit
# barely depends on it (1e-3 to 1e-1 alike on 28 held-out cars, RESULTS.md): the small rate and
# the step count keep the offset small (200 steps lose 0.26 dB on the first procedural style)
MODULATION_WEIGHT = 1e-2


class ModulationOffset(nn.Module):
    """The LFN rendering `base` modulations plus an offset that fit_latent fits as its 'latent'.

    Its `latents` table holds the training cars' modulations about their mean, so the fit's penalty
    on the offset is in units of how much modulations vary between training cars."""

    def __init__(self, model: LightFieldNetwork, base: torch.Tensor):
        super().__init__()
        self.model, self.base = model, base
        with torch.no_grad():
            spread = model.modulations(model.latents.weight)
        self.latents = nn.Embedding.from_pretrained(spread - spread.mean(0))

    def forward(self, origins: torch.Tensor, dirs: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.model.modulated_colors(origins, dirs, self.base + offsets)


def refine_modulations(
    model: LightFieldNetwork, rgb: torch.Tensor, cam2world: torch.Tensor,
    intrinsics: torch.Tensor, latent: torch.Tensor, steps: int = MODULATION_STEPS,
    lr: float = MODULATION_LR, weight: float = MODULATION_WEIGHT, seed: int = 0,
    mirror_weight: float = MIRROR_WEIGHT, rays_per_step: int = 4096,
    on_step: Callable[[FitStep], None] | None = None, cuda_graph: bool = False,
) -> torch.Tensor:
    """The offset (model.net.modulation_width,) that `latent`'s modulations take, fitted for `steps`
    steps on the views `rgb` (V, H, W, 3) uint8 seen from cam2world (V, 4, 4) (a pose the latent
    fit refined is passed as its camera), the network frozen; fit_latent's ray draws and mirrored
    rays and, with `cuda_graph`, its replayed steps; `on_step` sees each step (its `latent` is the
    offset so far). The car renders as LFNRenderer.set_latent(latent, offset)."""
    with torch.no_grad():
        base = model.modulations(latent[None].to(model.latents.weight))[0]
    offset = ModulationOffset(model, base)
    fit = fit_latent(offset, rgb, cam2world, intrinsics, steps=steps, lr=lr, latent_weight=weight,
                     init=torch.zeros_like(base), seed=seed, mirror_weight=mirror_weight,
                     rays_per_step=rays_per_step, on_step=on_step, cuda_graph=cuda_graph)
    return fit.latent
