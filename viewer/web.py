"""The viewer in a browser, for machines without a display: `python main.py --web`.

A viser server serves the page; each browser that connects is a WebSession with its own camera
(viser's orbit controls, world z up), its own controls in the page's panel and its own render
thread. Per camera update or control change:

    viser camera (wxyz, position) → cam2world → Orbit → FrameRequest → RenderWorker (network)
    → Frame → RGB bytes padded to the page's aspect → JPEG background image of that browser

One RenderWorker per browser, not one shared: the worker's newest-request-wins slot holds one
view's request, so a shared one would drop one browser's camera for another's; and the renderer
holds per-view state (the folded latent, a backend chosen in that page, CUDA graphs per size).
Two browsers then split the device, which a shared worker would do too, frame by frame.

Each page records its own camera path with the window's PathRecording (viewer/path_recording.py)
and exports it on the window's export thread (viewer/path_export.py); the finished MP4 goes to that
browser as a download. An uploaded photo is reconstructed as one dropped on the window
(viewer/reconstruction.py): without a pose, the encoder beside the checkpoint estimates it.

The page has no authentication: it binds to loopback unless --host says otherwise, and the README
shows the SSH port forward that keeps it there.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import json
import math
import signal
import socket
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import viser

from engine.benchmark_report import fps_grid, fps_label
from engine.camera_path import CameraPathError
from engine.config import WebConfig
from engine.display_mode import STEREO_DEPTH, SUMMED_DEPTH, DepthOption, DisplayMode
from engine.frame import Frame, FrameRenderer, FrameRequest
from engine.latents import BlendLatent, InstanceLatent, RandomLatent
from engine.memory import fix_malloc_thresholds
from engine.video import VideoError
from models.cameras import DEFAULT_FOV_DEG, Orbit
from models.checkpoint import Checkpoint
from models.encoder import CarEncoder
from models.renderer import BACKENDS, backend_unavailable, make_renderer
from models.resolution import Resolution
from viewer.backend_switch import BackendSwitch
from viewer.benchmark_run import BenchmarkRun
from viewer.fitted_latents import FittedLatentBank
from viewer.headless import direct_image
from viewer.path_export import ExportStatus, PathVideoExport
from viewer.path_recording import FPS_RANGE, FRAMES_RANGE, PathRecording, keyframe_label
from viewer.quality import QualityPolicy
from viewer.reconstruct import ReconstructError
from viewer.reconstruction import PoseNeededError, Reconstruction, viewer_encoder
from viewer.state import ViewerState
from viewer.worker import RenderWorker

# compare needs the volumetric baseline and two panes: the window only
WEB_MODES = (DisplayMode.RGB, DisplayMode.DEPTH, DisplayMode.NORMALS)
RESOLUTIONS = (64, 128, 256, 512, 1024)  # rows; each offered at the requested aspect
JPEG_QUALITY = 90
TICK_S = 0.02  # how often the serving loop looks for views that came to rest
SEEN_CAMERAS = 256
RECENT_FRAMES = 256
STATUS_PERIOD_S = 0.25  # status-line updates are messages to the page: a few a second is enough
VIDEO_NAME = "camera_path.mp4"  # the exported video's name, in the session's folder and the download
NO_POSE = ("no encoder to estimate the photo's pose: tick \"pose known\", set its azimuth and "
           "elevation, then press reconstruct")
LOOPBACK_WARNING = ("warning: --host {host} serves the viewer beyond this machine, and the page has no "
                    "authentication; prefer the default and an SSH port forward")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_port_free(host: str, port: int) -> None:
    """Raise `--port N: ...` when (host, port) cannot be bound; viser would quietly take N+1."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            probe.bind((host, port))
        except OSError as error:
            raise RuntimeError(f"--port {port}: cannot listen on {host}:{port} "
                               f"({error.strerror or error})") from None


