"""The torch.compile backend: models.lfn.ray_colors compiled (on its first call) for static shapes."""

from __future__ import annotations

import torch

from models.backends.ray_function import RayFunctionBackend
from models.lfn import encoding_frequencies, per_ray_function
from models.renderer_protocol import Capabilities, GradientDepth


class CompileBackend(RayFunctionBackend):
    name = "compile"
    # Its frames are already fused kernels; a CUDA graph of them is left to torch.compile.
    capabilities = Capabilities(gradient_depth=GradientDepth.FORWARD_MODE)

    @staticmethod
    def build_function(mlp_tensors: tuple[torch.Tensor, ...], dtype: torch.dtype):
        return torch.compile(per_ray_function(encoding_frequencies(mlp_tensors[0])), dynamic=False)

    @classmethod
    def unavailable_reason(cls, device: torch.device, precision: str) -> str | None:
        if device.type != "cuda":
            return "torch.compile is used on CUDA only here (its CPU path needs a C++ toolchain)"
        return None
