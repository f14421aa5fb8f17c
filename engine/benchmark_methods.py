"""What one timed frame is for each benchmark method, built around the project's renderers.

    lfn, lfn:<backend>   LFN colors, one network evaluation per ray that meets the unit sphere
                         (LFNRenderer's bound; "lfn" is TorchScript); rays_in_bound is their share
    lfn_every_ray        the viewer's backend evaluating every ray, as the paper's LFN does; the
                         viewer's row gives psnr_vs_every_ray, its image against this one's
    lfn_depth            gradient depth from models/depth.py
    lfn_depth_summed     the same from the channel-summed equations (on triton: one reverse pass)
    lfn_depth_stereo     lfn_depth refined by the wide-baseline search (models/stereo_depth.py; CUDA
                         only): its evals_per_ray counts a pixel with depth, refined_pixels their share
    volumetric           the baseline's colors, samples_per_ray evaluations per ray, chunked
    volumetric:fused     the same dense samples through one fused Triton kernel (CUDA;
                         models/triton_field.py): evaluations per ray alone against the LFN's
                         fastest paths
    volumetric:accelerated
                         occupancy grid + early stopping (models/occupancy.py): the baseline as
                         interactive renderers run it; its evals_per_ray is the mean over rays that
                         hit the car, and psnr_vs_dense checks it against the dense image
    lfn_frame            the viewer's frame: LFN colors written into a GL texture, GL finished
                         after each frame (the latency until one frame is in the texture)
    lfn_frame_pipelined  the same frames issued back to back, GL finished once per pass over the
                         path (the rate a frame loop sustains; every frame still written whole)
    lfn_frame:interop, lfn_frame_pipelined:interop
                         where the viewer's path is a shared frame (engine/shared_frames.py), the
                         CUDA-GL interop path it replaced, timed in the same run
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from engine.metrics import psnr
from models.checkpoint import Checkpoint
from models.depth import gradient_depth
from models.plucker import meets_unit_sphere, plucker
from models.renderer import (
    BACKENDS,
    VOLUMETRIC_SAMPLINGS,
    VolumetricRenderer,
    backend_unavailable,
    frame_rays,
    give_up_if,
    make_renderer,
    volumetric_unavailable,
)
from models.renderer_protocol import GradientDepth
from models.resolution import Resolution
from models.static_marcher import FRAMES_TO_CHOOSE
from models.stereo_depth import StereoConfig, estimate_depth

PSNR_CAP = 100.0  # dB: identical images have an infinite PSNR, which JSON cannot hold


@dataclass
class Method:
    name: str
    backend: str
    evals_per_ray: int
    frame: Callable[[torch.Tensor, Resolution], object]  # (cam2world, res) → one whole frame
    optional: bool = True  # a failure skips it with a note instead of ending the benchmark
    max_frames: int | None = None  # fewer timed frames than the others (the slow CPU volumetric)
    warmup: int | None = None  # its own warm-up count; None: the run's
    wall_clock: bool = False  # perf_counter even on a GPU: part of the frame is GL work
    finish: Callable[[], None] | None = None  # set: timed pipelined, finished once per pass
    # A frame replayed from a CUDA graph allocated its memory once, when captured in warm-up: the
    # peak then counts the warm-up too, or the graph's pool would be missed.
    memory_in_warmup: bool = False
    details: Callable[[], dict] = dict  # extra result keys, read after timing
    close: Callable[[], None] = lambda: None


def available_backends(device: torch.device, precision: str) -> list[str]:
    return [b for b in BACKENDS if backend_unavailable(b, device, precision) is None]


def method_name(backend: str) -> str:
    return "lfn" if backend == "torchscript" else f"lfn:{backend}"


def renderer_for(ckpt: Checkpoint, instance: int, device: torch.device, precision: str, backend: str,
                 sampling: str = "dense", bounded: bool = True):
    renderer = make_renderer(ckpt.model, device, precision, backend, sampling, bounded)
    renderer.set_latent(*ckpt.instance_code(instance))
    return renderer


def lfn_method(renderer, optional: bool, every_ray=None) -> Method:
    """LFN colors from `renderer`. A bounded one's details: the share of its last frame's rays that
    it evaluated and, given `every_ray` (a renderer of the same backend that evaluates every ray),
    that frame's PSNR against every ray's colors: what the bound changes in the picture."""
    last: dict[str, tuple[torch.Tensor, Resolution]] = {}

    def frame(cam2world: torch.Tensor, res: Resolution) -> torch.Tensor:
        last["camera"] = (cam2world, res)
        return renderer.render(cam2world, res)

    def details() -> dict:
        if not renderer.bounded or "camera" not in last:
            return {}
        cam2world, res = last["camera"]
        inside = meets_unit_sphere(plucker(*frame_rays(cam2world, res, renderer.device)))
        extra = {"rays_in_bound": float(inside.float().mean())}
        if every_ray is not None:
            image, reference = renderer.render(cam2world, res), every_ray.render(cam2world, res)
            extra["psnr_vs_every_ray"] = min(psnr(image.float(), reference.float()), PSNR_CAP)
        return extra

    name = method_name(renderer.backend) if renderer.bounded else "lfn_every_ray"
    return Method(name, renderer.backend, renderer.evals_per_ray, frame, optional=optional,
                  memory_in_warmup=renderer.capabilities.cuda_graphs, details=details)


def depth_method(renderer, summed: bool = False) -> Method:
    """Gradient depth of the viewer renderer's latent; `summed`: from the channel-summed equations."""
    # The backend's fused reverse-mode kernels where it has them (the Triton ones: colors with their
    # ReLU masks, then 3 reverse passes or 1 when summed; the mask buffer is kept from the first,
    # warm-up, frame on, so the peak counts the warm-up), else models/depth.py's eager forward-mode
    # pass with the renderer's folded weights.
    fused = renderer.capabilities.gradient_depth is GradientDepth.FUSED_REVERSE
    return Method("lfn_depth_summed" if summed else "lfn_depth", renderer.backend if fused else "eager",
                  renderer.evals_per_ray,
                  lambda cam2world, res: gradient_depth(renderer, cam2world, res, summed=summed),
                  memory_in_warmup=fused)


