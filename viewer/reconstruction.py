"""The viewer's reconstruction from one photo, without widgets or GL: what the user gives (a photo
dropped on the window, typed or picked; its pose, when known; the inference mode), one FitSession
at a time, its codes published to the view, and saving the result. viewer/reconstruct_panel.py
draws it; the window's drop callback hands it files.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from engine.cli import UsageError
from engine.frame import FrameRequest
from engine.latents import FittedLatent
from models.cameras import Orbit
from models.checkpoint import Checkpoint, CheckpointError
from models.encoder import CarEncoder, encoder_path, find_encoder
from models.inference import (
    InferenceError,
    InferenceMode,
    check_inputs,
    default_mode,
    resolve_modulation_steps,
    resolve_steps,
)
from models.modulation_fit import MODULATION_STEPS
from viewer.fitted_latents import FittedLatentBank
from viewer.reconstruct import (
    FitSession,
    Phase,
    ReconstructError,
    fit_resolution,
    load_input,
    read_pose,
    save_fitted,
    user_path,
)
from viewer.state import ViewerState

# About five pictures a second: enough to watch the fit converge, while its preview frames take a
# small share of the CPU from the fit.
PUBLISH_INTERVAL_S = 0.2
NEAREST_K = 5
NO_POSE = ("no encoder to estimate the photo's pose: tick \"pose known\" and set its azimuth and "
           "elevation (or put a car.json beside the photo), then Reconstruct")


@dataclass
class ShownCode:
    """A frame of a photo's fitted code, once it was on screen."""

    step: int  # the auto-decoding step of the code requested (0: the mode's start)
    rows: int  # the frame's height
    render_ms: float
    on_screen_ms: float  # after the photo arrived, when the buffer swap that showed it returned


@dataclass
class PhotoTiming:
    """When a photo's car reached the screen, in ms after the photo arrived (dropped, Enter, or
    picked): the --stats record that bench/photo_first_frame.py reads."""

    photo: str
    mode: str
    arrived_s: float  # time.perf_counter(), CLOCK_MONOTONIC on Linux: comparable across processes
    loaded_ms: float  # the photo read and checked (its white background)
    start_ms: float | None = None  # the fit thread had the mode's start (encoder pass, pose pick)
    published_ms: float | None = None  # the UI thread put the start's code in the view
    frames: list[ShownCode] = field(default_factory=list)


class PoseNeededError(ReconstructError):
    """A photo without a pose and no encoder to estimate it: each page says where the pose goes."""


def viewer_encoder(named: Path | None, checkpoint: Path, model) -> tuple[CarEncoder | None, str]:
    """The encoder for the viewer's photos and a line saying which one, or why there is none.

    One the user named (--encoder) must load; a broken one beside the checkpoint only turns the
    encoder off, so a stale file never keeps the viewer from opening.
    """
    try:
        encoder = find_encoder(checkpoint, model, named)
    except CheckpointError as error:
        if named is not None:
            raise UsageError(f"--encoder {error}") from None
        return None, f"encoder off: {error}"
    if encoder is None:
        return None, f"no encoder (none at {encoder_path(checkpoint)}; --encoder FILE names one)"
    return encoder, f"encoder: {Path(named or encoder_path(checkpoint)).name}"


def mode_unavailable(mode: InferenceMode, encoder: CarEncoder | None) -> str | None:
    """Why `mode` cannot run here, or None when it can."""
    if mode is not InferenceMode.AUTODECODE and encoder is None:
        return "needs an encoder (--encoder FILE, or CKPT.encoder.pt beside the checkpoint)"
    return None


