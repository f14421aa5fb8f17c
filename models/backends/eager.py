"""The eager backend: models.lfn.ray_colors, op by op."""

from __future__ import annotations

import torch

from models.backends.ray_function import RayFunctionBackend
from models.lfn import ray_colors


class EagerBackend(RayFunctionBackend):
    name = "eager"

    @staticmethod
    def build_function(mlp_tensors: tuple[torch.Tensor, ...], dtype: torch.dtype):
        return ray_colors