def stereo_depth_method(renderer) -> Method:
    """lfn_depth's frame, then each pixel with depth refined by the wide-baseline search."""
    last: dict[str, torch.Tensor] = {}

    def frame(cam2world: torch.Tensor, res: Resolution):
        result = estimate_depth(renderer, cam2world, res, stereo=True)
        last["valid"] = result.valid  # the pixels with a gradient depth, each one refined
        return result

    def details() -> dict:
        return {"refined_pixels": float(last["valid"].float().mean())} if last else {}

    return Method("lfn_depth_stereo", renderer.backend, 1 + StereoConfig().evaluations_per_pixel, frame,
                  details=details)


def volumetric_method(renderer, max_frames: int | None, warmup: int | None,
                      dense: VolumetricRenderer | None = None,
                      abandon: Callable[[], bool] | None = None) -> Method:
    """The baseline's colors in its renderer's sampling; with `dense` (the dense renderer of the same
    latent) the details compare the last timed frame's image against the dense one (PSNR), so a
    faster sampling can never hide a worse picture. `abandon` is asked between the chunks of every
    frame, the dense reference's too (FrameAbandoned: a CPU frame at 64² takes seconds)."""
    name = "volumetric" if renderer.sampling == "dense" else f"volumetric:{renderer.sampling}"
    last: dict[str, object] = {}

    def frame(cam2world: torch.Tensor, res: Resolution) -> torch.Tensor:
        last["camera"], last["image"] = (cam2world, res), renderer.render(cam2world, res, abandon)
        return last["image"]

    def details() -> dict:
        # evals_per_ray of an accelerated renderer is known once it has rendered: read it here
        extra = {"rays_per_chunk": renderer.rays_per_chunk, "chunks_per_frame": renderer.chunks_last_frame,
                 "sampling": renderer.sampling, "evals_per_ray": renderer.evals_per_ray,
                 "evals_per_ray_all_rays": renderer.evals_per_ray_all}
        if renderer.grid is not None:  # the grid is built once per latent: its cost is not in the frame
            extra.update(evals_per_hit_ray=renderer.evals_per_hit_ray, march_rounds=renderer.march_rounds,
                         occupancy_res=renderer.grid.resolution, occupied_share=renderer.grid.occupied_share,
                         grid_build_ms=renderer.grid_build_ms,
                         grid_build_evaluations=renderer.grid.build_evaluations)
        if renderer.marcher is not None:  # CUDA: frames marched again by march(), warm-up's included
            extra.update(march_fallbacks=renderer.marcher.fallbacks, march_deferred=renderer.marcher.deferred,
                         march_kept=sorted(set(renderer.marcher.kept.values())))
        if dense is not None and "image" in last:
            reference = dense.render(*last["camera"], abandon).float()
            extra["psnr_vs_dense"] = min(psnr(last["image"].float(), reference), PSNR_CAP)
        return extra

    return Method(name, renderer.backend, renderer.evals_per_ray, frame, optional=dense is not None,
                  max_frames=max_frames, warmup=warmup, details=details)