class Reconstruction:
    """One single-image reconstruction at a time, shown in the viewer as it converges.

    The panel edits `path`, `pose_known`, `pose` and `mode` and reads `message`; `steps`, when
    set, replaces each mode's default run of auto-decoding steps. A view that calls on_screen()
    for its new frames passes `wake`, which wakes its loop: each session then wakes it when its
    start is known and holds its fit until the start is on screen (FitSession).
    """

    def __init__(self, ckpt: Checkpoint, ckpt_path: Path, bank: FittedLatentBank,
                 encoder: CarEncoder | None = None, encoder_note: str = "",
                 options: dict | None = None, steps: int | None = None,
                 wake: Callable[[], None] | None = None):
        self.ckpt, self.ckpt_path, self.bank = ckpt, ckpt_path, bank
        self.encoder, self.encoder_note = encoder, encoder_note
        self.options, self.steps, self.wake = options, steps, wake
        self.res = fit_resolution(ckpt)
        self.device = next(ckpt.model.parameters()).device  # where the fit runs: its default steps
        self.mode = default_mode(encoder)
        self.path = ""
        self.pose_known = False
        self.pose = Orbit()  # the photo's camera, used when pose_known
        self.pose_note = ""
        self.message: str | None = None  # one line under the controls: an error, or what was saved
        self.is_error = False
        self.session: FitSession | None = None
        self.photo: np.ndarray | None = None
        self.name = ""
        self.nearest: list[tuple[int, float]] = []
        self._published_step = -1
        self._published_at = float("-inf")
        self._published_offset, self._published_offset_step = False, 0
        self.timings: list[PhotoTiming] = []  # one per started photo, for --stats
        self._serial_steps: dict[int, int] = {}  # the running photo's published codes: serial → step

    # ---- what the user gives ----------------------------------------------------------------------

    def say(self, message: str | None, is_error: bool = False) -> None:
        self.message, self.is_error = message, is_error

    def set_path(self, text: str) -> None:
        """A new photo path: its pose file, if any, gives the pose; else the encoder estimates it."""
        self.path = text
        self.say(None)
        try:
            pose = read_pose(user_path(text))
        except ReconstructError as error:
            self.pose_known, self.pose_note = False, "pose file unusable"
            self.say(str(error), is_error=True)
            return
        self.pose_known = pose is not None
        self.pose = pose or self.pose
        self.pose_note = "pose from its .json file" if pose else ""

    def open_dropped(self, paths: list[str], state: ViewerState) -> None:
        """Files dropped on the window: reconstruct the first at once."""
        if not paths:
            return
        arrived_s = time.perf_counter()
        self.set_path(paths[0])
        if self.is_error:
            return
        self.reconstruct(state, arrived_s)
        if len(paths) > 1 and not self.is_error:
            self.say(f"{len(paths)} files dropped: reconstructing the first, {Path(paths[0]).name}")

    def reconstruct(self, state: ViewerState, arrived_s: float | None = None) -> None:
        """Start on the photo at `path`, with the chosen mode and pose; problems become `message`.
        `arrived_s` (perf_counter) is when the user gave it, if before this call."""
        try:
            if not self.path.strip():
                raise ReconstructError("drop a photo on the window, type its path, or pick a PNG")
            self.start(user_path(self.path), self.pose if self.pose_known else None, state,
                       arrived_s=arrived_s)
        except ReconstructError as error:
            self.say(str(error), is_error=True)
        else:
            self.say(None)

    # ---- the session ------------------------------------------------------------------------------

    def start(self, image: Path, pose: Orbit | None, state: ViewerState,
              mode: InferenceMode | None = None, arrived_s: float | None = None) -> None:
        """Reconstruct the photo at `image` (seen from `pose`, or None: estimated) in `mode`
        (None: the chosen one); its first code appears in the view once update() sees it."""
        arrived_s = time.perf_counter() if arrived_s is None else arrived_s
        mode = mode or self.mode
        photo = load_input(image, self.res)  # a bad photo raises before the running fit is touched
        loaded_ms = 1000.0 * (time.perf_counter() - arrived_s)
        try:
            check_inputs(mode, self.encoder, pose)
        except InferenceError:
            if pose is None and self.encoder is None:
                raise PoseNeededError(NO_POSE) from None
            raise ReconstructError(f"{mode.value}: {mode_unavailable(mode, self.encoder)}") from None
        self.close()
        self.session = FitSession(self.ckpt.model, photo, mode, pose, self.encoder, self.options,
                                  self.wake)
        self.photo, self.name, self.nearest = photo, image.stem, []
        self._published_step, self._published_at = -1, float("-inf")
        self._published_offset, self._published_offset_step = False, 0
        self.timings.append(PhotoTiming(image.name, mode.value, arrived_s, loaded_ms))
        self._serial_steps = {}
        if steps := resolve_steps(mode, self.steps, self.device):
            self.session.resume(steps)

    def resume(self) -> None:
        """Continue: another run of the session's mode's steps."""
        if self.session is not None:
            self.session.resume(resolve_steps(self.session.mode, self.steps, self.device))

    def past_latent(self) -> None:
        """Refine the newest latent's modulations (MODULATION_STEPS steps); the session ends."""
        if self.session is not None:
            self.session.past_latent(MODULATION_STEPS)

    def update(self, state: ViewerState, now: float) -> None:
        """Show the session's newest code: the start at once, from the photo's camera; later steps
        at once when paused, at most every PUBLISH_INTERVAL_S while running; past the latent, its
        offset so far as often, and the final one once the modulation steps are done. A mode whose
        fit goes past the latent by default (models/inference.py) does so when its latent steps
        are done."""
        session = self.session
        if session is None or session.start is None:
            return
        if session.modulation_offset is not None and not self._published_offset:
            self._publish_offset(session, session.modulation_offset, state, "past the latent")
            self._published_offset = True
            return
        if session.phase is Phase.PAST_LATENT:
            self._show_offset_so_far(session, state, now)
            return
        self._show_newest_latent(session, state, now)
        if session.phase is Phase.DONE and session.can_go_past_latent:  # after its last latent
            session.past_latent(resolve_modulation_steps(session.mode, None))

    def _show_newest_latent(self, session: FitSession, state: ViewerState, now: float) -> None:
        # The start is always shown first (the encoder's guess, however soon steps follow it).
        first = self._published_step < 0
        step, latent = (0, session.start.latent) if first else session.newest()
        if step == self._published_step:
            return
        if step > 0 and session.running and now - self._published_at < PUBLISH_INTERVAL_S:
            return
        self.bank.publish(latent)
        if first:  # show the photo's first code as the photo shows the car
            state.latent_source, state.fit_t = FittedLatent, 0.0
            state.fit_target = self.bank.nearest(latent, 1)[0][0]
            state.camera_requested = session.start.orbit
        self.nearest = self.bank.nearest(latent, NEAREST_K)
        self._published_step, self._published_at = step, now
        state.fitted_serial += 1
        state.fitted_label = f"{self.name} fit step {step}"
        self._serial_steps[state.fitted_serial] = step
        if first:
            timing = self.timings[-1]
            timing.start_ms = 1000.0 * (session.start_known_s - timing.arrived_s)
            timing.published_ms = 1000.0 * (time.perf_counter() - timing.arrived_s)

    def _show_offset_so_far(self, session: FitSession, state: ViewerState, now: float) -> None:
        so_far = session.newest_offset()
        if so_far is None or so_far[0] == self._published_offset_step:
            return
        if now - self._published_at < PUBLISH_INTERVAL_S:
            return
        step, offset = so_far
        self._publish_offset(session, offset, state, f"past the latent, step {step}")
        self._published_offset_step, self._published_at = step, now

    def _publish_offset(self, session: FitSession, offset: torch.Tensor, state: ViewerState,
                        label: str) -> None:
        self.bank.publish(session.latest.latent, offset)
        self._published_step = session.steps  # its latent is shown with the offset, not alone
        state.fitted_serial += 1
        state.fitted_label = f"{self.name} {label}"

    def on_screen(self, request: FrameRequest, render_ms: float, now: float) -> None:
        """A new frame is on screen (its buffer swap returned at perf_counter `now`): timed when it
        shows a code of the running photo."""
        latent = request.latent
        if not isinstance(latent, FittedLatent) or latent.serial not in self._serial_steps:
            return
        self.session.start_on_screen()
        timing = self.timings[-1]
        timing.frames.append(ShownCode(self._serial_steps[latent.serial], request.res.height,
                                       round(render_ms, 2),
                                       round(1000.0 * (now - timing.arrived_s), 2)))

    def save(self, path: Path) -> str:
        """Append the newest fitted code to a copy of the checkpoint at `path`; what was written."""
        session = self.session
        newest = session.newest() if session else None
        if newest is None:
            raise ReconstructError("nothing fitted yet")
        step, latent = newest
        pose = session.pose
        offset = session.modulation_offset
        meta = {"fitted_from": self.name, "fit_mode": session.mode.value, "fit_steps": step,
                "fit_modulation_steps": session.modulation_target if offset is not None else 0,
                "fit_pose": [pose.azimuth, pose.elevation, pose.radius],
                "fit_pose_estimated": session.start.estimate is not None}
        if session.latest is not None:
            meta["fit_psnr"] = round(session.latest.psnr, 3)
        index = save_fitted(self.ckpt, latent, self.name, meta, path, self.ckpt_path, offset)
        past = " and past the latent" if offset is not None else ""
        return f"wrote {path}: instance {index} ({self.name}, step {step}{past})"

    @property
    def running(self) -> bool:
        return self.session is not None and self.session.running

    def stats(self) -> dict:
        """The --stats fields of the fit."""
        session = self.session
        return {
            "fit_steps": session.steps if session else 0,
            "fit_steps_per_s": round(session.steps_per_second, 2) if session else None,
            "fit_psnr": round(session.latest.psnr, 3) if session and session.latest else None,
            "photos": [asdict(timing) for timing in self.timings],
        }

    def close(self) -> None:
        """End the fit's thread; the session stays readable (stats are written after close)."""
        if self.session is not None:
            self.session.close()
