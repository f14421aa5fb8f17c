"""The triton backend: the fused Triton kernels (models/triton_lfn.py) render a whole frame in one
launch, rays included, and give gradient depth's equations in reverse mode."""

from __future__ import annotations

import torch

from models.lfn import encoding_frequencies
from models.renderer_protocol import Capabilities, GradientDepth
from models.resolution import Resolution


class TritonBackend:
    name = "triton"
    capabilities = Capabilities(gradient_depth=GradientDepth.FUSED_REVERSE, fused_frames=True)

    def __init__(self, mlp_tensors: tuple[torch.Tensor, ...], dtype: torch.dtype):
        if encoding_frequencies(mlp_tensors[0]):
            raise ValueError("the fused Triton kernel takes raw Plücker rays: this LFN encodes them "
                             "(Fourier features); use another backend")
        # Imported here: importing triton costs a second, and the interpreter tests must import it
        # themselves first.
        from models.triton_lfn import TritonLFN

        self.kernel = TritonLFN(mlp_tensors, dtype)
        self.device = self.kernel.device

    @classmethod
    def unavailable_reason(cls, device: torch.device, precision: str) -> str | None:
        from models.triton_lfn import triton_available

        ok, reason = triton_available()
        if not ok:
            return reason
        if device.type != "cuda":
            return "the fused Triton kernel runs on CUDA devices only"
        if precision == "fp32":
            return "the fused Triton kernel computes in fp16 or bf16 (use --precision fp16)"
        return None

    def set_mlp_tensors(self, mlp_tensors: tuple[torch.Tensor, ...]) -> None:
        self.kernel.set_mlp_tensors(mlp_tensors)

    def colors(self, plucker_rays: torch.Tensor) -> torch.Tensor:
        return self.kernel.colors(plucker_rays)

    def render(self, cam2world: torch.Tensor, res: Resolution, bounded: bool) -> torch.Tensor:
        return self.kernel.render(cam2world.to(self.device), res, bounded)

    def render_rgba(
        self, cam2world: torch.Tensor, res: Resolution, out: torch.Tensor | None, bounded: bool,
    ) -> torch.Tensor:
        flat = None if out is None else out.view(res.pixels, 4)
        rgba = self.kernel.render_rgba(cam2world.to(self.device), res, flat, torch.float32, bounded)
        return rgba.view(res.height, res.width, 4)

    def depth_equations(
        self, cam2world: torch.Tensor, res: Resolution, summed: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.kernel.depth_equations(cam2world.to(self.device), res, summed)
        return out[:, :3], out[:, 3], out[:, 4]
