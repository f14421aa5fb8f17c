"""The two renderers of models/renderer_protocol.Renderer: set a latent, then render a camera.

    renderer = make_renderer(model, device, precision, backend)   # either model kind
    renderer.set_latent(latent)                  # folds the latent into plain MLP tensors
    image = renderer.render(cam2world, res)      # (H, W, 3) colors in [0, 1], on the device

`res` is a models.resolution.Resolution, or an int N for an N × N frame.

LFNRenderer folds latents, chunks frames and replays them from CUDA graphs; evaluating the folded
per-ray MLP is its ray backend's job (models/backends/, by name in BACKENDS). On CUDA the
backends whose capabilities say cuda_graphs replay a frame from a CUDA graph captured once per
resolution (models/frame_graphs.py); set_latent copies a new latent into the same weight tensors,
so the graphs stay valid.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

import torch

from models.backends import BACKENDS
from models.cameras import intrinsics, pixel_rays
from models.folded_field import FoldedField
from models.frame_graphs import FrameGraphs
from models.lfn import LightFieldNetwork
from models.mlp import in_row_buckets
from models.occupancy import OccupancyGrid, build_occupancy, march, schedule_for
from models.plucker import meets_unit_sphere, plucker
from models.renderer_protocol import Capabilities, RayBackend, Renderer
from models.resolution import Resolution
from models.static_marcher import StaticMarcher
from models.triton_lfn import OPERAND_DTYPES, triton_available
from models.volumetric import VolumetricField, render_specialized

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# Each captured resolution keeps its graph's memory pool, a one-pass frame's activations (0.5 GB per
# 256-wide layer output at 1024² in fp16); frames of more pixels render without a graph.
GRAPH_MAX_PIXELS = 1024 * 1024
T = TypeVar("T")


def cpu_computes_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX-512 BF16 or AMX). torch says so only through
    private helpers: one that is gone reads as no."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, check, lambda: False)() for check in checks)


def default_precision(device: torch.device) -> str:
    """The viewer's precision unless asked for another: fp16 on CUDA; on a CPU bf16 where it is
    native (a 256² frame of the shipped car 70 ms instead of 395 on a 2-core AMD EPYC with AVX-512
    BF16, 44-46 dB from the fp32 frame, depth within 0.2 %: PERF.md), else fp32. (Its memory at
    rest stays flat since a CPU's bf16 rows are bucketed: models/mlp.py in_row_buckets.)"""
    if device.type == "cuda":
        return "fp16"
    return "bf16" if cpu_computes_bf16() else "fp32"


def ray_backend(name: str) -> type[RayBackend]:
    """The ray backend class registered as `name` (models/backends/)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
    return BACKENDS[name]


def backend_unavailable(backend: str, device: torch.device, precision: str = "fp16") -> str | None:
    """Why `backend` cannot run on `device` in `precision`, or None when it can."""
    return ray_backend(backend).unavailable_reason(device, precision)


def capturable_frame(
    pose: torch.Tensor, res: Resolution, colors: Callable[[torch.Tensor], torch.Tensor],
) -> Callable[[], torch.Tensor]:
    """A step computing colors(Plücker rays (W*H, 6)) of the frame seen from the camera in the
    device tensor `pose`. The intrinsics go to pose's device here, so the step reads nothing
    from the host: a CUDA graph can capture it (models/frame_graphs.py)."""
    k = intrinsics(res.width, res.height).to(pose.device)

    def step() -> torch.Tensor:
        origins, dirs = pixel_rays(pose, k, res.width, res.height)
        return colors(plucker(origins, dirs).view(-1, 6))

    return step


# A CPU has no out-of-memory signal to halve a chunk on (the kernel's OOM killer strikes first), so
# its frames are chunked to a working-memory budget: one chunk's activations stay under this.
CPU_WORKING_BYTES = 256 << 20
LIVE_ACTIVATIONS = 3  # a layer's input, its output and the product's temporary, per evaluation


def rays_within_budget(activations_per_ray: int, dtype: torch.dtype, streams: int = 1) -> int:
    """How many rays' activations (`activations_per_ray` values each, `streams` copies: a tangent
    pass carries 4 beside the primal) fit CPU_WORKING_BYTES."""
    per_ray = activations_per_ray * LIVE_ACTIVATIONS * streams * torch.finfo(dtype).bits // 8
    return max(1, CPU_WORKING_BYTES // per_ray)


# A CPU frame's LFN colors are evaluated in slices of this many rays, and a frame that may be
# abandoned is asked between two slices whether it is still wanted. A slice's activations (4 MB at
# 256 wide) stay in the caches: slices render a frame in about half the time of one pass (PERF.md,
# "CPU frames in slices"). A power of two, so each ray keeps its offset within the matrix kernels'
# row blocks: the colors are bit-identical to one pass (tests/test_frame_abandon.py); with
# 1000-ray slices they were not.
CPU_SLICE_RAYS = 4096


class FrameAbandoned(Exception):
    """A CPU frame given up between two slices because its `abandon` said so: nothing of it is kept."""


def give_up_if(abandon: Callable[[], bool] | None) -> None:
    """Raise FrameAbandoned when `abandon` (asked between two slices or chunks of work) says so."""
    if abandon is not None and abandon():
        raise FrameAbandoned


def render_in_chunks(renderer, count: int, render_rays: Callable[[int, int], T]) -> list[T]:
    """render_rays(start, stop) over [0, count) in slices of renderer.rays_per_chunk; on out-of-memory
    the chunk halves (kept for later frames) and the frame starts over."""
    while True:
        try:
            step = renderer.rays_per_chunk
            return [render_rays(i, min(i + step, count)) for i in range(0, count, step)]
        except torch.OutOfMemoryError:
            if renderer.rays_per_chunk == 1:
                raise
            renderer.rays_per_chunk //= 2
            if renderer.device.type == "cuda":
                torch.cuda.empty_cache()


def ray_colors(renderer, rays: torch.Tensor, abandon: Callable[[], bool] | None = None) -> torch.Tensor:
    """(N, 6) Plücker rays → (N, 3) colors from `renderer.colors`, in chunks of its rays_per_chunk
    (render_in_chunks); on a CPU each chunk in CPU_SLICE_RAYS slices, `abandon` asked before each
    (a frame's rays, an EPI's: models/epi.py), their rows bucketed for the renderer's `dtype`
    (models.mlp.in_row_buckets). A CUDA chunk is one call and never asks it. A `bounded` renderer
    evaluates only the rays that meet the unit sphere; the others are white."""
    if renderer.bounded:
        inside = meets_unit_sphere(rays)
        evaluated = int(inside.sum())  # one read back from the device decides both cases below
        if evaluated < rays.shape[0]:
            colors = torch.ones(rays.shape[0], 3, dtype=renderer.dtype, device=rays.device)
            if evaluated:
                colors[inside] = _evaluated_colors(renderer, rays[inside], abandon).to(colors.dtype)
            return colors
    return _evaluated_colors(renderer, rays, abandon)


def _evaluated_colors(renderer, rays: torch.Tensor, abandon: Callable[[], bool] | None) -> torch.Tensor:
    """ray_colors with every ray evaluated."""
    if renderer.device.type != "cpu":
        parts = render_in_chunks(renderer, rays.shape[0], lambda i, j: renderer.colors(rays[i:j]))
    else:
        def sliced(start: int, stop: int) -> torch.Tensor:
            slices = []
            for i in range(start, stop, CPU_SLICE_RAYS):
                give_up_if(abandon)
                slices.append(in_row_buckets(renderer.colors, rays[i:min(i + CPU_SLICE_RAYS, stop)],
                                             renderer.dtype))
            return slices[0] if len(slices) == 1 else torch.cat(slices)

        parts = render_in_chunks(renderer, rays.shape[0], sliced)
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def frame_rays(
    cam2world: torch.Tensor, res: Resolution | int, device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Origins and unit directions (W*H, 3), rows top to bottom, of a frame with the default
    (vertical) field of view."""
    res = Resolution.of(res)
    origins, dirs = pixel_rays(cam2world.to(device), intrinsics(res.width, res.height), res.width, res.height)
    return origins.reshape(-1, 3), dirs.reshape(-1, 3)


