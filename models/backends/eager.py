"""The eager backend: models.lfn.ray_colors (with the LFN's ray encoding), op by op."""

from __future__ import annotations

import torch

from models.backends.ray_function import RayFunctionBackend
from models.lfn import encoding_frequencies, per_ray_function


class EagerBackend(RayFunctionBackend):
    name = "eager"

    @staticmethod
    def build_function(mlp_tensors: tuple[torch.Tensor, ...], dtype: torch.dtype):
        return per_ray_function(encoding_frequencies(mlp_tensors[0]))
