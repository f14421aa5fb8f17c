"""The volumetric baseline's network at its samples through one fused Triton kernel.

    field = TritonField(mlp_tensors, frequencies)  # a latent's folded MLP, packed once
    raw = field.raw(origins, dirs, rays, t)         # (E, 4): sample i is at t[i] on ray rays[i]

The eager path (models/volumetric.py: sample_inputs, then models.mlp.mlp_forward) writes the
encoded inputs and every layer's activations to memory; the kernel keeps them on chip. It is
the fastest network we have for the volumetric samples, the counterpart of the LFN's frame
kernel, so the `fused` and `accelerated` rows of the benchmark (models/renderer.py) use it on a
GPU. Inputs are computed in fp32 (the eager path computes them in the operand dtype), so its
frames are close to the eager ones, not equal: the benchmark reports each row's PSNR against
the dense eager frame.
"""

from __future__ import annotations

import functools

import torch

from models.triton_field_kernel import _field_kernel
from models.triton_lfn import PackedMLP, _launchable, triton

RAW_OUTPUTS = 4  # density, then RGB (models.volumetric.decode_samples)


def encoded_width(frequencies: int) -> int:
    """Inputs of the volumetric network (models.volumetric.sample_inputs): point, its sines and
    cosines at `frequencies` octaves, direction."""
    return 3 + 6 * frequencies + 3


def input_pad(inputs: int) -> int:
    """The input tile's width: a power of two (tl.arange) of at least 16 (tl.dot's smallest K)."""
    return max(16, 1 << (inputs - 1).bit_length())


@functools.cache
def _kernel(interpret: bool):
    return _launchable(_field_kernel, interpret, ("field",), ["FREQUENCIES", "WIDTH", "N_HIDDEN"],
                       ["n_samples"])


class TritonField:
    """One latent's volumetric network, packed for the fused kernel (PackedMLP)."""

    def __init__(self, mlp_tensors: tuple[torch.Tensor, ...], frequencies: int,
                 dtype: torch.dtype = torch.float16):
        w_in, _, _, _, w_out, _ = mlp_tensors
        if w_in.shape[1] != encoded_width(frequencies) or w_out.shape[0] != RAW_OUTPUTS:
            raise ValueError(f"needs {encoded_width(frequencies)} inputs ({frequencies} octaves) and "
                             f"{RAW_OUTPUTS} outputs; got in {w_in.shape[1]}, out {w_out.shape[0]}")
        self.frequencies = frequencies
        self.mlp = PackedMLP(mlp_tensors, dtype, input_pad(w_in.shape[1]))

    @torch.no_grad()
    def raw(self, origins: torch.Tensor, dirs: torch.Tensor, rays: torch.Tensor,
            t: torch.Tensor) -> torch.Tensor:
        """(E, 4) fp32 raw outputs at distance t[i] (E,) along ray rays[i] (E,) of the (R, 3) `origins`
        and unit `dirs`. Launches the same kernel whatever E (a CUDA graph may replay it)."""
        out = torch.empty(rays.shape[0], RAW_OUTPUTS, dtype=torch.float32, device=origins.device)
        n_samples = rays.shape[0]
        if n_samples == 0:
            return out
        kernel, fixed = _kernel(bool(triton.knobs.runtime.interpret))
        kernel[lambda meta: (triton.cdiv(n_samples, meta["BLOCK_M"]),)](
            out, origins.contiguous(), dirs.contiguous(), rays.contiguous(), t.contiguous(),
            *self.mlp.tensors, n_samples, FREQUENCIES=self.frequencies, WIDTH=self.mlp.width,
            N_HIDDEN=self.mlp.hidden, IN_PAD=self.mlp.w_in.shape[0], **fixed,
        )
        return out
