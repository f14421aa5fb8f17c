"""What the backends that run the MLP as one PyTorch function of (rays, *mlp_tensors) share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

import torch

from models.renderer_protocol import Capabilities, GradientDepth


class RayFunctionBackend(ABC):
    """colors = function(rays, *mlp_tensors), the function built once by the subclass.

    The tensors are the renderer's own, which set_latent updates in place, so a traced or compiled
    function (and a CUDA graph of it) sees every new latent without being rebuilt.
    """

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities(
        gradient_depth=GradientDepth.FORWARD_MODE, cuda_graphs=True
    )

    def __init__(self, mlp_tensors: tuple[torch.Tensor, ...], dtype: torch.dtype):
        self.dtype = dtype
        self.mlp_tensors = mlp_tensors
        self.function = self.build_function(mlp_tensors, dtype)

    @staticmethod
    @abstractmethod
    def build_function(
        mlp_tensors: tuple[torch.Tensor, ...], dtype: torch.dtype,
    ) -> Callable[..., torch.Tensor]:
        """The function (rays (N, 6) in `dtype`, *mlp_tensors) → colors (N, 3)."""

    @classmethod
    def unavailable_reason(cls, device: torch.device, precision: str) -> str | None:
        return None

    def set_mlp_tensors(self, mlp_tensors: tuple[torch.Tensor, ...]) -> None:
        self.mlp_tensors = mlp_tensors

    def colors(self, plucker_rays: torch.Tensor) -> torch.Tensor:
        return self.function(plucker_rays.to(self.dtype), *self.mlp_tensors)
