"""One latent's volumetric field with the latent folded into its MLP, evaluated at samples: eagerly
(models/volumetric.py's inputs, models.mlp.mlp_forward) or through the fused Triton kernel
(models/triton_field.py). The dense render, the occupancy grid's probes and the accelerated march
all evaluate the field through it, so each renderer picks its network in one place.

    field = FoldedField.of(mlp_tensors, frequencies, fused=True)  # fused: CUDA with Triton
    density, rgb = field.at_samples(origins, dirs, rays, t)       # sample i: t[i] on ray rays[i]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from models.mlp import in_row_buckets, mlp_forward
from models.triton_field import TritonField
from models.volumetric import decode_samples, sample_inputs


@dataclass(frozen=True)
class FoldedField:
    mlp_tensors: tuple[torch.Tensor, ...]  # models.mlp's, in the operand dtype
    frequencies: int  # of the positional encoding
    kernel: TritonField | None = None  # the fused kernel, or None: eager

    @classmethod
    def of(cls, mlp_tensors: tuple[torch.Tensor, ...], frequencies: int, fused: bool) -> FoldedField:
        """The field, evaluated by the fused kernel when `fused` (its tensors' dtype: fp16 or bf16)."""
        kernel = TritonField(mlp_tensors, frequencies, mlp_tensors[0].dtype) if fused else None
        return cls(mlp_tensors, frequencies, kernel)

    @property
    def dtype(self) -> torch.dtype:
        return self.mlp_tensors[0].dtype

    def at_samples(self, origins: torch.Tensor, dirs: torch.Tensor, rays: torch.Tensor,
                   t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Density (E,) and RGB (E, 3), fp32, at distance t[i] (E,) along ray rays[i] (E,) of the
        (R, 3) `origins` and unit `dirs`."""
        if self.kernel is not None:
            return decode_samples(self.kernel.raw(origins, dirs, rays, t))
        x = sample_inputs(origins[rays].to(self.dtype), dirs[rays].to(self.dtype), t[:, None].to(self.dtype),
                          self.frequencies)[:, 0]
        # a march's every round has a new sample count: on a CPU they share a few row counts
        raw = in_row_buckets(lambda rows: mlp_forward(rows, *self.mlp_tensors), x, self.dtype)
        return decode_samples(raw.float())

    def at_ray_samples(self, origins: torch.Tensor, dirs: torch.Tensor,
                       t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Density (N, S) and RGB (N, S, 3), fp32, at distances t (N, S) along (N, 3) rays: every
        ray's samples, as the dense render takes them."""
        n, samples = t.shape
        if self.kernel is not None:
            rays = torch.arange(n, device=t.device).repeat_interleave(samples)
            density, rgb = self.at_samples(origins, dirs, rays, t.reshape(-1))
            return density.view(n, samples), rgb.view(n, samples, 3)
        x = sample_inputs(origins, dirs, t, self.frequencies)
        raw = mlp_forward(x.view(-1, x.shape[-1]), *self.mlp_tensors).view(n, samples, 4)
        return decode_samples(raw.float())

    def density(self, points: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
        """(P,) density at (P, 3) points seen along (P, 3) unit directions: the occupancy grid's probe."""
        rays = torch.arange(points.shape[0], device=points.device)
        return self.at_samples(points, dirs, rays, torch.zeros(points.shape[0], device=points.device))[0]
