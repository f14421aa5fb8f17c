"""One frame request (camera, latent, mode, resolution) → the tensors the display shader reads; one
EPI request (a view's scanline) → its epipolar-plane image and predicted lines (models/epi.py).

Shared by the window (on its render thread) and the headless export, so both show the same thing.
Depth and normals come from models/depth.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import torch

from engine.display_mode import DisplayMode
from engine.latents import LatentBank, LatentSelection, VolumetricTwins
from models.cameras import Orbit
from models.depth import DepthResult, gradient_depth, normals_from_depth
from models.epi import EpipolarImage, epipolar_plane_image
from models.renderer import LFNRenderer, VolumetricRenderer
from models.resolution import Resolution
from models.stereo_depth import estimate_depth

if TYPE_CHECKING:  # types only: the shared frames are GL's, and a browser server has no GL
    from engine.shared_frames import SharedFrame, SharedFramePool

T = TypeVar("T")

DEPTH_QUANTILES = (0.02, 0.98)  # the automatic depth range ignores the extreme 2 % at each end
QUANTILE_SAMPLES = 1 << 16


@dataclass(frozen=True)
class FrameRequest:
    orbit: Orbit
    res: Resolution  # an int N is taken for N × N
    mode: DisplayMode
    latent: LatentSelection
    summed_depth: bool = False  # depth from the channel-summed equations (models/depth.py)
    stereo_depth: bool = False  # refined by the wide-baseline search (models/stereo_depth.py)

    def __post_init__(self) -> None:
        # one type from here on: requests compare equal and frames read width and height
        object.__setattr__(self, "res", Resolution.of(self.res))


@dataclass(frozen=True)
class EpiRequest:
    """The epipolar-plane image of the view `orbit` at `res`: its row at `scanline`, a fraction of
    the picture's height (so it stays put when the resolution changes), seen from `rows` cameras
    slid along their right axis by up to ±`shift` × the orbit radius; as wide as the view."""

    orbit: Orbit
    res: Resolution  # the view's, as its FrameRequest holds it
    latent: LatentSelection
    scanline: float  # 0 the top of the picture, 1 the bottom
    shift: float
    rows: int = 97  # odd: the middle row is the view itself (s = 0)
    summed_depth: bool = False  # the predicted lines from the channel-summed depth equations

    @property
    def row(self) -> int:
        return min(self.res.height - 1, max(0, int(self.scanline * self.res.height)))

    def shifts(self) -> torch.Tensor:
        reach = self.shift * self.orbit.radius
        return torch.linspace(-reach, reach, self.rows)


Request = FrameRequest | EpiRequest


@dataclass
class EpiFrame:
    request: EpiRequest
    epi: EpipolarImage
    render_ms: float = 0.0


@dataclass
class Frame:
    request: FrameRequest
    image: torch.Tensor  # (H, W, C ≤ 4), laid out for the display shader's mode
    reference: torch.Tensor | None = None  # the volumetric colors of a compare frame
    depth_range: tuple[float, float] = (0.0, 1.0)  # near, far of the valid depths
    render_ms: float = 0.0
    reference_ms: float = 0.0
    # The shared frame `image` lives in: valid until uploaded (FrameTexture.upload) or dropped.
    shared: SharedFrame | None = None

    def drop(self) -> None:
        """Give the shared frame back unshown (a newer frame replaced this one)."""
        if self.shared is not None:
            self.shared.pool.give_back(self.shared)
            self.shared = None


def to_rgba32f(image: torch.Tensor) -> torch.Tensor:
    """(H, W, C ≤ 4) of any float dtype → contiguous (H, W, 4) float32 on the same device, alpha 1:
    the one format a frame's texture (engine/texture.py) and a shared frame take."""
    image = image.float()
    if image.shape[-1] < 4:
        image = torch.nn.functional.pad(image, (0, 4 - image.shape[-1]), value=1.0)
    return image.contiguous()