def viser_cam2world(wxyz: np.ndarray, position: np.ndarray) -> torch.Tensor:
    """(4, 4) cam2world of a viser camera. Viser's camera frame is OpenCV's, as ours (x right, y down,
    z forward), and its wxyz is the R of P_world = R p_camera + position."""
    w, x, y, z = (float(v) for v in wxyz)
    rotation = torch.tensor([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ], dtype=torch.float64)
    pose = torch.eye(4, dtype=torch.float64)
    pose[:3, :3], pose[:3, 3] = rotation, torch.as_tensor(position, dtype=torch.float64)
    return pose.float()


def orbit_from_cam2world(cam2world: torch.Tensor, distance: float) -> Orbit:
    """The Orbit whose camera is `cam2world`, with its target `distance` ahead of the camera.

    Exact for a camera without roll, which viser's orbit controls keep with the up direction +z;
    a rolled camera keeps its position and view direction and loses the roll.
    """
    forward = cam2world[:3, 2].double()
    eye = cam2world[:3, 3].double()
    target = eye + forward * distance
    back = -forward  # from the target toward the camera
    elevation = math.degrees(math.asin(max(-1.0, min(1.0, float(back[2])))))
    azimuth = math.degrees(math.atan2(float(back[1]), float(back[0])))
    return Orbit(azimuth, elevation, distance, tuple(float(v) for v in target))


def fit_aspect(image: np.ndarray, aspect: float) -> np.ndarray:
    """`image` (vertical field of view DEFAULT_FOV_DEG, any aspect) widened, or cropped, to width/height
    = `aspect`: the page stretches its background image over the canvas, whose vertical field of
    view is the same. The sides outside the rendered view get the median color of the picture's
    side columns (the background, unless the object fills the view): a flat band, where repeating
    the edge pixels would smear whatever crosses the edge."""
    height, width = image.shape[:2]
    target = max(1, round(height * aspect))
    if target > width:
        sides = np.concatenate([image[:, 0], image[:, -1]])
        color = np.median(sides, axis=0).astype(image.dtype)
        out = np.empty((height, target, image.shape[2]), image.dtype)
        out[:] = color
        left = (target - width) // 2
        out[:, left:left + width] = image
        return out
    left = (width - target) // 2
    return np.ascontiguousarray(image[:, left:left + target])


def depth_checkbox(gui: viser.GuiApi, option: DepthOption, value: bool,
                   visible: bool) -> viser.GuiCheckboxHandle:
    """The page's checkbox for a depth frame's option. Viser's tooltip wraps the hint itself, so the
    line breaks meant for the window's tooltip become spaces."""
    return gui.add_checkbox(option.label, value, hint=" ".join(option.hint.splitlines()), visible=visible)


@dataclass
class SessionStats:
    """What one browser was sent, per frame: when, at which size, its render time, and for a frame of
    a new camera the seconds from that camera's message to the frame leaving the server (else None).
    Kept only for --stats: a server runs for days."""

    sent_s: list[float] = field(default_factory=list)
    sent_res: list[int] = field(default_factory=list)  # each frame's rows: its height
    camera_latency_s: list[float | None] = field(default_factory=list)
    render_ms: list[float] = field(default_factory=list)

    def record(self, sent_s: float, rows: int, render_ms: float, camera_latency_s: float | None):
        self.sent_s.append(sent_s)
        self.sent_res.append(rows)
        self.render_ms.append(render_ms)
        self.camera_latency_s.append(camera_latency_s)

    def summary(self) -> dict:
        span = self.sent_s[-1] - self.sent_s[0] if len(self.sent_s) > 1 else 0.0
        return {
            "frames": len(self.sent_s),
            "sent_s": self.sent_s,
            "sent_res": self.sent_res,
            "render_ms": self.render_ms,
            "camera_latency_s": self.camera_latency_s,
            "mean_fps": (len(self.sent_s) - 1) / span if span > 0 else None,
        }


