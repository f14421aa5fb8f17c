"""The torch.export backend: TorchScript's successor for a torch that no longer traces.

torch 2.13 deprecates torch.jit.trace. torch.export captures models.lfn.ray_colors as an
ExportedProgram: one ATen graph with the ray count symbolic and the folded MLP tensors as inputs, so,
as with the trace, swapping or blending latents never re-exports. The program runs here through its
graph module; it can also be saved (`save_ray_program`, a .pt2 file) and loaded without our code
(`load_ray_program`), and compiled ahead of time by AOTInductor on the machine that will run it
(models/backends/aoti.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from models.backends.ray_function import RayFunctionBackend
from models.lfn import encoding_frequencies, per_ray_function

# torch.export specializes sizes 0 and 1, so the symbolic ray count starts at 2; a lone ray is
# padded to two.
MIN_RAYS = 2


class RayColors(torch.nn.Module):
    """ray_colors (with the LFN's ray encoding) as a module with named inputs (models/mlp.py's
    order), what torch.export takes."""

    def __init__(self, frequencies: int):
        super().__init__()
        self.function = per_ray_function(frequencies)

    def forward(self, plucker_rays: torch.Tensor, w_in: torch.Tensor, b_in: torch.Tensor,
                w_hidden: torch.Tensor, b_hidden: torch.Tensor, w_out: torch.Tensor,
                b_out: torch.Tensor) -> torch.Tensor:
        return self.function(plucker_rays, w_in, b_in, w_hidden, b_hidden, w_out, b_out)


def export_ray_function(
    mlp_tensors: tuple[torch.Tensor, ...], dtype: torch.dtype,
) -> torch.export.ExportedProgram:
    """The exported (rays (N, 6), *mlp_tensors) → colors (N, 3), N symbolic."""
    example = torch.randn(64, 6, device=mlp_tensors[0].device, dtype=dtype)
    rays = torch.export.Dim("rays", min=MIN_RAYS)
    with torch.no_grad():
        return torch.export.export(RayColors(encoding_frequencies(mlp_tensors[0])), (example, *mlp_tensors),
                                   dynamic_shapes=({0: rays}, *[None] * len(mlp_tensors)))


def save_ray_program(program: torch.export.ExportedProgram, path: Path) -> None:
    torch.export.save(program, path)


def load_ray_program(path: Path) -> torch.export.ExportedProgram:
    return torch.export.load(path)


def with_min_rays(program: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """`program`, exported for at least MIN_RAYS rays, for any ray count: fewer are padded."""

    def colors(plucker_rays: torch.Tensor, *tensors: torch.Tensor) -> torch.Tensor:
        if plucker_rays.shape[0] >= MIN_RAYS:
            return program(plucker_rays, *tensors)
        padded = torch.cat([plucker_rays, plucker_rays.new_zeros(MIN_RAYS - plucker_rays.shape[0], 6)])
        return program(padded, *tensors)[: plucker_rays.shape[0]]

    return colors


class ExportBackend(RayFunctionBackend):
    name = "export"

    @staticmethod
    def build_function(mlp_tensors: tuple[torch.Tensor, ...], dtype: torch.dtype):
        return with_min_rays(export_ray_function(mlp_tensors, dtype).module())
