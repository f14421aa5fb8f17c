"""What the backends that run the MLP as one PyTorch function of (rays, *mlp_tensors) share, and
the one function each builds per kind of tensors, reused by every renderer that needs it.

What a build makes cannot all be freed: a TorchScript trace stays in torch's global compilation
unit, an AOTInductor package's native library stays loaded, an export leaves its caches, for the
life of the process. The viewer builds a renderer on every backend switch, benchmark run and video
export, so each build made the process bigger (0.2-0.4 MB a build measured, viewer/repeat_action.py).
The function takes the MLP tensors as inputs, so the one built for tensors of these shapes, dtype
and device serves any renderer of them: it is built once per (backend, dtype, device, shapes),
a handful per process, and a switch back to a backend is a fold, not a rebuild.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

import torch

from models.renderer_protocol import Capabilities, GradientDepth

RayFunction = Callable[..., torch.Tensor]
_built: dict[tuple, RayFunction] = {}
_built_lock = threading.Lock()  # the render, benchmark and export threads each build renderers


def built_function(backend: type[RayFunctionBackend], mlp_tensors: tuple[torch.Tensor, ...],
                   dtype: torch.dtype) -> RayFunction:
    """`backend`'s function for tensors like `mlp_tensors`: built on first use, then the same one.
    Two threads asking at once may both build; the first stored is kept (a rare, bounded extra)."""
    key = (backend, dtype, mlp_tensors[0].device, tuple(t.shape for t in mlp_tensors))
    with _built_lock:
        function = _built.get(key)
    if function is None:
        # outside the lock: a build takes up to seconds (an AOTInductor compile: 12 s)
        function = backend.build_function(mlp_tensors, dtype)
        with _built_lock:
            function = _built.setdefault(key, function)
    return function


def built_count() -> int:
    """How many functions have been built in this process (each kept for its life)."""
    with _built_lock:
        return len(_built)


class RayFunctionBackend(ABC):
    """colors = function(rays, *mlp_tensors), the function the subclass builds (once for all
    renderers of such tensors: built_function).

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
        self.function = built_function(type(self), mlp_tensors, dtype)

    @staticmethod
    @abstractmethod
    def build_function(mlp_tensors: tuple[torch.Tensor, ...], dtype: torch.dtype) -> RayFunction:
        """The function (rays (N, 6) in `dtype`, *tensors like mlp_tensors) → colors (N, 3); it
        must read no tensor but its inputs (built_function hands it to other renderers)."""

    @classmethod
    def unavailable_reason(cls, device: torch.device, precision: str) -> str | None:
        return None

    def set_mlp_tensors(self, mlp_tensors: tuple[torch.Tensor, ...]) -> None:
        self.mlp_tensors = mlp_tensors

    def colors(self, plucker_rays: torch.Tensor) -> torch.Tensor:
        return self.function(plucker_rays.to(self.dtype), *self.mlp_tensors)