def depth_range(depth: torch.Tensor, valid: torch.Tensor) -> tuple[float, float]:
    """Near and far of the valid depths, robust to a few stray pixels."""
    values = depth[valid].float()
    if values.numel() == 0:
        return (0.0, 1.0)
    values = values[:: max(1, values.numel() // QUANTILE_SAMPLES)]
    near, far = torch.quantile(values, torch.tensor(DEPTH_QUANTILES, device=values.device)).tolist()
    return (near, far) if far > near else (near - 0.5, near + 0.5)


def rendering_for(submitted: FrameRequest | None, submitted_s: float, shown: Frame | None,
                  now: float) -> float | None:
    """Seconds the submitted request has been rendering (submitted at `submitted_s`, clock of `now`),
    or None when nothing was submitted or the shown frame is the submitted one."""
    if submitted is None or (shown is not None and shown.request == submitted):
        return None
    return now - submitted_s


def timed(function: Callable[[], T], device: torch.device) -> tuple[T, float]:
    """Run `function`, wait for the device, return (its result, milliseconds)."""
    start = time.perf_counter()
    result = function()
    if device.type == "cuda":  # also makes the result safe to copy from the GL thread
        # the frame's stream, not the device: another thread may be capturing a CUDA graph
        # (models/frame_graphs.py), and a device-wide synchronize would break that capture
        torch.cuda.current_stream(device).synchronize()
    return result, (time.perf_counter() - start) * 1000.0


class FrameRenderer:
    """Renders FrameRequests with an LFN renderer and, for compare frames, a volumetric one: its
    half shows the same cars, looked up by name in its own table (VolumetricTwins).

    With `shared_frames` (engine/shared_frames.py) the LFN image is written into a shared frame when
    one is free, so the GL thread copies it without the CUDA-GL interop.
    """

    def __init__(
        self, renderer: LFNRenderer, latents: LatentBank,
        volumetric: VolumetricRenderer | None = None, volumetric_latents: LatentBank | None = None,
        shared_frames: SharedFramePool | None = None,
    ):
        self.renderer, self.latents = renderer, latents
        self.volumetric, self.volumetric_latents = volumetric, volumetric_latents
        self.twins = (None if volumetric_latents is None
                      else VolumetricTwins(latents.names, volumetric_latents.names))
        self.shared_frames = shared_frames
        self._latents: dict[int, LatentSelection] = {}  # renderer id → the latent it holds
        # The gradient depth of the view the last EPI showed, and that view: an EPI of another
        # scanline or shift reuses it, so dragging the scanline costs the EPI's rays alone.
        self._epi_view: tuple[tuple, DepthResult] | None = None

    def _use_latent(
        self, renderer: LFNRenderer | VolumetricRenderer, bank: LatentBank, latent: LatentSelection
    ) -> None:
        if self._latents.get(id(renderer)) != latent:  # set_latent folds weights; it never re-traces
            renderer.set_latent(bank.latent(latent), bank.offset(latent))
            self._latents[id(renderer)] = latent

    def replace_renderer(self, renderer: LFNRenderer) -> None:
        """Render with `renderer` from the next frame on, holding the latent the old one held; call
        it on the thread that renders."""
        latent = self._latents.pop(id(self.renderer), None)  # ids are reused once the old one is freed
        if latent is not None:
            renderer.set_latent(self.latents.latent(latent), self.latents.offset(latent))
            self._latents[id(renderer)] = latent
        self.renderer = renderer
        self._epi_view = None  # the new backend or precision computes its own

    def _depth_image(
        self, cam2world: torch.Tensor, request: FrameRequest, abandon: Callable[[], bool] | None,
    ):
        result = estimate_depth(self.renderer, cam2world, request.res, request.summed_depth,
                                request.stereo_depth, abandon)
        valid = result.valid.float()
        if request.mode is DisplayMode.NORMALS:
            # normals are defined where a pixel and its 4 neighbours have depth: a tighter mask
            normals, defined = normals_from_depth(result.depth, result.valid, cam2world, request.res)
            return torch.cat([normals.float(), defined.float()[..., None]], dim=-1), (0.0, 1.0)
        image = torch.stack([result.depth.float(), valid, result.confidence.float()], dim=-1)
        return image, depth_range(result.depth, result.valid)

    def render(
        self, request: FrameRequest, waiting: Callable[[], FrameRequest | None] | None = None,
    ) -> Frame:
        """The frame of `request`. `waiting` names the newer frame request waiting, if any; once one
        waits, a CPU frame is given up (models.renderer.FrameAbandoned) between slices of its LFN
        colors (LFNRenderer.render_rgba), between chunks of its volumetric half
        (VolumetricRenderer.render; see _volumetric_abandon for its occupancy grid), and a depth or
        normals frame between slices of gradient depth's passes and before its solve
        (models.depth.gradient_depth)."""
        self._use_latent(self.renderer, self.latents, request.latent)
        shared = None if self.shared_frames is None else self.shared_frames.take(request.res)
        try:
            frame = self._render(request, None if shared is None else shared.tensor, waiting)
        except BaseException:
            if shared is not None:
                self.shared_frames.give_back(shared)
            raise
        frame.shared = shared
        return frame

    def _render(
        self, request: FrameRequest, out: torch.Tensor | None,
        waiting: Callable[[], FrameRequest | None] | None,
    ) -> Frame:
        """The frame of `request`, its image written into `out` ((H, W, 4) float32) if given."""
        cam2world = request.orbit.cam2world()
        device = self.renderer.device
        abandon = self._lfn_abandon(waiting)
        if request.mode.uses_depth:
            def depth_image():
                image, near_far = self._depth_image(cam2world, request, abandon)
                return (image if out is None else out.copy_(to_rgba32f(image))), near_far

            (image, near_far), ms = timed(depth_image, device)
            return Frame(request, image, depth_range=near_far, render_ms=ms)
        image, ms = timed(lambda: self.renderer.render_rgba(cam2world, request.res, out, abandon), device)
        frame = Frame(request, image, render_ms=ms)
        twin = self.volumetric_twin(request.latent) if request.mode is DisplayMode.COMPARE else None
        if twin is not None:
            self._use_latent(self.volumetric, self.volumetric_latents, twin)
            volumetric_abandon = self._volumetric_abandon(request, waiting)
            frame.reference, frame.reference_ms = timed(
                lambda: self.volumetric.render(cam2world, request.res, volumetric_abandon),
                self.volumetric.device,
            )
        return frame

    def _lfn_abandon(self, waiting: Callable[[], Request | None] | None) -> Callable[[], bool] | None:
        """When the LFN's work for a frame or EPI gives up: once `waiting` names a newer request, on
        a CPU only (a CUDA frame gets no per-chunk check, as in LFNRenderer.render_rgba)."""
        if waiting is None or self.renderer.device.type != "cpu":
            return None
        return lambda: waiting() is not None

    def _volumetric_abandon(
        self, request: FrameRequest, waiting: Callable[[], FrameRequest | None] | None,
    ) -> Callable[[], bool] | None:
        """When the volumetric half of `request`'s compare frame gives up: on a CPU only (a CUDA
        frame gets no per-chunk check, as the LFN half), once a newer request waits. While its
        occupancy grid builds (seconds on a CPU) only when the waiting request will not use that
        grid: it belongs to the latent, not the view, so an orbit's next frame needs it whole."""
        if waiting is None or self.volumetric.device.type != "cpu":
            return None

        def abandon() -> bool:
            newer = waiting()
            if newer is None:
                return False
            building_grid = self.volumetric.sampling == "accelerated" and self.volumetric.grid is None
            uses_grid = newer.mode is DisplayMode.COMPARE and newer.latent == request.latent
            return not (building_grid and uses_grid)

        return abandon

    def render_epi(
        self, request: EpiRequest, waiting: Callable[[], EpiRequest | None] | None = None,
    ) -> EpiFrame:
        """The EPI of `request`. `waiting` names the newer EPI request waiting, if any; once one
        waits, a CPU EPI is given up (models.renderer.FrameAbandoned) between slices of its view's
        gradient depth and before its solve (when the last EPI's view was another), and between
        slices of its colors (models.epi.epi_colors)."""
        self._use_latent(self.renderer, self.latents, request.latent)
        cam2world = request.orbit.cam2world()
        abandon = self._lfn_abandon(waiting)

        def epi() -> EpipolarImage:
            view = (request.orbit, request.latent, request.res, request.summed_depth)
            if self._epi_view is None or self._epi_view[0] != view:
                depth = gradient_depth(self.renderer, cam2world, request.res, summed=request.summed_depth,
                                       abandon=abandon)
                self._epi_view = view, depth  # kept if the colors are given up: the view's next EPI uses it
            return epipolar_plane_image(self.renderer, cam2world, request.res, request.row,
                                        request.shifts(), self._epi_view[1], abandon)

        image, ms = timed(epi, self.renderer.device)
        return EpiFrame(request, image, ms)

    def volumetric_twin(self, latent: LatentSelection) -> LatentSelection | None:
        """`latent` in the volumetric table, or None where a compare frame shows the LFN alone: no
        baseline, a random or fitted code, or a car the baseline lacks."""
        return None if self.volumetric is None else self.twins.twin(latent)