def frame_methods(renderer) -> list[Method]:
    """Render and upload through the viewer's path (engine/texture.py) in an offscreen EGL context,
    timed one frame at a time (lfn_frame) and pipelined (lfn_frame_pipelined); where that path is a
    shared frame, the interop path too.

    Raises when GL cannot be created here. The context becomes current on the calling thread, so a
    caller with a window should run the benchmark on another thread.
    """
    from engine.egl_context import offscreen_context, release_context
    from engine.shared_frames import shared_frame_pool

    ctx = offscreen_context()
    pool = shared_frame_pool(ctx, renderer.device)
    methods = upload_methods(renderer, ctx, pool, "")
    if pool is not None:
        methods += upload_methods(renderer, ctx, None, ":interop")
    close_last = methods[-1].close

    def close() -> None:
        close_last()
        if pool is not None:
            pool.release()
        release_context(ctx)  # the benchmark's thread ends next: the context must not outlive it

    methods[-1].close = close
    return methods


class TextureFrames:
    """The viewer's frame on one thread: the renderer writes RGBA into a shared frame of `pool` when
    one is free, else into a reused tensor of the frame's size, and a FrameTexture of `ctx` takes
    it (GL copies a shared frame; else the CUDA-GL interop or a CPU copy), as the viewer's render
    and UI threads hand a frame over. bench/frame_path.py times the parts."""

    def __init__(self, renderer, ctx, pool):
        from engine.texture import FrameTexture

        self.renderer, self.pool = renderer, pool
        self.texture = FrameTexture(ctx)
        self._buffers: dict[Resolution, torch.Tensor] = {}  # reused: no per-frame allocation

    def target(self, res: Resolution):
        """Where a frame of `res` is rendered: (tensor, its shared frame or None)."""
        shared = self.pool.take(res) if self.pool is not None else None
        if shared is not None:
            return shared.tensor, shared
        if res not in self._buffers:
            self._buffers[res] = torch.empty(res.height, res.width, 4, device=self.renderer.device)
        return self._buffers[res], None

    def show(self, image: torch.Tensor, shared) -> None:
        """Put a rendered frame (target's tensor) into the texture of its size."""
        if shared is not None:  # GL reads a shared frame only once CUDA has written it
            torch.cuda.current_stream(self.renderer.device).synchronize()
        self.texture.upload(image, shared)

    def write(self, cam2world: torch.Tensor, res: Resolution) -> None:
        """Render the frame and put it into the texture."""
        image, shared = self.target(res)
        self.show(self.renderer.render_rgba(cam2world, res, image), shared)

    def details(self) -> dict:
        """The path the last frame took, and why a faster one was left, if it was."""
        extra = {"texture_path": self.texture.texture_path}
        if self.renderer.device.type == "cuda" and self.texture.fallback_reason:
            extra["interop_fallback"] = self.texture.fallback_reason
        if self.pool is not None and self.pool.disabled_because:
            extra["shared_fallback"] = self.pool.disabled_because
        return extra


