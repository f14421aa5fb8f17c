"""The auto-decoded, FiLM-conditioned Light Field Network.

A latent code per object (the table is learned jointly with the network) goes through a small
conditioning network that outputs a scale and shift for every hidden layer of a per-ray MLP.
The MLP maps a ray's 6-D Plücker coordinates to an RGB color: one evaluation per ray.

FiLM was chosen over the paper's hypernetwork because the full hypernetwork (~100 M parameters)
cannot fit the 16 MiB checkpoint limit, and because a FiLM-conditioned layer folds into plain
weights (models/mlp.py), so the specialized per-ray network is a plain MLP that fast kernels run.
Between the two, LFNConfig.weight_rank R > 0 has the conditioning network also generate a rank-R
change of every layer's weight (U V^T, U and V from the code): a hypernetwork at a rank that fits
the limit, and one that still folds into plain weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from models.encoding import encoded_dim, fourier_features, fourier_tangents
from models.mlp import mlp_forward
from models.plucker import plucker


@dataclass
class LFNConfig:
    num_instances: int
    latent_dim: int = 256
    width: int = 256
    hidden_layers: int = 6
    cond_width: int = 256
    in_dim: int = 6
    out_dim: int = 3
    # Fourier features of the Plücker coordinates (models/encoding.py); 0 = the raw coordinates,
    # as the paper's LFN and every checkpoint before 2026-12-07
    frequencies: int = 0
    # the rank of the weight change the code generates for each layer (FiLMNetwork); 0 = FiLM alone
    weight_rank: int = 0


class FiLMNetwork(nn.Module):
    """A latent-conditioned MLP: `hidden_layers` FiLM-modulated ReLU layers and a linear head.

    Shared by the LFN (6-D rays → RGB) and the volumetric baseline (encoded points → density, RGB),
    so that both have the same width and depth. With `weight_rank` R > 0 the conditioning network
    also outputs, for every hidden layer, factors U (width × R) and V (inputs × R) of a change U V^T
    of its weight: layer i computes relu(gamma_i * ((W_i + U_i V_i^T) h + b_i) + beta_i).
    "Modulations" below are all the conditioning's outputs: every scale, every shift, then each
    layer's U and V.
    """

    def __init__(
        self, in_dim: int, out_dim: int, latent_dim: int, width: int, hidden_layers: int,
        cond_width: int, weight_rank: int = 0,
    ):
        super().__init__()
        self.width, self.hidden_layers, self.weight_rank = width, hidden_layers, weight_rank
        self.layers = nn.ModuleList(
            [nn.Linear(in_dim, width)] + [nn.Linear(width, width) for _ in range(hidden_layers - 1)]
        )
        self.head = nn.Linear(width, out_dim)
        self.film_width = 2 * hidden_layers * width
        self.factor_sizes = [size for layer in self.layers if weight_rank
                             for size in (width * weight_rank, layer.in_features * weight_rank)]
        self.conditioning = nn.Sequential(
            nn.Linear(latent_dim, cond_width), nn.ReLU(),
            nn.Linear(cond_width, self.film_width + sum(self.factor_sizes)),
        )
        # Start as the identity modulation (gamma = 1, beta = 0) and no weight change, so training
        # begins from a plain MLP.
        nn.init.zeros_(self.conditioning[-1].weight)
        with torch.no_grad():
            self.conditioning[-1].bias.copy_(self.initial_bias(0))

    @property
    def modulation_width(self) -> int:
        """How many numbers the conditioning outputs for one object."""
        return self.conditioning[-1].out_features

    def initial_bias(self, start: int) -> torch.Tensor:
        """The conditioning's starting bias from output `start` on (0: all of it): scales of 1,
        shifts of 0, and weight changes U V^T of 0 with U = 0 and V's entries N(0, 1 / inputs)
        (U's gradient is V's, so the change can grow: LoRA's start)."""
        r, half = self.weight_rank, self.film_width // 2
        factors = [factor for layer in self.layers if r
                   for factor in (torch.zeros(self.width * r),
                                  torch.randn(layer.in_features * r) / layer.in_features ** 0.5)]
        return torch.cat([torch.ones(half), torch.zeros(half), *factors])[start:]

    def split_modulations(self, modulations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, modulation_width) conditioning outputs → gamma, beta, each (B, hidden_layers, width):
        every layer's scales, then every layer's shifts."""
        out = modulations[:, :self.film_width].reshape(-1, 2, self.hidden_layers, self.width)
        return out[:, 0], out[:, 1]

    def weight_changes(self, modulations: torch.Tensor) -> list[torch.Tensor | None]:
        """(B, modulation_width) → each hidden layer's generated change U V^T (B, width, inputs);
        None for every layer when weight_rank is 0."""
        if not self.weight_rank:
            return [None] * self.hidden_layers
        factors = modulations[:, self.film_width:].split(self.factor_sizes, dim=1)
        b, r = modulations.shape[0], self.weight_rank
        return [torch.bmm(u.view(b, -1, r), v.view(b, -1, r).transpose(1, 2))
                for u, v in zip(factors[0::2], factors[1::2], strict=True)]

    def forward(self, x: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """x (B, N, in_dim), latents (B, latent_dim) → (B, N, out_dim)."""
        return self.modulated(x, self.conditioning(latents))

    def modulated(self, x: torch.Tensor, modulations: torch.Tensor) -> torch.Tensor:
        """`forward` with the conditioning's outputs (B, modulation_width) given."""
        if self.weight_rank:  # the changed weights differ per object: fold them
            return self.run_folded(x, self.folded_modulated_layers(modulations))
        gamma, beta = self.split_modulations(modulations)
        h = x
        for i, layer in enumerate(self.layers):
            h = torch.relu(gamma[:, None, i] * layer(h) + beta[:, None, i])
        return self.head(h)

    def folded_layers(self, latents: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(B, latent_dim) → per hidden layer the FiLM-folded weight (B, W, in) and bias (B, W)."""
        return self.folded_modulated_layers(self.conditioning(latents))

    def folded_modulated_layers(self, modulations: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """`folded_layers` of the conditioning's outputs (B, modulation_width)."""
        gamma, beta = self.split_modulations(modulations)
        changes = self.weight_changes(modulations)
        return [(gamma[:, i, :, None] * (layer.weight if change is None else layer.weight + change),
                 gamma[:, i] * layer.bias + beta[:, i])
                for i, (layer, change) in enumerate(zip(self.layers, changes, strict=True))]

    def forward_folded(self, x: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """`forward`, equal up to rounding, with each object's FiLM folded into its own weights:
        one batched matmul per layer (bmm over objects) instead of a matmul and two per-ray
        elementwise passes, the same in backward. For training, where the ray batch is large."""
        return self.run_folded(x, self.folded_layers(latents))

    def run_folded(self, x: torch.Tensor, layers: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """x (B, N, in) through each object's folded layers (`folded_layers`) and the head."""
        h = x
        for weight, bias in layers:
            # bmm, then bias and ReLU: torch.compile fuses the two into one pass, where baddbmm
            # first writes the broadcast bias over the whole (B, N, width) output (profiled on
            # an H100: a sixth of a compiled training step).
            h = torch.relu(torch.bmm(h, weight.transpose(1, 2)) + bias[:, None])
        return self.head(h)

    def forward_folded_with_tangents(
        self, x: torch.Tensor, tangents: torch.Tensor, latents: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """forward_folded plus the exact directional derivatives of the first K inputs of each
        object (forward mode, differentiable by ordinary backward: no double backward).

        x (B, N, in), tangents (T, B, K, in) with K <= N → output (B, N, out) and its tangents
        (T, B, K, out). The tangent streams ride as extra rows of each layer's one bmm; they
        take no bias and the gate of their ray's primal (a ReLU network's derivative is its
        gated weights)."""
        t, b, k, _ = tangents.shape
        n = x.shape[1]
        h = torch.cat([x, tangents.transpose(0, 1).reshape(b, t * k, -1)], 1)
        for weight, bias in self.folded_layers(latents):
            z = torch.bmm(h, weight.transpose(1, 2))
            primal = z[:, :n] + bias[:, None]
            gate = (primal[:, :k] > 0).repeat(1, t, 1)
            # where, not a product with the gate: an overflowed inf times 0 is NaN
            h = torch.cat([torch.relu(primal), torch.where(gate, z[:, n:], 0.0)], 1)
        out = self.head(h[:, :n])
        return out, (h[:, n:] @ self.head.weight.t()).view(b, t, k, -1).transpose(0, 1)

    def specialize(self, latent: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Fold one latent (latent_dim,) into plain MLP tensors for models.mlp.mlp_forward."""
        return self.specialize_modulations(self.conditioning(latent[None])[0])

    def specialize_modulations(self, modulations: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """`specialize` of the conditioning's outputs (modulation_width,) for one object."""
        w, b = zip(*[(weight[0], bias[0])
                     for weight, bias in self.folded_modulated_layers(modulations[None])], strict=True)
        return (
            w[0], b[0], torch.stack(w[1:]), torch.stack(b[1:]), self.head.weight, self.head.bias
        )


class LightFieldNetwork(nn.Module):
    """Latent table + FiLM network; colors in [0, 1] through a sigmoid."""

    kind = "lfn"
    evals_per_ray = 1

    def __init__(self, config: LFNConfig):
        super().__init__()
        self.config = config
        self.latents = nn.Embedding(config.num_instances, config.latent_dim)
        nn.init.normal_(self.latents.weight, std=0.01)
        self.net = FiLMNetwork(
            encoded_dim(config.in_dim, config.frequencies), config.out_dim, config.latent_dim,
            config.width, config.hidden_layers, config.cond_width, config.weight_rank,
        )

    def forward(
        self, origins: torch.Tensor, dirs: torch.Tensor, latents: torch.Tensor, folded: bool = False
    ) -> torch.Tensor:
        """The interface training and fitting share with the volumetric model:
        origins, dirs (B, N, 3), latents (B, latent_dim) → colors (B, N, 3).
        `folded` runs FiLMNetwork.forward_folded (training's fast step)."""
        return self.plucker_colors(plucker(origins, dirs), latents, folded)

    def plucker_colors(
        self, rays: torch.Tensor, latents: torch.Tensor, folded: bool = False
    ) -> torch.Tensor:
        """rays (B, N, 6) Plücker, latents (B, latent_dim) → colors (B, N, 3)."""
        net = self.net.forward_folded if folded else self.net
        return torch.sigmoid(net(fourier_features(rays, self.config.frequencies), latents))

    def colors_with_derivatives(
        self, rays: torch.Tensor, tangents: torch.Tensor, latents: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """rays (B, N, 6) Plücker, tangents (T, B, K, 6) of the first K rays of each object →
        colors (B, N, 3) and the first K colors' derivatives along the tangents (T, B, K, 3),
        through the folded forward; for training losses on the light field's gradients."""
        frequencies = self.config.frequencies
        logits, dlogits = self.net.forward_folded_with_tangents(
            fourier_features(rays, frequencies),
            fourier_tangents(rays[:, :tangents.shape[2]], tangents, frequencies), latents)
        colors = torch.sigmoid(logits)
        head = colors[:, :tangents.shape[2]]
        return colors, head * (1 - head) * dlogits

    def specialize(self, latent: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.net.specialize(latent)

    def modulations(self, latents: torch.Tensor, offsets: torch.Tensor | None = None) -> torch.Tensor:
        """(B, latent_dim) → the modulations (B, net.modulation_width) they stand for: every
        scale, every shift (and the weight changes' factors); plus `offsets` (B or 1, same width),
        the part of a car fitted past its latent (models/modulation_fit.py)."""
        modulations = self.net.conditioning(latents)
        return modulations if offsets is None else modulations + offsets.to(modulations)

    def modulated_colors(self, origins: torch.Tensor, dirs: torch.Tensor,
                         modulations: torch.Tensor) -> torch.Tensor:
        """`forward` with modulations (B, net.modulation_width) in place of latents."""
        rays = fourier_features(plucker(origins, dirs), self.config.frequencies)
        return torch.sigmoid(self.net.modulated(rays, modulations))

    def specialize_modulations(self, modulations: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.net.specialize_modulations(modulations)


def ray_colors(plucker_rays: torch.Tensor, *mlp_tensors: torch.Tensor) -> torch.Tensor:
    """The specialized per-ray function: (N, 6) Plücker → (N, 3) colors. This is what is traced."""
    return torch.sigmoid(mlp_forward(plucker_rays, *mlp_tensors))


def per_ray_function(frequencies: int) -> Callable[..., torch.Tensor]:
    """ray_colors for an LFN that encodes its rays with `frequencies` Fourier frequencies: the
    encoding is fixed when the function is made, so a trace or compile of it has no branch."""
    if not frequencies:
        return ray_colors

    def encoded_ray_colors(plucker_rays: torch.Tensor, *mlp_tensors: torch.Tensor) -> torch.Tensor:
        return ray_colors(fourier_features(plucker_rays, frequencies), *mlp_tensors)

    return encoded_ray_colors


def encoding_frequencies(w_in: torch.Tensor, ray_dim: int = 6) -> int:
    """The Fourier frequencies of a folded LFN, from its first layer's (W, in) weight."""
    frequencies, rest = divmod(w_in.shape[1] // ray_dim - 1, 2)
    if rest or w_in.shape[1] % ray_dim:
        raise ValueError(f"a first layer of {w_in.shape[1]} inputs encodes no {ray_dim}-D ray")
    return frequencies
