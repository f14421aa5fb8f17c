"""The TorchScript backend (the default): models.lfn.ray_colors traced once with the folded MLP
tensors as inputs, so swapping or blending latents never re-traces."""

from __future__ import annotations

from collections.abc import Callable

import torch

from models.backends.ray_function import RayFunctionBackend
from models.lfn import encoding_frequencies, per_ray_function


def trace_ray_function(example_rays: torch.Tensor, mlp_tensors: tuple[torch.Tensor, ...]):
    """TorchScript of models.lfn.ray_colors (with the LFN's ray encoding), specialized to no
    latent: weights are its inputs."""
    with torch.no_grad():
        function = per_ray_function(encoding_frequencies(mlp_tensors[0]))
        return torch.jit.trace(function, (example_rays, *mlp_tensors), check_trace=False)


def without_jit_optimizer(traced: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """`traced` run as traced, without TorchScript's profiling executor's rewrites, which make the
    per-ray MLP slower (CPU, 256², 2 cores, torch 2.13: 515 vs 410 ms a frame; H200, fp16, 512²,
    torch 2.11: 2.16 vs 1.55 ms) and spend the first frames at every new resolution profiling."""

    def run(*args: torch.Tensor) -> torch.Tensor:
        with torch.jit.optimized_execution(False):
            return traced(*args)

    return run


class TorchScriptBackend(RayFunctionBackend):
    name = "torchscript"

    @staticmethod
    def build_function(mlp_tensors: tuple[torch.Tensor, ...], dtype: torch.dtype):
        example = torch.randn(64, 6, device=mlp_tensors[0].device, dtype=dtype)
        return without_jit_optimizer(trace_ray_function(example, mlp_tensors))
