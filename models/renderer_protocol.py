"""The two interfaces of rendering: a `Renderer` (what the viewer, benchmark and tools call) and a
`RayBackend` (how an LFN renderer evaluates its per-ray MLP), and what each can do.

    renderer.set_latent(latent)                        # a (latent_dim,) code
    renderer.set_latent(latent, offset)                # an LFN car refined past its latent
    image = renderer.render(cam2world, res)            # (H, W, 3) colors in [0, 1], on renderer.device
    rgba = renderer.render_rgba(cam2world, res, out)   # (H, W, 4) float32, alpha 1, into `out` if given
    renderer.capabilities.gradient_depth               # how models/depth.py gets its equations, or None

`res` is a models.resolution.Resolution (W × H), or an int N for N × N; a ray backend's frame
methods get a Resolution.

models/renderer.py implements Renderer twice (LFNRenderer, VolumetricRenderer); models/backends/
holds one RayBackend class per file and the registry of their names.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

import torch

from models.resolution import Resolution


class GradientDepth(enum.Enum):
    """How gradient depth (models/depth.py) gets each pixel's equations."""

    # Forward mode in models/depth.py over the renderer's folded MLP tensors (folded_mlp()).
    FORWARD_MODE = "forward-mode"
    # The backend's own fused reverse-mode kernels (fused_depth_equations()).
    FUSED_REVERSE = "fused-reverse"


@dataclass(frozen=True)
class Capabilities:
    """What a renderer (or a ray backend) can do beyond render and render_rgba."""

    gradient_depth: GradientDepth | None = None  # None: no depth from light-field gradients
    expected_depth: bool = False  # render_with_depth: the volumetric expected depth and opacity
    # A backend: its frames are many small launches worth capturing. A renderer: it replays its
    # one-pass frames from CUDA graphs (models/frame_graphs.py).
    cuda_graphs: bool = False
    # Rays are generated inside the backend's kernel and render_rgba writes its frame straight
    # into `out`, without an intermediate frame or copy.
    fused_frames: bool = False


@runtime_checkable
class Renderer(Protocol):
    """A model that renders camera frames of its current latent."""

    device: torch.device
    precision: str  # a key of models.renderer.PRECISIONS
    backend: str  # what evaluates the network: a models/backends name
    evals_per_ray: int  # network evaluations per pixel ray
    capabilities: Capabilities

    def set_latent(self, latent: torch.Tensor, modulation_offset: torch.Tensor | None = None) -> None:
        """Render the car `latent`; an LFN's car refined past its latent also adds its FiLM
        `modulation_offset` (models/modulation_fit.py)."""

    def render(self, cam2world: torch.Tensor, res: Resolution | int) -> torch.Tensor:
        """(H, W, 3) colors in [0, 1] seen from cam2world ((4, 4) or (3, 4))."""
        ...

    def render_rgba(
        self, cam2world: torch.Tensor, res: Resolution | int, out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(H, W, 4) float32 RGBA with alpha 1, the layout a GL texture takes; written into
        `out` (an (H, W, 4) float32 tensor) when given."""
        ...


@runtime_checkable
class RayBackend(Protocol):
    """One way to evaluate an LFN's folded per-ray MLP (models/mlp.py), built from its tensors.

    Backends with capabilities.fused_frames also render whole frames:
    `render(cam2world, res, bounded)` and `render_rgba(cam2world, res, out, bounded)` as in
    Renderer, where `bounded` whitens the rays that miss the unit sphere unevaluated; those with
    capabilities.gradient_depth FUSED_REVERSE give `depth_equations(cam2world, res, summed)`,
    colors (N, 3) and the equations Σ a·b, Σ a² (N,) of models/depth.py.
    """

    name: ClassVar[str]  # its key in models.backends.BACKENDS
    capabilities: ClassVar[Capabilities]

    def __init__(self, mlp_tensors: tuple[torch.Tensor, ...], dtype: torch.dtype) -> None: ...

    @classmethod
    def unavailable_reason(cls, device: torch.device, precision: str) -> str | None:
        """Why this backend cannot run on `device` in `precision`, or None when it can."""
        ...

    def set_mlp_tensors(self, mlp_tensors: tuple[torch.Tensor, ...]) -> None:
        """Use these folded tensors (a new latent) from now on."""
        ...

    def colors(self, plucker_rays: torch.Tensor) -> torch.Tensor:
        """(N, 6) Plücker coordinates → (N, 3) colors."""
        ...