def rgba_frame(colors: torch.Tensor, res: Resolution, out: torch.Tensor | None) -> torch.Tensor:
    """(W*H, 3) colors → (H, W, 4) float32 RGBA with alpha 1, copied into `out` if given.
    pad writes a new tensor: the frame never aliases its source (a CUDA graph's output, which the
    next replay rewrites)."""
    rgba = torch.nn.functional.pad(colors.view(res.height, res.width, 3).float(), (0, 1), value=1.0)
    return rgba if out is None else out.copy_(rgba)


class LFNRenderer:
    """Renders an LFN: one network evaluation per pixel ray.

    `bounded` (the default) evaluates only the rays whose line meets the unit sphere, which holds
    every object (models.plucker.meets_unit_sphere); the others are the white background the
    training views show there, as the volumetric renderer's do. False evaluates every ray, as the
    paper's LFN does (tools.evaluate scores that network output).

    The per-ray MLP runs in the ray backend named `backend` (models/backends/); a backend with
    fused frames renders them itself, the others get Plücker rays from here.

    Frames larger than `max_rays` render in chunks, halved on out-of-memory like the volumetric one's;
    up to 4096 x 4096 on CUDA a frame is one pass, on a CPU as many rays as CPU_WORKING_BYTES holds.

    `cuda_graphs` (CUDA, backends whose capabilities say cuda_graphs): a one-pass frame of at most
    GRAPH_MAX_PIXELS replays from a CUDA graph captured on the first frame at its resolution; False
    renders every frame launch by launch (e.g. to time the difference). Ignored elsewhere.
    """

    def __init__(
        self, model: LightFieldNetwork, device: torch.device | str = "cpu",
        precision: str = "fp32", backend: str = "torchscript", max_rays: int | None = None,
        cuda_graphs: bool = True, bounded: bool = True,
    ):
        backend_class = ray_backend(backend)
        self.bounded = bounded
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.dtype = PRECISIONS[precision]
        self.precision, self.backend = precision, backend
        self.evals_per_ray = model.evals_per_ray
        self.rays_per_chunk = max_rays or (
            1 << 24 if self.device.type == "cuda" else rays_within_budget(model.config.width, self.dtype))
        self._mlp_tensors: tuple[torch.Tensor, ...] = ()
        self.frame_graphs: FrameGraphs | None = None
        if cuda_graphs and self.device.type == "cuda" and backend_class.capabilities.cuda_graphs:
            self.frame_graphs = FrameGraphs(self._graph_step, self.device)
        self.capabilities = replace(backend_class.capabilities, cuda_graphs=self.frame_graphs is not None)
        self._fold(model.latents.weight[0], model.specialize)
        self.ray_backend = backend_class(self._mlp_tensors, self.dtype)
        # Chosen once, so a frame is one direct call with no per-frame test of the backend.
        if self.capabilities.fused_frames:
            self._render_frame, self._render_rgba_frame = self._fused_frame, self._fused_rgba
        else:
            self._render_frame, self._render_rgba_frame = self._render_rays, self._render_rays_rgba

    def folded_mlp(self) -> tuple[torch.Tensor, ...]:
        """The current latent folded into the per-ray MLP (models/mlp.py's w_in, b_in, w_hidden,
        b_hidden, w_out, b_out) in the renderer's precision. set_latent rewrites these tensors in
        place: read them, never write them."""
        return self._mlp_tensors

    def set_latent(self, latent: torch.Tensor, modulation_offset: torch.Tensor | None = None) -> None:
        """Fold `latent` into the MLP tensors, in place: the tensors keep their addresses, so a
        captured CUDA graph (and anyone holding folded_mlp()) sees the new latent. A car refined
        past its latent (models/modulation_fit.py) adds its `modulation_offset` to the latent's
        FiLM modulations."""
        if modulation_offset is None:
            self._fold(latent, self.model.specialize)
        else:
            with torch.no_grad():
                latent = latent.to(self.device, torch.float32)
                modulations = self.model.modulations(latent[None], modulation_offset[None])[0]
            self._fold(modulations, self.model.specialize_modulations)
        self.ray_backend.set_mlp_tensors(self._mlp_tensors)

    def _fold(self, code: torch.Tensor, specialize: Callable[..., tuple[torch.Tensor, ...]]) -> None:
        """The MLP tensors of `code` (a latent or modulations) by its model's `specialize`."""
        with torch.no_grad():
            folded = specialize(code.to(self.device, torch.float32))
            if [(t.shape, self.dtype) for t in folded] == [(t.shape, t.dtype) for t in self._mlp_tensors]:
                for target, source in zip(self._mlp_tensors, folded, strict=True):
                    target.copy_(source)
            else:  # the first latent (or new shapes): new tensors, so graphs of the old ones must go
                # copy=True: specialize returns the head's own parameters, which must never be
                # written in place (training or fitting may be using them).
                self._mlp_tensors = tuple(
                    t.to(self.dtype, copy=True, memory_format=torch.contiguous_format) for t in folded
                )
                if self.frame_graphs is not None:
                    self.frame_graphs.clear()

    def _graph_step(self, pose: torch.Tensor, res: Resolution) -> Callable[[], torch.Tensor]:
        """render's one-pass frame from the camera in the device tensor `pose`: (W*H, 3) colors.
        A graph's shapes are fixed, so a bounded one evaluates every ray and whitens those outside."""
        if not self.bounded:
            return capturable_frame(pose, res, self.colors)

        def bounded_colors(rays: torch.Tensor) -> torch.Tensor:
            return torch.where(meets_unit_sphere(rays)[:, None], self.colors(rays), 1.0)

        return capturable_frame(pose, res, bounded_colors)

    def _graphed_colors(self, cam2world: torch.Tensor, res: Resolution) -> torch.Tensor | None:
        """The frame's (W*H, 3) colors replayed from its CUDA graph, or None where this frame
        renders without one. The result is the graph's static output: callers copy it."""
        if self.frame_graphs is None or res.pixels > min(GRAPH_MAX_PIXELS, self.rays_per_chunk):
            return None
        try:
            return self.frame_graphs(cam2world, res)
        except RuntimeError as error:  # out of memory for a graph's pool, or a capture that failed
            warnings.warn(f"CUDA graphs off, frames render launch by launch: {error}", stacklevel=2)
            self.frame_graphs = None
            self.capabilities = replace(self.capabilities, cuda_graphs=False)
            return None

    def colors(self, plucker_rays: torch.Tensor) -> torch.Tensor:
        """(N, 6) Plücker coordinates → (N, 3) colors, with the current latent."""
        return self.ray_backend.colors(plucker_rays)

    def fused_depth_equations(
        self, cam2world: torch.Tensor, res: Resolution, summed: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Colors (N, 3) and gradient depth's Σ a·b, Σ a² (N,) from the backend's own kernels;
        only where capabilities.gradient_depth is FUSED_REVERSE (models/depth.py asks)."""
        return self.ray_backend.depth_equations(cam2world, res, summed)

    @torch.no_grad()
    def render_rgba(
        self, cam2world: torch.Tensor, res: Resolution | int, out: torch.Tensor | None = None,
        abandon: Callable[[], bool] | None = None,
    ) -> torch.Tensor:
        """(H, W, 4) float32 RGBA with alpha 1, the layout a GL texture takes byte for byte.

        With `out` (a preallocated (H, W, 4) float32 tensor) a backend with fused frames writes
        the frame there directly, so a frame allocates nothing.

        `abandon` is asked before each CPU_SLICE_RAYS slice of a CPU frame; when it answers True
        the frame raises FrameAbandoned and `out` is left untouched. Only CPU frames are sliced: a
        CUDA frame (one pass or graph replay, under a millisecond) never asks it, so the GPU path
        gains no check and no synchronization.
        """
        return self._render_rgba_frame(cam2world, Resolution.of(res), out, abandon)

    def _fused_rgba(
        self, cam2world: torch.Tensor, res: Resolution, out: torch.Tensor | None,
        abandon: Callable[[], bool] | None,
    ) -> torch.Tensor:
        """A fused backend's frame (CUDA): one kernel, nothing between slices to abandon."""
        return self.ray_backend.render_rgba(cam2world, res, out, self.bounded)

    def _fused_frame(self, cam2world: torch.Tensor, res: Resolution) -> torch.Tensor:
        return self.ray_backend.render(cam2world, res, self.bounded)

    @torch.no_grad()
    def render(self, cam2world: torch.Tensor, res: Resolution | int) -> torch.Tensor:
        """(H, W, 3) colors in [0, 1], in the renderer's precision."""
        return self._render_frame(cam2world, Resolution.of(res))

    def _render_rays_rgba(
        self, cam2world: torch.Tensor, res: Resolution, out: torch.Tensor | None,
        abandon: Callable[[], bool] | None,
    ) -> torch.Tensor:
        colors = self._graphed_colors(cam2world, res)
        if colors is None:
            colors = self._render_rays(cam2world, res, abandon)
        return rgba_frame(colors, res, out)

    def _render_rays(
        self, cam2world: torch.Tensor, res: Resolution, abandon: Callable[[], bool] | None = None,
    ) -> torch.Tensor:
        """Rays made here, colors from the backend: from the frame's CUDA graph, or chunk by chunk
        (on a CPU each chunk slice by slice)."""
        shape = (res.height, res.width, 3)
        colors = self._graphed_colors(cam2world, res)
        if colors is not None:  # a copy: the caller may keep it while the next frame replays
            return colors.view(shape).clone()
        origins, dirs = frame_rays(cam2world, res, self.device)
        return ray_colors(self, plucker(origins, dirs), abandon).view(shape)


# How the volumetric baseline places its network evaluations along a ray:
#   dense        all SAMPLES_PER_RAY samples of every ray, op by op (the paper's comparison)
#   fused        the same samples through one fused Triton kernel (CUDA; models/triton_field.py),
#                so a ratio against the LFN measures evaluations per ray alone, not code paths
#   accelerated  the same sample positions, evaluated only in cells an occupancy grid of the
#                model's density marks and only until the ray is opaque (models/occupancy.py), as
#                instant-ngp and nerfacc render interactively
VOLUMETRIC_SAMPLINGS = ("dense", "fused", "accelerated")
# Occupancy grid cells per axis: the grid is rebuilt whenever the latent changes (6 evaluations at each
# corner near the object: 3.1 M at 128, 0.5 M at 64 for the cars checkpoint), so the CPU gets a
# coarser one.
OCCUPANCY_RES = {"cuda": 128, "cpu": 64}


def volumetric_unavailable(sampling: str, device: torch.device, precision: str = "fp16") -> str | None:
    """Why the volumetric `sampling` cannot run on `device` in `precision`, or None when it can."""
    if sampling not in VOLUMETRIC_SAMPLINGS:
        return f"unknown sampling {sampling!r}; choose from {', '.join(VOLUMETRIC_SAMPLINGS)}"
    if sampling == "fused":
        return fused_field_unavailable(device, precision)
    return None


def fused_field_unavailable(device: torch.device, precision: str) -> str | None:
    """Why the volumetric samples cannot run through the fused Triton kernel (models/triton_field.py)
    on `device` in `precision`, or None when they can."""
    if device.type != "cuda":
        return "the fused Triton kernel runs on CUDA only"
    available, why_not = triton_available()
    if not available:
        return f"the fused Triton kernel cannot run: {why_not}"
    if PRECISIONS[precision] not in OPERAND_DTYPES:
        return f"the fused Triton kernel takes fp16 or bf16 operands, not {precision}"
    return None


class VolumetricRenderer:
    """Renders the volumetric baseline with one of VOLUMETRIC_SAMPLINGS, chunked.

    The chunk size starts at `max_samples` per pass and halves on out-of-memory, so a resolution
    too large for the memory at hand renders in more passes instead of failing. `evals_per_ray`
    is the dense count, or for `accelerated` the mean over the last frame's rays that hit
    something (opacity > 0.5), which is what such a renderer spends where it matters.

    `accelerated` builds its occupancy grid (`occupancy_res` cells per axis, by default
    OCCUPANCY_RES of the device) in the first frame after set_latent: `grid_build_ms` is that cost,
    once per latent (a renderer made for one instance and set to another builds one grid, not two).
    On CUDA it marches with a StaticMarcher (models/static_marcher.py): replayed from CUDA graphs,
    no host sync but the frame's one; its first frame of a size and any that its capacity does not
    hold march with march(), which is also a CPU's marcher (a CPU chunk is small, its host syncs
    cost nothing, and padding would cost network evaluations).

    A frame's `abandon` is asked before each chunk of rays and each chunk of the grid's density
    evaluations; when it answers True the frame raises FrameAbandoned (a CPU frame at 64² takes
    seconds: the benchmark's cancel lands between chunks). An abandoned grid is built again by the
    next frame.
    """

    def __init__(
        self, model: VolumetricField, device: torch.device | str = "cpu",
        precision: str = "fp32", max_samples: int | None = None, sampling: str = "dense",
        occupancy_res: int | None = None,
    ):
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        if (reason := volumetric_unavailable(sampling, self.device, precision)) is not None:
            raise ValueError(f"volumetric sampling {sampling}: {reason}")
        self.dtype = PRECISIONS[precision]
        self.precision, self.sampling = precision, sampling
        # Dense samples run op by op (eager PyTorch: the paper's comparison); fused ones through the
        # Triton kernel, and so do the accelerated march's where it can run (a CPU's are eager).
        self.fused_kernel = sampling == "fused" or (
            sampling == "accelerated" and fused_field_unavailable(self.device, precision) is None)
        self.backend = "triton" if self.fused_kernel else "eager"
        self.evals_per_ray = model.evals_per_ray
        self.evals_per_ray_all = float(model.evals_per_ray)  # mean over every ray of the last frame
        self.evals_per_hit_ray = float(model.evals_per_ray)  # unrounded, over the rays that hit
        self.capabilities = Capabilities(expected_depth=True)
        self.schedule = schedule_for(self.device)  # accelerated: its marching rounds
        if max_samples is not None:
            self.rays_per_chunk = max(1, max_samples // model.evals_per_ray)
        elif self.device.type == "cuda":
            self.rays_per_chunk = max(1, (1 << 26) // model.evals_per_ray)
        else:  # a marching round evaluates at most its largest round's samples of a ray at once
            at_once = max(self.schedule.rounds) if sampling == "accelerated" else model.evals_per_ray
            self.rays_per_chunk = rays_within_budget(model.config.width * at_once, self.dtype)
        self.chunks_last_frame = 1
        self.march_rounds = 0  # the most marching rounds a chunk of the last accelerated frame took
        self.occupancy_res = occupancy_res or OCCUPANCY_RES[self.device.type]
        self.grid: OccupancyGrid | None = None
        self.marcher: StaticMarcher | None = None  # CUDA: this grid's
        self.grid_build_ms = 0.0
        self.set_latent(model.latents.weight[0])

    def set_latent(self, latent: torch.Tensor, modulation_offset: torch.Tensor | None = None) -> None:
        if modulation_offset is not None:
            raise ValueError("the volumetric baseline's cars are latents: no modulation offsets")
        with torch.no_grad():
            folded = self.model.specialize(latent.to(self.device, torch.float32))
        self.field = FoldedField.of(tuple(t.to(self.dtype).contiguous() for t in folded),
                                    self.model.config.frequencies, self.fused_kernel)
        self.grid = self.marcher = None  # accelerated: the next frame builds this latent's

    def _build_grid(self, abandon: Callable[[], bool] | None) -> None:
        start = time.perf_counter()
        self.grid = build_occupancy(self.field.density, self.occupancy_res, self.device,
                                    before_chunk=lambda: give_up_if(abandon))
        if self.device.type == "cuda":
            self.marcher = StaticMarcher(self.field, self.model.config.samples_per_ray, self.grid,
                                         graphs=True, choose_faster=True, schedule=self.schedule)
            # this stream only: another thread may be capturing a graph
            torch.cuda.current_stream(self.device).synchronize()
        self.grid_build_ms = (time.perf_counter() - start) * 1000.0

    def _render_rays(self, origins: torch.Tensor, dirs: torch.Tensor, abandon: Callable[[], bool] | None):
        give_up_if(abandon)
        cfg = self.model.config
        if self.grid is not None:
            origins, dirs = origins.to(self.dtype), dirs.to(self.dtype)
            marched = self.marcher(origins, dirs) if self.marcher is not None else \
                march(origins, dirs, self.field, cfg.samples_per_ray, self.grid, self.schedule)
            self.march_rounds = max(self.march_rounds, marched.rounds)
            return marched.color, marched.depth, marched.opacity, marched.evaluations
        return render_specialized(origins.to(self.dtype), dirs.to(self.dtype), self.field,
                                  cfg.samples_per_ray)

    @torch.no_grad()
    def render_with_depth(
        self, cam2world: torch.Tensor, res: Resolution | int, abandon: Callable[[], bool] | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """Color (H, W, 3), expected depth (H, W) and opacity (H, W)."""
        res = Resolution.of(res)
        if self.sampling == "accelerated" and self.grid is None:
            self._build_grid(abandon)
        origins, dirs = frame_rays(cam2world, res, self.device)
        self.march_rounds = 0
        parts = render_in_chunks(
            self, origins.shape[0], lambda i, j: self._render_rays(origins[i:j], dirs[i:j], abandon)
        )
        self.chunks_last_frame = len(parts)
        color, depth, opacity, *evaluations = zip(*parts, strict=True)
        opacity = torch.cat(opacity)
        if evaluations:
            self._count_evaluations(torch.cat(evaluations[0]), opacity)
        shape = (res.height, res.width)
        return torch.cat(color).view(*shape, 3), torch.cat(depth).view(shape), opacity.view(shape)

    def _count_evaluations(self, evaluations: torch.Tensor, opacity: torch.Tensor) -> None:
        hit = opacity > 0.5
        self.evals_per_ray_all = float(evaluations.float().mean())
        self.evals_per_hit_ray = float(evaluations[hit].float().mean()) if bool(hit.any()) else 0.0
        self.evals_per_ray = round(self.evals_per_hit_ray)

    def render(
        self, cam2world: torch.Tensor, res: Resolution | int, abandon: Callable[[], bool] | None = None,
    ) -> torch.Tensor:
        return self.render_with_depth(cam2world, res, abandon)[0]

    def render_rgba(
        self, cam2world: torch.Tensor, res: Resolution | int, out: torch.Tensor | None = None,
        abandon: Callable[[], bool] | None = None,
    ) -> torch.Tensor:
        return rgba_frame(self.render(cam2world, res, abandon), Resolution.of(res), out)


def make_renderer(model, device="cpu", precision: str = "fp32", backend: str = "torchscript",
                  sampling: str = "dense", bounded: bool = True) -> Renderer:
    """The renderer for a loaded model of either kind; `backend` (a BACKENDS name) and `bounded`
    are the LFN's (LFNRenderer), `sampling` (a VOLUMETRIC_SAMPLINGS name) the volumetric baseline's."""
    if isinstance(model, LightFieldNetwork):
        return LFNRenderer(model, device, precision, backend, bounded=bounded)
    return VolumetricRenderer(model, device, precision, sampling=sampling)


__all__ = ["BACKENDS", "PRECISIONS", "LFNRenderer", "Renderer", "VolumetricRenderer", "backend_unavailable",
           "VOLUMETRIC_SAMPLINGS", "make_renderer", "volumetric_unavailable"]
