"""The volumetric baseline: a latent-conditioned NeRF-style field rendered by alpha compositing.

Per sample: (positional encoding of the 3-D point, view direction) → (density, RGB), through the
same FiLM network as the LFN (same width and depth), so the benchmark's ratio measures network
evaluations per ray, not network size. Each ray takes SAMPLES_PER_RAY = 196 stratified samples
(one pass, no coarse/fine split) between its entry into and exit from the unit sphere, which
holds every object; rays that miss the sphere see the white background.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from models.encoding import encoded_dim, fourier_features
from models.lfn import FiLMNetwork

if TYPE_CHECKING:  # models.folded_field evaluates this module's field: imported for the annotation only
    from models.folded_field import FoldedField

SAMPLES_PER_RAY = 196


@dataclass
class VolumetricConfig:
    num_instances: int
    latent_dim: int = 256
    width: int = 256
    hidden_layers: int = 6
    cond_width: int = 256
    frequencies: int = 6
    samples_per_ray: int = SAMPLES_PER_RAY


def sphere_interval(origins: torch.Tensor, dirs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Entry and exit distances of unit-direction rays through the unit sphere; equal on a miss."""
    t_mid = -(origins * dirs).sum(-1)
    dist_sq = (origins * origins).sum(-1) - t_mid**2
    half = torch.sqrt(torch.clamp(1.0 - dist_sq, min=0.0))
    near = torch.clamp(t_mid - half, min=0.0)
    return near, torch.maximum(t_mid + half, near)


def sample_weights(density: torch.Tensor, deltas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each sample's share of its ray's color, alpha times the transmittance in front of it, (N, S),
    and the transmittance through all S samples, (N,): what lies behind them still shows by that
    much (models/occupancy.py composites a ray round by round with it)."""
    alpha = 1.0 - torch.exp(-density * deltas)
    through = 1.0 - alpha + 1e-10
    in_front = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), through[:, :-1]], dim=1), dim=1)
    return alpha * in_front, in_front[:, -1] * through[:, -1]


def composite(
    density: torch.Tensor, rgb: torch.Tensor, t: torch.Tensor, deltas: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Alpha-composite samples over a white background.

    density (N, S), rgb (N, S, 3), t and deltas (N, S) → color (N, 3), expected depth (N,)
    (distance along the ray, normalised by opacity), opacity (N,).
    """
    weights, _ = sample_weights(density, deltas)
    opacity = weights.sum(1)
    color = (weights[..., None] * rgb).sum(1) + (1.0 - opacity[:, None])
    depth = (weights * t).sum(1) / opacity.clamp(min=1e-6)
    return color, depth, opacity


def sample_along_rays(
    origins: torch.Tensor, dirs: torch.Tensor, samples: int, jitter: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stratified distances (N, S) inside the unit sphere and their interval lengths (N, S)."""
    near, far = sphere_interval(origins, dirs)
    offsets = torch.rand(*near.shape, samples, device=near.device, dtype=near.dtype) if jitter else 0.5
    bins = torch.arange(samples, device=near.device, dtype=near.dtype)
    step = (far - near)[:, None] / samples
    return near[:, None] + (bins + offsets) * step, step.expand(-1, samples)


def sample_inputs(origins: torch.Tensor, dirs: torch.Tensor, t: torch.Tensor, frequencies: int):
    """(N, S) distances → per-sample network inputs (N, S, 3 + 6F + 3)."""
    points = origins[:, None] + t[..., None] * dirs[:, None]
    return torch.cat(
        [fourier_features(points, frequencies), dirs[:, None].expand_as(points)], dim=-1
    )


def decode_samples(raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Network output (..., 4) → density ≥ 0 and RGB in [0, 1]."""
    return torch.nn.functional.softplus(raw[..., 0] - 1.0) * 10.0, torch.sigmoid(raw[..., 1:])


class VolumetricField(nn.Module):
    """Latent table + FiLM network over encoded sample points; 196 evaluations per ray."""

    kind = "volumetric"

    def __init__(self, config: VolumetricConfig):
        super().__init__()
        self.config = config
        self.evals_per_ray = config.samples_per_ray
        self.latents = nn.Embedding(config.num_instances, config.latent_dim)
        nn.init.normal_(self.latents.weight, std=0.01)
        in_dim = encoded_dim(3, config.frequencies) + 3
        self.net = FiLMNetwork(
            in_dim, 4, config.latent_dim, config.width, config.hidden_layers, config.cond_width
        )

    def render_rays(
        self, origins: torch.Tensor, dirs: torch.Tensor, latents: torch.Tensor, jitter: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Batched training render: origins, dirs (B, N, 3), latents (B, D) → color (B, N, 3),
        depth (B, N), opacity (B, N)."""
        b, n, _ = origins.shape
        o, d = origins.reshape(-1, 3), dirs.reshape(-1, 3)
        t, deltas = sample_along_rays(o, d, self.config.samples_per_ray, jitter)
        x = sample_inputs(o, d, t, self.config.frequencies).view(b, -1, self.net.layers[0].in_features)
        density, rgb = decode_samples(self.net(x, latents).view(b * n, -1, 4))
        color, depth, opacity = composite(density, rgb, t, deltas)
        return color.view(b, n, 3), depth.view(b, n), opacity.view(b, n)

    def forward(
        self, origins: torch.Tensor, dirs: torch.Tensor, latents: torch.Tensor
    ) -> torch.Tensor:
        """Same interface as the LFN's: origins, dirs (B, N, 3), latents (B, D) → (B, N, 3).
        Samples are jittered while training and at bin centers in eval mode."""
        return self.render_rays(origins, dirs, latents, jitter=self.training)[0]

    def specialize(self, latent: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.net.specialize(latent)


def render_specialized(
    origins: torch.Tensor, dirs: torch.Tensor, field: FoldedField, samples: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Render (N, 3) rays with a latent already folded into `field` (all `samples`, no jitter)."""
    t, deltas = sample_along_rays(origins, dirs, samples, jitter=False)
    density, rgb = field.at_ray_samples(origins, dirs, t)
    return composite(density, rgb, t.float(), deltas.float())