def upload_methods(renderer, ctx, pool, suffix: str) -> list[Method]:
    """lfn_frame and lfn_frame_pipelined (names ending in `suffix`): TextureFrames of `ctx`, into a
    shared frame of `pool` when there is one."""
    frames = TextureFrames(renderer, ctx, pool)

    def finished_frame(cam2world: torch.Tensor, res: Resolution) -> None:
        frames.write(cam2world, res)
        ctx.finish()

    common = {"backend": renderer.backend, "evals_per_ray": renderer.evals_per_ray,
              "wall_clock": True, "details": frames.details}
    return [Method(f"lfn_frame{suffix}", frame=finished_frame, close=frames.texture.release, **common),
            Method(f"lfn_frame_pipelined{suffix}", frame=frames.write, finish=ctx.finish, **common)]


@dataclass
class MethodSet:
    """The methods of one benchmark run, in table order, and why any are missing."""

    methods: list[Method] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def close(self) -> None:
        for method in self.methods:
            method.close()


def build_methods(
    lfn_ckpt: Checkpoint, volumetric_ckpt: Checkpoint | None, device: torch.device, precision: str,
    instance: int, volumetric_instance: int, backends: list[str], volumetric_frames: int | None,
    volumetric_warmup: int | None, progress: Callable[[str], None] | None = None,
    abandon: Callable[[], bool] | None = None,
) -> MethodSet:
    """backends[0] is the viewer's backend: it is required, and lfn_depth and lfn_frame use it.
    `progress` gets a line before each build (a trace, a compile, a GL context can take long or,
    in a native library, crash: the last line names the culprit). `abandon` is asked before each
    build and by the volumetric methods' frames; a True answer raises FrameAbandoned."""
    def say(line: str) -> None:
        # before each build: what was built so far holds nothing to close (the GL context is last)
        give_up_if(abandon)
        if progress:
            progress(line)

    found = MethodSet()
    viewer_renderer = None
    for backend in backends:
        say(f"building {method_name(backend)}")
        try:
            renderer = renderer_for(lfn_ckpt, instance, device, precision, backend)
        except Exception as error:  # e.g. a backend this torch build lacks; the first one must work
            if viewer_renderer is None:
                raise
            found.notes.append(f"{method_name(backend)} skipped: {type(error).__name__}: {error}")
            continue
        if viewer_renderer is None:
            viewer_renderer = renderer
            say("building lfn_every_ray")
            every_ray = renderer_for(lfn_ckpt, instance, device, precision, backend, bounded=False)
            found.methods.append(lfn_method(renderer, optional=False, every_ray=every_ray))
            found.methods.append(lfn_method(every_ray, optional=True))
        else:
            found.methods.append(lfn_method(renderer, optional=True))

    for summed in (False, True):
        found.methods.append(depth_method(viewer_renderer, summed))
    if device.type == "cuda":
        found.methods.append(stereo_depth_method(viewer_renderer))
    else:
        found.notes.append("lfn_depth_stereo skipped: CUDA only (hundreds of evaluations a pixel)")

    if volumetric_ckpt is not None:
        dense = renderer_for(volumetric_ckpt, volumetric_instance, device, precision, "eager")
        found.methods.append(volumetric_method(dense, volumetric_frames, volumetric_warmup, abandon=abandon))
        for sampling in VOLUMETRIC_SAMPLINGS[1:]:
            if (reason := volumetric_unavailable(sampling, device, precision)) is not None:
                found.notes.append(f"volumetric:{sampling} skipped: {reason}")
                continue
            say(f"building volumetric:{sampling}")
            faster = renderer_for(volumetric_ckpt, volumetric_instance, device, precision, "eager", sampling)
            # on CUDA the accelerated row's marcher chooses in its first frames: warm up through them
            choosing = sampling == "accelerated" and device.type == "cuda"
            found.methods.append(volumetric_method(faster, None, FRAMES_TO_CHOOSE if choosing else None,
                                                   dense, abandon))

    say("building lfn_frame (an offscreen GL context)")
    try:
        found.methods.extend(frame_methods(viewer_renderer))
    except Exception as error:  # no EGL or no moderngl here: the other methods still mean something
        found.notes.append(f"lfn_frame unavailable: offscreen GL failed ({type(error).__name__}: {error})")
    return found
