"""Fourier features: a network's input and the sines and cosines of it at octave frequencies.

A ReLU MLP fed raw coordinates is biased toward smooth functions of them; the sines and cosines
of each coordinate at frequencies pi, 2 pi, 4 pi, ... give its first layer detail to combine.
The volumetric baseline encodes its sample points so (NeRF's positional encoding); the LFN may
encode its Plücker coordinates so (LFNConfig.frequencies).
"""

from __future__ import annotations

import torch


def encoded_dim(dim: int, frequencies: int) -> int:
    """The width of fourier_features of a `dim`-wide input."""
    return dim * (1 + 2 * frequencies)


def octave_scales(frequencies: int, like: torch.Tensor) -> torch.Tensor:
    return 2.0 ** torch.arange(frequencies, device=like.device, dtype=like.dtype) * torch.pi


def fourier_features(x: torch.Tensor, frequencies: int) -> torch.Tensor:
    """(..., D) → (..., D (1 + 2 F)): x, then the sines of every coordinate at each of the F
    frequencies (frequency-major), then their cosines."""
    if frequencies == 0:
        return x
    angles = (x[..., None, :] * octave_scales(frequencies, x)[:, None]).flatten(-2)
    return torch.cat([x, torch.sin(angles), torch.cos(angles)], dim=-1)


def fourier_tangents(x: torch.Tensor, tangents: torch.Tensor, frequencies: int) -> torch.Tensor:
    """The derivative of fourier_features at x along `tangents` (..., D), x broadcasting against
    them: the input's own tangent, then f cos(f x) t, then -f sin(f x) t."""
    if frequencies == 0:
        return tangents
    scales = octave_scales(frequencies, x)[:, None]
    angles = (x[..., None, :] * scales).flatten(-2)
    scaled = (tangents[..., None, :] * scales).flatten(-2)
    return torch.cat([tangents, torch.cos(angles) * scaled, -torch.sin(angles) * scaled], dim=-1)