class WebSession:
    """One browser: its camera, its controls, its render thread and the frames it is sent."""

    def __init__(self, client: viser.ClientHandle, config: WebConfig, ckpt: Checkpoint,
                 wake: threading.Event, encoder: CarEncoder | None, encoder_note: str):
        self.client, self.config, self.wake = client, config, wake
        # per browser: the code a reconstruction in this page publishes is this page's alone
        self.latents = FittedLatentBank.of_checkpoint(ckpt)
        self.lock = threading.Lock()  # viser's callback threads, the serving loop, the render thread
        names = ckpt.instance_names
        n = len(names)
        self.state = ViewerState(num_instances=n, instance=config.instance, mix_a=config.instance,
                                 mix_b=(config.instance + 1) % n, res=config.res, mode=config.mode,
                                 summed_depth=config.summed_depth)
        self.quality = QualityPolicy()
        self.dynamic_res = True
        self.stats = SessionStats() if config.stats is not None else None
        self.frames_sent = 0
        self.recent_sent_s: deque[float] = deque(maxlen=RECENT_FRAMES)  # for frames/s in the status
        self.status_text = ""
        render = config.render
        renderer = make_renderer(ckpt.model, render.device, render.precision, render.backend)
        self.worker = RenderWorker(FrameRenderer(renderer, self.latents), on_done=self.frame_done)
        self.switch = BackendSwitch(self.worker)
        self.benchmark = BenchmarkRun(ckpt, config.volumetric.path, config.render.device)
        self.benchmark_text = ""
        self.reconstruction = Reconstruction(ckpt, config.checkpoint, self.latents, encoder, encoder_note)
        self.files = tempfile.TemporaryDirectory(prefix="lfn-web-")  # uploaded photos, exported videos
        self.photo: Path | None = None  # the last uploaded photo
        self.fit_message = ""
        self.fit_text = ""
        self.path = PathRecording(ckpt)  # this page's keyframes and video export
        self.path_message = ""
        self.path_text = ""
        self.delivered: PathVideoExport | None = None  # the last export whose outcome was handled
        self.export_outcome = ""
        self.orbit: Orbit | None = None  # None until the browser's first camera message
        self.aspect = 1.0
        self.camera_seen_s: dict[Orbit, float] = {}  # when each not yet shown camera arrived
        self.view_key: FrameRequest | None = None  # the view last asked for, at full resolution
        self.submitted: FrameRequest | None = None
        self.shown_orbit: Orbit | None = None
        self.shown_res: Resolution | None = None
        self.shown_ms, self.latent_text = 0.0, ""
        self.problem: str | None = None
        self.status_s = 0.0
        self.build_gui(names)
        client.camera.on_update(self.camera_moved)
        self.camera_moved(client.camera)

    # ---- the page's panel ---------------------------------------------------------------------

    def build_gui(self, names: list[str]) -> None:
        gui, state, n = self.client.gui, self.state, len(names)
        with gui.add_folder("Latent code"):
            instance = gui.add_slider("instance", 0, n - 1, 1, state.instance)
            self.latent_label = gui.add_markdown(self.latents.label(state.latent_selection()))
            mix_a = gui.add_slider("blend A", 0, n - 1, 1, state.mix_a)
            mix_b = gui.add_slider("blend B", 0, n - 1, 1, state.mix_b)
            mix_t = gui.add_slider("blend t", 0.0, 1.0, 0.01, state.mix_t)
            random = gui.add_button("random latent")
        with gui.add_folder("View"):
            mode = gui.add_dropdown("display", [m.label for m in WEB_MODES],
                                    initial_value=state.mode.label)
            # shown while the display mode uses depth, as in the window's panel (set_mode)
            summed = depth_checkbox(gui, SUMMED_DEPTH, state.summed_depth, state.mode.uses_depth)
            stereo = depth_checkbox(gui, STEREO_DEPTH, state.stereo_depth, state.mode.uses_depth)
            res_options = state.res.at_heights(RESOLUTIONS)
            res = gui.add_dropdown("resolution", [str(r) for r in res_options],
                                   initial_value=str(state.res))
            dynamic = gui.add_checkbox("coarse while moving", self.dynamic_res,
                                       hint="render at a lower resolution while the camera moves")
            runnable = [b for b in BACKENDS if backend_unavailable(
                b, self.switch.renderer.device, self.switch.renderer.precision) is None]
            backend = gui.add_dropdown("backend", runnable, initial_value=self.config.render.backend)
        self.status = gui.add_markdown("connecting…")
        with gui.add_folder("Record path", expand_by_default=False):
            add_keyframe = gui.add_button("add keyframe", hint="this page's camera and the code it "
                                          "shows (an instance or a blend of two)")
            delete_last = gui.add_button("delete last keyframe")
            clear = gui.add_button("clear keyframes")
            self.keyframe_list = gui.add_markdown("")
            loop = gui.add_checkbox("loop back to the first", self.path.loop)
            frames = gui.add_number("frames", self.path.frames, min=FRAMES_RANGE[0], max=FRAMES_RANGE[1],
                                    step=1)
            fps = gui.add_number("fps", self.path.fps, min=FPS_RANGE[0], max=FPS_RANGE[1], step=1.0)
            self.video_line = gui.add_markdown("")
            self.export_button = gui.add_button(
                "export video", hint="an MP4 along the keyframes at this page's resolution and backend, "
                "offered for download when done")
            self.export_progress = gui.add_progress_bar(0.0, visible=False)
            self.cancel_export = gui.add_button("cancel export", visible=False)  # while one runs
            self.path_status = gui.add_markdown("")
        with gui.add_folder("Reconstruct from a photo", expand_by_default=False):
            pose_known = gui.add_checkbox("pose known", False, hint="the photo's camera, if you know "
                                          "it; else the encoder estimates it")
            photo_azimuth = gui.add_number("photo azimuth", 30.0, step=1.0, disabled=True)
            photo_elevation = gui.add_number("photo elevation", 20.0, min=-89.0, max=89.0, step=1.0,
                                             disabled=True)
            gui.add_markdown(self.encoder_markdown())
            upload = gui.add_upload_button("upload photo", mime_type="image/*",
                                           hint="a car on a white background; fitting starts at once, "
                                           "from the pose above if known, else the encoder's estimate")
            # the browser sends a file once: picking the same photo again changes nothing
            refit = gui.add_button("reconstruct", hint="fit the uploaded photo again, from the pose above "
                                   "if known, else the encoder's estimate")
            stop = gui.add_button("stop fitting")
            self.fit_status = gui.add_markdown("")
        with gui.add_folder("Benchmark", expand_by_default=False):
            run_benchmark = gui.add_button("run benchmark", hint="the LFN in this page's backend "
                                           "against the volumetric baseline, as --benchmark")
            self.benchmark_result = gui.add_markdown("")

        def edit(change):
            def handler(event) -> None:
                with self.lock:
                    change(event.target.value)
                self.wake.set()
            return handler

        def show_instance(value):
            state.instance, state.latent_source = int(value), InstanceLatent

        def blend(attribute):
            def set_value(value):
                setattr(state, attribute, value)
                state.latent_source = BlendLatent
            return set_value

        def set_mode(label):
            state.mode = next(m for m in WEB_MODES if m.label == label)
            summed.visible = stereo.visible = state.mode.uses_depth

        def set_dynamic(value):
            self.dynamic_res = bool(value)

        instance.on_update(edit(show_instance))
        mix_a.on_update(edit(blend("mix_a")))
        mix_b.on_update(edit(blend("mix_b")))
        mix_t.on_update(edit(blend("mix_t")))
        random.on_click(edit(lambda _: self.new_random_latent()))
        mode.on_update(edit(set_mode))
        summed.on_update(edit(lambda value: setattr(state, "summed_depth", bool(value))))
        stereo.on_update(edit(lambda value: setattr(state, "stereo_depth", bool(value))))
        res.on_update(edit(lambda value: setattr(state, "res", Resolution.parse(value))))
        dynamic.on_update(edit(set_dynamic))
        backend.on_update(edit(lambda value: self.switch.start(value, self.switch.renderer.precision)))
        add_keyframe.on_click(lambda _: self.add_keyframe())
        delete_last.on_click(edit(lambda _: self.path.delete_last()))
        clear.on_click(edit(lambda _: self.path.clear()))
        loop.on_update(edit(lambda value: setattr(self.path, "loop", bool(value))))
        frames.on_update(edit(lambda value: self.path.set_timing(round(value), self.path.fps)))
        fps.on_update(edit(lambda value: self.path.set_timing(self.path.frames, value)))
        self.export_button.on_click(lambda _: self.export_video())
        self.cancel_export.on_click(lambda _: self.path.export.cancel())

        def set_pose_known(event) -> None:
            photo_azimuth.disabled = photo_elevation.disabled = not event.target.value

        def photo_pose() -> Orbit | None:
            if not pose_known.value:
                return None
            return Orbit(float(photo_azimuth.value), float(photo_elevation.value))

        pose_known.on_update(set_pose_known)
        upload.on_upload(lambda event: self.photo_uploaded(event.target.value, photo_pose()))
        refit.on_click(lambda _: self.reconstruct(photo_pose()))
        stop.on_click(lambda _: self.stop_fitting())
        run_benchmark.on_click(lambda _: self.benchmark.start(
            state.instance, self.switch.renderer.precision, self.switch.renderer.backend))

    def encoder_markdown(self) -> str:
        rec = self.reconstruction
        if rec.encoder is None:
            return f"{rec.encoder_note}: the photo's pose is needed"
        return f"{rec.encoder_note}: it estimates the photo's pose unless it is known"

    def photo_uploaded(self, upload, pose: Orbit | None) -> None:
        path = Path(self.files.name) / (Path(upload.name).name or "photo")  # no folders from names
        path.write_bytes(upload.content)
        with self.lock:
            self.photo = path
        self.reconstruct(pose)

    def reconstruct(self, pose: Orbit | None) -> None:
        """Fit a new code to the uploaded photo seen from `pose` (None: the encoder estimates it),
        on viser's thread pool; the view shows the code converge."""
        with self.lock:
            try:
                if self.photo is None:
                    raise ReconstructError("upload a photo first")
                self.reconstruction.start(self.photo, pose, self.state)
                self.fit_message = ""
            except PoseNeededError:  # the window's message names its own widgets
                self.fit_message = NO_POSE
            except ReconstructError as error:
                self.fit_message = str(error)
        self.wake.set()

    # ---- the camera path ----------------------------------------------------------------------

    def add_keyframe(self) -> None:
        """This page's camera and code as the path's next keyframe (viser's thread pool)."""
        with self.lock:
            try:
                if self.orbit is None:
                    raise CameraPathError("no camera from this page yet")
                self.path.add(self.orbit, self.state.latent_selection())
                self.path_message = ""
            except CameraPathError as error:
                self.path_message = str(error)
        self.wake.set()

    def export_video(self) -> None:
        """Render the keyframes to an MP4 on the export thread (viewer/path_export.py, as the
        window's "Export video"); update_status reports its progress and sends the file."""
        renderer = self.switch.renderer
        with self.lock:
            try:
                self.path.start_export(Path(self.files.name) / VIDEO_NAME, self.state.res, renderer.device,
                                       renderer.precision, renderer.backend)
                self.path_message = ""
            except (CameraPathError, VideoError) as error:
                self.path_message = str(error)
        self.wake.set()

    def stop_fitting(self) -> None:
        if self.reconstruction.session is not None:
            self.reconstruction.session.pause()

    def new_random_latent(self) -> None:
        self.state.random_seed += 1
        self.state.latent_source = RandomLatent

    # ---- camera and requests ------------------------------------------------------------------

    def camera_moved(self, camera: viser.CameraHandle) -> None:
        """A camera message from the browser (viser's thread pool)."""
        cam2world = viser_cam2world(camera.wxyz, camera.position)
        distance = float(np.linalg.norm(camera.look_at - camera.position)) or 1.0
        with self.lock:
            self.orbit = orbit_from_cam2world(cam2world, distance)
            self.camera_seen_s.setdefault(self.orbit, time.perf_counter())
            if len(self.camera_seen_s) > SEEN_CAMERAS:  # frames failing to render: forget the oldest
                self.camera_seen_s.pop(next(iter(self.camera_seen_s)))
            self.aspect = camera.aspect if camera.image_height > 0 else 1.0
        if not math.isclose(camera.fov, math.radians(DEFAULT_FOV_DEG), rel_tol=1e-4):
            camera.fov = math.radians(DEFAULT_FOV_DEG)  # the renderer's field of view is fixed
        self.wake.set()

    def update(self, now: float) -> None:
        """Submit the request the view needs now, if it changed (the serving loop, camera events)."""
        with self.lock:
            if self.orbit is None:
                return
            state = self.state
            self.reconstruction.update(state, now)
            if state.camera_requested is not None:  # a photo's first code, seen as the photo sees it
                self.move_camera(state.camera_requested)
                state.camera_requested = None
            key = state.frame_request(self.orbit)
            if key != self.view_key:
                self.view_key = key
                self.quality.changed(now)
            rows = self.quality.resolution(state.res.height, now) if self.dynamic_res else state.res.height
            request = state.frame_request(self.orbit, rows)
            if request == self.submitted:
                return
            self.submitted = request
        self.worker.submit(request)

    def move_camera(self, orbit: Orbit) -> None:
        """Turn this browser's camera to `orbit`; the browser's camera message that follows brings
        the view there (camera_moved)."""
        camera = self.client.camera
        with self.client.atomic():
            camera.position = tuple(orbit.cam2world()[:3, 3].tolist())
            camera.look_at = orbit.target  # after position, which moves look_at along with it

    # ---- finished frames (the render thread) --------------------------------------------------

    def frame_done(self) -> None:
        done = self.worker.take()
        if isinstance(done, Exception):
            self.problem = f"render failed: {type(done).__name__}: {done}"
        elif done is not None:
            self.send(done)
        self.update_status(force=isinstance(done, Exception))

    def send(self, frame: Frame) -> None:
        request = frame.request
        with self.lock:
            self.quality.observe(request.res.height, frame.render_ms, self.state.res.height)
            aspect = self.aspect
        image = fit_aspect(direct_image(frame), aspect)
        self.client.scene.set_background_image(image, format="jpeg", jpeg_quality=JPEG_QUALITY)
        now = time.perf_counter()
        self.problem = None
        with self.lock:
            self.frames_sent += 1
            self.recent_sent_s.append(now)
            seen = self.camera_seen_s.get(request.orbit)
            if self.stats is not None:
                new_camera = request.orbit != self.shown_orbit and seen is not None
                self.stats.record(now, request.res.height, frame.render_ms,
                                  now - seen if new_camera else None)
            if seen is not None:  # cameras that arrived before this one were passed over for good
                self.camera_seen_s = {o: s for o, s in self.camera_seen_s.items() if s > seen}
            self.shown_orbit = request.orbit
            self.shown_res, self.shown_ms = request.res, frame.render_ms
            self.latent_text = self.latents.label(request.latent)

    def update_status(self, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self.status_s < STATUS_PERIOD_S:
            return
        self.status_s = now
        renderer = self.switch.renderer
        with self.lock:
            per_second = sum(1 for s in self.recent_sent_s if s > now - 1.0)
            lines = [f"**{renderer.backend}** {renderer.precision} on {renderer.device}"]
            if self.frames_sent:
                lines.append(f"{self.shown_res.label} in {self.shown_ms:.0f} ms, {per_second} frames/s, "
                             f"{self.frames_sent} frames sent")
            latent_text = self.latent_text
        switch = self.switch.status()
        if switch.switching:
            lines.append(f"switching to {switch.switching}…")
        for note in (switch.error, self.problem):
            if note:
                lines.append(note)
        text = "  \n".join(lines)
        if text != self.status_text:  # each assignment is a message to the page
            self.status.content = self.status_text = text
        if latent_text and latent_text != self.latent_label.content:
            self.latent_label.content = latent_text
        fit = self.fit_markdown()
        if fit != self.fit_text:
            self.fit_status.content = self.fit_text = fit
        benchmark = self.benchmark_markdown()
        if benchmark != self.benchmark_text:
            self.benchmark_result.content = self.benchmark_text = benchmark
        self.update_path_export()

    def update_path_export(self) -> None:
        """The keyframe list, the export's progress and outcome; a finished video goes to the page."""
        export = self.path.export
        status = export.status() if export is not None else None
        running = status is not None and status.running
        if self.export_progress.visible != running:  # one export at a time, as in the window
            self.export_progress.visible = self.cancel_export.visible = running
            self.export_button.disabled = running
        if running and (percent := 100.0 * status.done / status.total) != self.export_progress.value:
            self.export_progress.value = percent
        with self.lock:
            lines = [f"{len(self.path.keyframes)} keyframe(s)"]
            lines += [keyframe_label(number, keyframe, self.latents.names)
                      for number, keyframe in enumerate(self.path.keyframes, 1)]
            if self.orbit is not None and not np.allclose(self.orbit.target, Orbit().target, atol=1e-3):
                lines.append("the pan is not recorded: path files orbit the origin")
            rec, res = self.path, self.state.res
            video = f"{rec.frames} frames at {rec.fps:g} fps ({rec.frames / rec.fps:.1f} s), {res.label}"
            finished = status is not None and not running and export is not self.delivered
            if finished:  # decided under the lock: the serving loop and the render thread both get here
                self.delivered = export
            message = self.path_message
        if finished:
            self.export_outcome = self.deliver(export, status)
        keyframes = "  \n".join(lines)
        if keyframes != self.keyframe_list.content:
            self.keyframe_list.content = keyframes
        if video != self.video_line.content:
            self.video_line.content = video
        progress = f"rendering {status.done}/{status.total} frames" if running else self.export_outcome
        text = "  \n".join(line for line in (progress, message) if line)
        if text != self.path_text:
            self.path_status.content = self.path_text = text

    def deliver(self, export: PathVideoExport, status: ExportStatus) -> str:
        """Send a finished export's video to this browser, which offers it as a download (the
        server's copy goes); what happened, for the page."""
        settings = export.settings
        if status.failed or not settings.out.is_file():  # failed, or cancelled (which leaves no file)
            return status.outcome
        self.client.send_file_download(VIDEO_NAME, settings.out.read_bytes())
        settings.out.unlink()
        res = settings.res
        return (f"{status.done} frames, {res.width}x{res.height}, {settings.fps:g} fps: {VIDEO_NAME} "
                "sent to this page (its notice offers the download)")

    def fit_markdown(self) -> str:
        """The fit's progress, the photo's camera (given, or estimated and then refined) and the
        nearest training cars."""
        session = self.reconstruction.session
        if session is None:
            return self.fit_message
        lines = []
        if session.latest is not None:
            step, state = session.latest, "fitting" if session.running else session.phase.value
            lines.append(f"{state}: step {step.step}, PSNR {step.psnr:.1f} dB, "
                         f"{session.steps_per_second:.1f} steps/s")
        elif session.error is None:
            lines.append(f"{session.phase.value}…")
        if session.modulation_target:
            past = (f", the photo {session.modulation_psnr:.1f} dB"
                    if session.modulation_psnr is not None else "")
            lines.append(f"past the latent: step {session.modulation_steps} of "
                         f"{session.modulation_target}{past}")
        if (pose := session.pose) is not None:
            estimate = session.start.estimate
            lines.append(f"pose az {pose.azimuth:.1f}°, el {pose.elevation:.1f}°"
                         + ("" if estimate else " (given)"))
            if estimate is not None:
                guess = estimate.orbit
                lines.append(f"estimated az {guess.azimuth:.1f}°, el {guess.elevation:.1f}°: "
                             f"azimuth p {estimate.mass:.2f} (chance {estimate.uniform_mass:.2f}), "
                             f"front/back {estimate.side_probability:.2f}")
        nearest = self.reconstruction.nearest
        if nearest:
            lines.append("nearest: " + ", ".join(self.latents.names[i] for i, _ in nearest[:3]))
        return "  \n".join(lines + [note for note in (session.error, self.fit_message) if note])

    def benchmark_markdown(self) -> str:
        """The benchmark's progress line, then its FPS per method and resolution as a table."""
        self.benchmark.poll()  # the worker's latest progress and result into the panel's copies
        text = self.benchmark.status
        if self.benchmark.result is not None and not self.benchmark.running:
            methods, resolutions, fps = fps_grid(self.benchmark.result)
            rows = ["| FPS | " + " | ".join(r.label for r in resolutions) + " |",
                    "|---" * (len(resolutions) + 1) + "|"]
            rows += [f"| {m} | " + " | ".join(fps_label(f) for f in row) + " |"
                     for m, row in zip(methods, fps, strict=True)]
            text += "\n\n" + "\n".join(rows)
        return text

    def close(self) -> None:
        self.reconstruction.close()
        self.path.close()  # a running export stops and removes its partial video
        self.benchmark.close()  # stopped and joined before the renderers it times go away
        self.worker.close()
        self.files.cleanup()


class WebViewer:
    """The server: a viser page, a WebSession per connected browser, the serving loop."""

    def __init__(self, config: WebConfig, ckpt: Checkpoint):
        self.config, self.ckpt = config, ckpt
        # loaded once, before the server: a named encoder that cannot load ends the run cleanly
        encoder, self.encoder_note = viewer_encoder(config.encoder, config.checkpoint, ckpt.model)
        self.encoder = encoder.to(config.render.device) if encoder is not None else None
        self.sessions: dict[int, WebSession] = {}
        self.finished: list[SessionStats] = []
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.stop = threading.Event()
        check_port_free(config.host, config.port)
        with contextlib.redirect_stdout(io.StringIO()):  # viser's banner; run_web prints the address
            self.server = viser.ViserServer(host=config.host, port=config.port, verbose=False)
        if self.server.get_port() != config.port:  # taken between the check and the bind
            self.server.stop()
            raise RuntimeError(f"--port {config.port}: cannot listen on {config.host}:{config.port}")
        self.server.gui.configure_theme(show_share_button=False, control_width="medium")
        self.server.scene.set_up_direction("+z")  # models/cameras.py: world z up
        home = config.home
        initial = self.server.initial_camera
        initial.position = tuple(home.cam2world()[:3, 3].tolist())
        initial.look_at = home.target
        initial.up = (0.0, 0.0, 1.0)
        initial.fov = math.radians(DEFAULT_FOV_DEG)
        self.server.on_client_connect(self.connect)
        self.server.on_client_disconnect(self.disconnect)

    def connect(self, client: viser.ClientHandle) -> None:
        session = WebSession(client, self.config, self.ckpt, self.wake, self.encoder, self.encoder_note)
        with self.lock:
            self.sessions[client.client_id] = session

    def disconnect(self, client: viser.ClientHandle) -> None:
        with self.lock:
            session = self.sessions.pop(client.client_id, None)
            if session is not None and session.stats is not None:
                self.finished.append(session.stats)  # now: the server may stop mid-frame
        if session is not None:
            session.close()

    def run(self) -> None:
        started = time.perf_counter()
        while not self.stop.is_set():
            now = time.perf_counter()
            if self.config.exit_after_s is not None and now - started >= self.config.exit_after_s:
                return
            with self.lock:
                sessions = list(self.sessions.values())
            for session in sessions:
                session.update(now)
                session.update_status()
            self.wake.wait(TICK_S)
            self.wake.clear()

    def close(self) -> None:
        with self.lock:
            sessions, self.sessions = list(self.sessions.values()), {}
        for session in sessions:
            session.close()
            if session.stats is not None:
                self.finished.append(session.stats)
        self.server.stop()

    def write_stats(self, path: Path) -> None:
        renderer_note = {"device": str(self.config.render.device), "precision": self.config.render.precision,
                         "backend": self.config.render.backend}
        sessions = [s.summary() for s in self.finished]
        path.write_text(json.dumps({**renderer_note, "sessions": sessions}, indent=1))


def run_web(config: WebConfig, ckpt: Checkpoint) -> int:
    fix_malloc_thresholds()  # jobs' threads give freed memory back: no steps at rest after them
    if not is_loopback(config.host):
        print(LOOPBACK_WARNING.format(host=config.host), file=sys.stderr, flush=True)
    viewer = WebViewer(config, ckpt)
    previous = signal.signal(signal.SIGTERM, lambda *_: (viewer.stop.set(), viewer.wake.set()))
    print(f"serving the viewer at http://{config.host}:{config.port}", flush=True)
    try:
        viewer.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
        viewer.close()
    if config.stats is not None:
        viewer.write_stats(config.stats)
    return 0
