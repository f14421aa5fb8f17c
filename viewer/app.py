"""The viewer window. Its frame function runs, in order:

    input → orbit camera → frame request → (render thread: network) → texture → display shader → panel

The network runs on a render thread (viewer/worker.py) and only when the request changes. The UI
redraws the last texture at ACTIVE_FPS while the view changes and at IDLE_FPS otherwise, which
leaves a 2-core CPU to the network; input and finished frames wake an idle loop at once.

Threads, and who owns what (nothing is shared except through the named hand-overs):

- UI thread (this module's loop): GLFW, the GL context and every GL object in it (textures, the
  display program, the shared frames' GL side), ImGui/ImPlot, the panels, ViewerState and the
  shown Frame. All state edits happen here.
- Render thread (viewer/worker.py RenderWorker): the LFN and volumetric renderers and the
  FrameRenderer that drives them. The UI hands it the newest FrameRequest (and, while the EPI
  section is open, EpiRequest) and takes finished Frames and EpiFrames (or the error that ended
  one) through the worker's condition-guarded mailboxes (submit/take): the EPI's network
  evaluations and gradient depth run there too, and the UI only uploads and draws the result.
  Shared frames (engine/shared_frames.py) go from the render thread's CUDA writes to the UI's GL
  copy through the pool's own lock. A backend switch (viewer/backend_switch.py) is a job on this
  thread (worker.call), run between two frames; it swaps the renderer reference, which the UI only
  reads (device, backend, precision). The switch's progress and error travel in a lock-guarded
  SwitchStatus the UI reads once a frame.
- Fit thread (viewer/reconstruct.py FitSession): the encoder pass and front/back pick of a photo's
  start, then the fitting generator and its optimizer. The UI resumes and pauses it (an Event) and
  reads its start and newest step (references the fit thread sets under the session's lock) and
  its history (under that lock); the UI publishes the newest fitted code into the LatentBank, a
  single reference swap the render thread reads. A file dropped on the window reaches the UI
  thread through GLFW's drop callback, inside poll_events.
- Benchmark thread (viewer/benchmark_run.py): its own renderers and its own offscreen EGL
  context, built, used and released on that thread alone. It posts progress lines and the result
  into the panel's locked mailbox, which the UI empties once a frame (poll).
- Path export thread (viewer/path_export.py): a camera path's video, rendered with its own renderer
  and its own offscreen EGL context, built, used and released on that thread alone. The UI hands
  it an immutable CameraPath and settings when it starts, and reads its progress and outcome (a
  lock-guarded ExportStatus) once a frame.

close() stops them in order, each with a bounded wait (viewer/worker.py CLOSE_TIMEOUT_S): the fit,
then the benchmark and the path export (their stop events end each run before its next frame),
then the render thread (after the frame or job in flight); only then are GL objects released and
GLFW terminated. No thread is left to die inside a torch call at interpreter exit.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import glfw  # imported before imgui_bundle (desktop.md), as the sorted order has it anyway
import moderngl
import numpy as np
import torch
from imgui_bundle import imgui, implot
from imgui_bundle.python_backends.glfw_backend import GlfwRenderer
from PIL import Image

from engine.config import ViewerConfig
from engine.display_mode import DisplayMode
from engine.frame import EpiRequest, Frame, FrameRenderer, FrameRequest, rendering_for
from engine.latents import FittedLatent, LatentBank, VolumetricTwins
from engine.memory import fix_malloc_thresholds, freeze_startup_heap
from engine.shared_frames import shared_frame_pool
from engine.texture import FrameTexture
from models.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from models.renderer import LFNRenderer, VolumetricRenderer, make_renderer
from viewer.backend_switch import BackendSwitch
from viewer.benchmark_panel import BenchmarkPanel
from viewer.display import DIFFERENCE_GAIN, Display, Pane, frame_panes
from viewer.epi_panel import EpiPanel, epi_request, pick_scanline
from viewer.fitted_latents import FittedLatentBank
from viewer.layout import PANEL_WIDTH, Layout, Rect
from viewer.orbit import OrbitCamera
from viewer.panel import ControlPanel, PanelInfo, handle_shortcuts
from viewer.path_panel import PathPanel
from viewer.path_recording import PathRecording
from viewer.quality import QualityPolicy
from viewer.reconstruct_panel import ReconstructPanel
from viewer.reconstruction import Reconstruction, viewer_encoder
from viewer.state import ViewerState
from viewer.stats import FrameStats
from viewer.widget_recorder import WidgetRecorder
from viewer.worker import RenderWorker

NO_DISPLAY = "error: no display available; use --web, --headless or --benchmark"
WINDOW_SIZE = (1280, 800)
MAX_WINDOW_WIDTH = 1920  # a wide frame widens the window up to a common screen's width
ACTIVE_FPS = 60.0  # more only burns the cores the network needs
IDLE_FPS = 20.0
COMPARE_RES_CPU = 64  # the volumetric baseline still costs ~40 network evaluations per hit ray
# A running fit slows every frame, so the moving resolution adapts down to 16-32 rows on a CPU, where
# the car being fitted is a blur; its preview frames keep at least this many rows.
FIT_PREVIEW_RES = 64
BACKGROUND = (0.11, 0.11, 0.12)
TEXT = imgui.IM_COL32(235, 235, 235, 255)
TEXT_BOX = imgui.IM_COL32(0, 0, 0, 160)


class NoDisplayError(RuntimeError):
    """No window can be opened here (no X display)."""


def open_window(width: int, height: int, title: str) -> glfw._GLFWwindow:
    """A GLFW window with a current OpenGL 3.3 core, forward-compatible context."""
    glfw.ERROR_REPORTING = "ignore"  # GLFW would warn on stderr; the caller reports one line
    if not glfw.init():
        raise NoDisplayError(NO_DISPLAY)
    glfw.window_hint(glfw.CONTEXT_VERSION_MAJOR, 3)
    glfw.window_hint(glfw.CONTEXT_VERSION_MINOR, 3)
    glfw.window_hint(glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE)
    glfw.window_hint(glfw.OPENGL_FORWARD_COMPAT, True)
    window = glfw.create_window(width, height, title, None, None)
    if not window:
        _, reason = glfw.get_error()
        glfw.terminate()
        raise RuntimeError(f"could not open an OpenGL 3.3 window: {(reason or b'').decode()}")
    glfw.make_context_current(window)
    glfw.swap_interval(0)
    return window


def window_size(aspect: float) -> tuple[int, int]:
    """The size the window opens at: WINDOW_SIZE, widened (up to MAX_WINDOW_WIDTH) so that a frame
    wider than the view beside the panel fills its height, e.g. 16:9 for --res 1920x1080."""
    width, height = WINDOW_SIZE
    return min(max(width, PANEL_WIDTH + round(height * aspect)), MAX_WINDOW_WIDTH), height


def window_sizes(window: glfw._GLFWwindow) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """The window's size and its framebuffer's, or None while minimized or mid-resize.

    On X11 each size query is a round trip to the server, so a resize can land between two of
    them. A framebuffer scale read across one (640 / 1, say) makes ImGui rasterize its font that
    many times larger, overflow its font atlas and abort ("Out of texture memory"). The window
    size read again after the framebuffer's tells whether the pair belongs together.
    """
    size = glfw.get_window_size(window)
    framebuffer = glfw.get_framebuffer_size(window)
    if glfw.get_window_size(window) != size or min(*size, *framebuffer) <= 0:
        return None
    return size, framebuffer


def overlay_text(x: float, y: float, text: str) -> None:
    """Text over the picture, on a dark box so it reads on any colors."""
    size = imgui.calc_text_size(text)
    draw_list = imgui.get_background_draw_list()
    draw_list.add_rect_filled((x - 3, y - 2), (x + size.x + 3, y + size.y + 2), TEXT_BOX)
    draw_list.add_text((x, y), TEXT, text)


def load_volumetric(
    path: Path | None, ckpt: Checkpoint, device: torch.device, precision: str
) -> tuple[VolumetricRenderer | None, LatentBank | None, str | None]:
    """The volumetric baseline's renderer and latents, or why the comparison is off: it shows the
    cars both checkpoints hold, matched by name (VolumetricTwins), so one with none of the LFN's
    is refused."""
    if path is None or not path.exists():
        return None, None, f"no checkpoint at {path}"
    try:
        baseline = load_checkpoint(path)
    except CheckpointError as error:
        return None, None, str(error)
    if baseline.model.kind != "volumetric":
        return None, None, f"{path} is a {baseline.model.kind} checkpoint"
    if VolumetricTwins(ckpt.instance_names, baseline.instance_names).shared() == 0:
        return None, None, f"{path} holds none of the LFN's cars (no instance name in common)"
    # As interactive volumetric renderers run: occupancy grid and early stopping (models/occupancy.py),
    # the dense image within a PSNR the benchmark reports, at a fraction of its evaluations.
    renderer = make_renderer(baseline.model, device, precision, sampling="accelerated")
    return renderer, LatentBank.of_checkpoint(baseline), None


def save_screenshot_png(image: np.ndarray, folder: Path) -> Path:
    """Save `image` as the next free lfn-screenshot-NNN.png in `folder`; returns its path.

    Written under a hidden name, then renamed: whoever watches the folder never sees half a PNG.
    """
    index = 1
    while (folder / f"lfn-screenshot-{index:03d}.png").exists():
        index += 1
    path = folder / f"lfn-screenshot-{index:03d}.png"
    partial = folder / f".{path.name}.partial"
    Image.fromarray(image).save(partial, format="PNG")
    os.replace(partial, path)
    return path


class ViewerApp:
    def __init__(self, config: ViewerConfig, ckpt: Checkpoint):
        self.config = config
        # before the window: an encoder the user named and that cannot load ends the run cleanly
        encoder, encoder_note = viewer_encoder(config.encoder, config.checkpoint, ckpt.model)
        self.window = open_window(*window_size(config.res.aspect), "LFN viewer")
        self.ctx = moderngl.create_context()
        imgui.create_context()
        implot.create_context()
        imgui.get_io().set_ini_filename(None)  # no imgui.ini left in the working folder
        self.impl = GlfwRenderer(self.window)
        # The backend asks X for the pointer instead of using the event's position, which loses
        # the start of fast drags (desktop.md); forward the event's own coordinates.
        glfw.set_cursor_pos_callback(
            self.window, lambda _w, x, y: imgui.get_io().add_mouse_pos_event(x, y)
        )
        self.display = Display(self.ctx)
        self.image_texture = FrameTexture(self.ctx)
        self.reference_texture = FrameTexture(self.ctx)

        render = config.render
        renderer = make_renderer(ckpt.model, render.device, render.precision, render.backend)
        self.latents = FittedLatentBank.of_checkpoint(ckpt)
        self.volumetric, volumetric_latents, self.volumetric_note = load_volumetric(
            config.volumetric.path, ckpt, render.device, render.precision
        )
        # LFN frames rendered into memory GL imported: no CUDA-GL interop per frame (texture.py)
        self.shared_frames = shared_frame_pool(self.ctx, render.device)
        frames = FrameRenderer(renderer, self.latents, self.volumetric, volumetric_latents,
                               self.shared_frames)
        self.worker = RenderWorker(
            frames, on_done=glfw.post_empty_event,  # thread-safe: wakes wait_events_timeout below
        )
        self.switch = BackendSwitch(self.worker)
        n = len(ckpt.instance_names)
        self.state = ViewerState(
            num_instances=n, instance=config.instance, mix_a=config.instance,
            mix_b=(config.instance + 1) % n, res=config.res, mode=config.mode,
            summed_depth=config.summed_depth,
        )
        self.panel = ControlPanel(ckpt.instance_names, config.res, frames.twins)
        self.reconstruction = Reconstruction(
            ckpt, config.checkpoint, self.latents,
            encoder.to(config.render.device) if encoder is not None else None, encoder_note,
            wake=glfw.post_empty_event)
        self.reconstruct_panel = ReconstructPanel(self.ctx, self.reconstruction, ckpt.instance_names)
        glfw.set_drop_callback(self.window, lambda _w, paths: self.reconstruct_panel.photo_dropped(
            list(paths), self.state))
        self.benchmark_panel = BenchmarkPanel(ckpt, config.volumetric.path, render.device)
        self.epi_panel = EpiPanel(self.ctx)
        self.path_recording = PathRecording(ckpt)
        self.path_panel = PathPanel(self.path_recording, ckpt.instance_names, config.checkpoint)
        self.orbit = OrbitCamera(config.home)
        self.quality = QualityPolicy()
        self.stats = FrameStats()
        self.stats.watch_collections()
        self.widget_recorder = WidgetRecorder.from_environment()  # off unless LFN_WIDGET_MAP names a file

        self.view_key: FrameRequest | None = None  # the view last asked for, at full resolution
        self.submitted: FrameRequest | None = None
        self.submitted_s = 0.0  # when `submitted` went to the render thread (perf_counter)
        self.epi_submitted: EpiRequest | None = None
        self.shown: Frame | None = None
        self.shown_textures: tuple[moderngl.Texture, moderngl.Texture | None] | None = None
        self.problem: str | None = None  # why the view shows no picture
        self.message: str | None = None
        self.title = ""
        self._previous_sigterm = signal.signal(
            signal.SIGTERM, lambda *_: glfw.set_window_should_close(self.window, True)
        )

    @property
    def renderer(self) -> LFNRenderer:
        """The active LFN renderer; a backend switch replaces it on the render thread."""
        return self.switch.renderer

    # ---- the loop -------------------------------------------------------------------------------

    def run(self) -> None:
        exit_after = self.config.exit_after_s
        last = None
        while not glfw.window_should_close(self.window):
            now = time.perf_counter()
            self.stats.phase("pace")  # since the last mark: the previous frame's wait for its pace
            if last is not None:  # the previous frame ends here, its work and its wait
                self.stats.ui_frame((now - last) * 1000.0, self.background_work())
            if exit_after is not None and now - self.stats.started_s >= exit_after:
                break
            self.frame(now, 0.0 if last is None else now - last)
            last = now
            self.pace(now)

    def background_work(self) -> tuple[str, ...]:
        """What runs beside the UI thread now, named in the --stats record of a slow UI frame."""
        switching = self.switch.status().switching
        work = {f"backend switch to {switching}": switching is not None,
                "benchmark": self.benchmark_panel.running, "video export": self.path_recording.exporting,
                "fit": self.reconstruction.running}
        if rendering_for(self.submitted, self.submitted_s, self.shown, time.perf_counter()) is not None:
            # the render thread's frame: an AOTInductor frame holds the GIL for a slice (RELIABILITY.md)
            request, renderer = self.submitted, self.renderer
            work[f"frame {request.mode.value} {request.res} {renderer.backend} {renderer.precision}"] = True
        return tuple(name for name, running in work.items() if running)

    def pace(self, frame_start: float) -> None:
        """Hold the frame rate at ACTIVE_FPS at most, and at IDLE_FPS while the view rests."""
        spent = time.perf_counter() - frame_start
        if spent < 1.0 / ACTIVE_FPS:
            time.sleep(1.0 / ACTIVE_FPS - spent)
        # A running fit alone gets idle pacing too: UI redraws at 60 FPS cost a 2-core CPU's fit
        # ~25 % of its steps (measured 11-12 vs 15 steps/s); input and finished frames still wake
        # the loop at once, so orbiting during a fit stays responsive.
        if not self.quality.moving(frame_start) or self.reconstruction.running:
            rest = 1.0 / IDLE_FPS - (time.perf_counter() - frame_start)
            if rest > 0:
                glfw.wait_events_timeout(rest)  # returns at once on input or a finished frame

    def frame(self, now: float, dt: float) -> None:
        glfw.poll_events()
        self.stats.phase("events")
        sizes = window_sizes(self.window)
        if sizes is None:
            return  # minimized or mid-resize: nothing sure to draw into
        (win_w, win_h), (fb_w, fb_h) = sizes
        layout = Layout(win_w, win_h, (fb_w / win_w, fb_h / win_h))
        self.impl.process_inputs()
        # The backend reads the two sizes again, separately, and can straddle a resize; ImGui
        # gets the pair checked above instead.
        io = imgui.get_io()
        io.display_size = imgui.ImVec2(win_w, win_h)
        io.display_framebuffer_scale = imgui.ImVec2(*layout.scale)
        imgui.new_frame()
        self.orbit.handle_input(layout.view, dt)
        pick_scanline(self.state, self.pictures(layout)[0])
        handle_shortcuts(self.state)
        self.reconstruction.update(self.state, now)
        if self.state.camera_requested is not None:
            self.orbit.orbit, self.state.camera_requested = self.state.camera_requested, None
        self.stats.phase("input")
        with self.widget_recorder.recording():
            self.panel.draw(self.state, self.panel_info(), layout.panel, win_h, self.object_tools,
                            lambda: self.benchmark_panel.draw(
                                self.state.instance, self.renderer.precision, self.renderer.backend),
                            lambda: self.epi_panel.draw(self.state))
        self.stats.phase("panel")
        if self.state.switch_requested:
            self.switch.start(*self.state.switch_requested)
            self.state.switch_requested = None
        shown_before = self.shown
        self.update_frame(now)
        self.stats.phase("frame in")
        self.draw(layout, (fb_w, fb_h))
        imgui.render()
        self.impl.render(imgui.get_draw_data())
        self.stats.phase("draw")
        glfw.swap_buffers(self.window)
        self.stats.phase("swap")
        if self.shown is not shown_before:  # a new frame is on screen: a photo's times its codes
            self.reconstruction.on_screen(self.shown.request, self.shown.render_ms,
                                          time.perf_counter())
        self.update_title()
        self.stats.phase("title")
        if self.state.screenshot_requested:
            self.state.screenshot_requested = False
            self.save_screenshot()
            self.stats.phase("screenshot")

    def object_tools(self) -> None:
        """The panel's sections below its Object one: reconstruction and the camera path."""
        self.reconstruct_panel.draw(self.state, self.orbit.orbit)
        renderer = self.renderer
        self.path_panel.draw(self.state, self.orbit.orbit, renderer.device, renderer.precision,
                             renderer.backend)

    # ---- frame requests and results ---------------------------------------------------------------

    def next_request(self, now: float) -> FrameRequest:
        state = self.state
        key = state.frame_request(self.orbit.orbit)
        fitting = self.reconstruction.running and state.latent_source is FittedLatent
        if key != self.view_key or fitting:  # the latent being fitted keeps moving
            self.view_key = key
            self.quality.changed(now)
        # The policies count rows; a coarse frame keeps the requested aspect.
        rows = self.quality.resolution(state.res.height, now)
        if fitting:
            rows = max(rows, min(FIT_PREVIEW_RES, state.res.height))
        if state.mode is DisplayMode.COMPARE and self.renderer.device.type == "cpu":
            rows = min(rows, COMPARE_RES_CPU)
        return state.frame_request(self.orbit.orbit, rows)

    def update_frame(self, now: float) -> None:
        request = self.next_request(now)
        if request != self.submitted:
            self.worker.submit(request)
            self.submitted, self.submitted_s = request, now
        done = self.worker.take()
        if isinstance(done, Exception):
            if self.config.debug:
                raise done
            self.problem = f"render failed: {type(done).__name__}: {done}"
        elif done is not None:
            self.show(done)
        epi = epi_request(self.state, request)
        if epi is not None and epi != self.epi_submitted:
            self.worker.submit(epi)
            self.epi_submitted = epi
        done_epi = self.worker.take(EpiRequest)
        if isinstance(done_epi, Exception) and self.config.debug:
            raise done_epi
        if done_epi is not None:
            self.epi_panel.show(done_epi)

    def show(self, frame: Frame) -> None:
        request = frame.request
        self.stats.rendered(request.res.height, frame.render_ms + frame.reference_ms)
        if request.mode is not DisplayMode.COMPARE:
            self.quality.observe(request.res.height, frame.render_ms, self.state.res.height)
        image = self.image_texture.upload(frame.image, frame.shared)
        frame.shared = None  # back in its pool: frame.image may be overwritten from now on
        reference = None
        if frame.reference is not None:
            reference = self.reference_texture.upload(frame.reference)
        self.shown, self.shown_textures, self.problem = frame, (image, reference), None

    def panes(self) -> list[Pane]:
        frame, (image, reference) = self.shown, self.shown_textures
        near_far = (
            frame.depth_range if self.state.auto_depth_range else (self.state.near, self.state.far)
        )
        return frame_panes(frame.request.mode, image, reference, near_far)

    # ---- drawing ----------------------------------------------------------------------------------

    def draw(self, layout: Layout, framebuffer: tuple[int, int]) -> None:
        self.ctx.screen.use()
        self.ctx.viewport = (0, 0, *framebuffer)
        self.ctx.clear(*BACKGROUND)
        if self.problem or self.shown is None:
            overlay_text(layout.panel + 16, layout.height / 2, self.problem or "rendering…")
            return
        panes = self.panes()
        rects = self.pictures(layout)
        if rects[0][2] <= 0:
            return
        for pane, rect in zip(panes, rects, strict=True):
            self.display.draw(pane, layout.gl_viewport(rect))
        if len(panes) > 1:
            self.label_panes(rects)
        self.epi_panel.draw_on_view(self.state, rects)

    def pictures(self, layout: Layout) -> list[Rect]:
        """Where the view's pictures are: one per pane of the shown frame, at its aspect (the
        requested one before the first frame)."""
        if self.shown is None:
            return layout.pictures(1, self.state.res.aspect)
        return layout.pictures(len(self.panes()), self.shown.request.res.aspect)

    def label_panes(self, rects: list[Rect]) -> None:
        frame = self.shown
        labels = (
            f"LFN: {self.renderer.evals_per_ray} eval/ray, {frame.render_ms:.0f} ms",
            f"volumetric (accelerated): {self.volumetric.evals_per_ray} evals/hit ray, "
            f"{frame.reference_ms:.0f} ms",
            f"|LFN - volumetric| x{DIFFERENCE_GAIN:g} (turbo)",
        )
        for (x, y, width, _), label in zip(rects, labels, strict=True):
            # a narrow pane: one clause a line rather than into the next pane
            if imgui.calc_text_size(label).x > width - 12:
                label = label.replace(", ", "\n")
            overlay_text(x + 6, y + 4, label)

    def update_title(self) -> None:
        if self.shown is None:
            return
        request = self.shown.request
        label = self.latents.label(request.latent)
        title = f"LFN viewer - {label} - {request.mode.label} - {request.res}px"
        if title != self.title:  # tests wait on this title to know which frame is on screen
            glfw.set_window_title(self.window, title)
            self.title = title

    def save_screenshot(self) -> None:
        if self.shown is None or self.problem:
            self.message = "nothing to save yet"
            return
        image = self.display.read_image(self.panes(), self.shown.request.res)
        path = save_screenshot_png(image, Path.cwd())
        self.message = f"saved {path}"
        print(self.message, flush=True)

    def texture_note(self) -> str | None:
        """Why frames take a slower path to the texture than this machine offers, if they do."""
        notes = []
        if self.shared_frames is not None and self.shared_frames.disabled_because:
            notes.append(f"shared frames off: {self.shared_frames.disabled_because}")
        if self.image_texture.fallback_reason:
            notes.append(f"interop off: {self.image_texture.fallback_reason}")
        return "\n".join(notes) or None

    def panel_info(self) -> PanelInfo:
        frame, switch = self.shown, self.switch.status()
        return PanelInfo(
            device=str(self.renderer.device),
            precision=self.renderer.precision,
            backend=self.renderer.backend,
            evals_per_ray=self.renderer.evals_per_ray,
            texture_path=self.image_texture.texture_path,
            texture_note=self.texture_note(),
            fps=self.stats.fps(),
            frame_ms=self.stats.plot_values(),
            shown_res=frame.request.res if frame else None,
            render_ms=frame.render_ms if frame else None,
            reference_ms=frame.reference_ms if frame else None,
            moving_res=self.quality.moving_res,
            depth_range=frame.depth_range if frame else (self.state.near, self.state.far),
            volumetric_note=self.volumetric_note,
            message=self.message,
            backend_reasons=self.switch.backend_reasons(),
            precision_reasons=self.switch.precision_reasons(),
            switching=switch.switching,
            switch_error=switch.error,
            waiting_s=None if self.problem else rendering_for(
                self.submitted, self.submitted_s, self.shown, time.perf_counter()
            ),
        )

    # ---- shutdown ---------------------------------------------------------------------------------

    def write_stats(self, path: Path) -> None:
        self.stats.write(
            path,
            texture_path=self.image_texture.texture_path,
            requested_res=str(self.state.res),
            moving_res=self.quality.moving_res,
            device=str(self.renderer.device),
            precision=self.renderer.precision,
            backend=self.renderer.backend,
            **self.reconstruction.stats(),
        )

    def close(self) -> None:
        signal.signal(signal.SIGTERM, self._previous_sigterm)
        glfw.hide_window(self.window)  # gone at once, even while a slow frame finishes below
        self.stats.close()
        self.reconstruction.close()
        self.benchmark_panel.close()  # a thread left running would die inside torch at exit: SIGABRT
        self.path_recording.close()
        self.worker.close()
        if self.shared_frames is not None:
            self.shared_frames.release()
        self.reconstruct_panel.release()
        self.epi_panel.release()
        self.image_texture.release()
        self.reference_texture.release()
        _ = self.ctx.error  # a stale GL error would make PyOpenGL raise in shutdown()
        self.impl.shutdown()
        implot.destroy_context()
        imgui.destroy_context()
        glfw.terminate()


def run_viewer(config: ViewerConfig, ckpt: Checkpoint) -> int:
    fix_malloc_thresholds()  # jobs' threads give freed memory back: no steps at rest after them
    app = ViewerApp(config, ckpt)
    freeze_startup_heap()  # full collections then skip the startup heap: shorter UI stalls
    try:
        app.run()
    finally:
        app.close()
    if config.stats is not None:
        app.write_stats(config.stats)
    return 0
