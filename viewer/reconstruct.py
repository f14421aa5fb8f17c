"""Reconstruct from one image inside the viewer: the photo and its pose, an inference session that
runs beside the UI, and saving the fitted code as a new instance of a checkpoint copy. No GL here.

The session runs models/inference.py on its own thread: first the mode's start (the encoder's
latent and pose, or the mean latent), at once, then auto-decoding steps in runs the UI asks for.
torch releases the GIL in its kernels, so the UI keeps its frame rate while a step runs (a step on
the UI thread would cost the UI 50-300 ms per frame on a 2-core CPU). Pausing leaves the step
generator suspended between steps, so Continue resumes with the same latent and optimizer state.
Going past the latent (models/modulation_fit.py) ends the session: its modulation steps refine
the newest latent's FiLM modulations, and the car is then that latent and its offset.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from engine.memory import trim_heap
from engine.photo import DEFAULT_FIT_RES, ImageError, load_photo
from models.cameras import DEFAULT_RADIUS, Orbit, intrinsics
from models.checkpoint import Checkpoint
from models.encoder import CarEncoder
from models.fitting import MIRROR_WEIGHT, FitStep
from models.inference import (
    InferenceMode,
    InferenceStart,
    refinement_steps,
    start_inference,
    view_psnr,
)
from models.instances import with_instance
from models.modulation_fit import refine_modulations
from viewer.worker import join_within

# How long a session's steps wait for its start to be on screen, at most: a window that shows no
# frame (minimized) never stalls the fit for longer.
START_HOLD_S = 0.5


class ReconstructError(Exception):
    """Something the user gave cannot be used; the message is one line for the panel."""


def sidecar_paths(image: Path) -> tuple[Path, Path]:
    """Where a photo's pose may be written: car.json, else car.png.json."""
    return image.with_suffix(".json"), image.with_name(image.name + ".json")


def read_pose(image: Path) -> Orbit | None:
    """The photo's camera from its JSON sidecar {"azimuth", "elevation"[, "radius"]}, or None
    without one; a sidecar that is not such a pose raises ReconstructError."""
    try:
        if not image.is_file():  # also keeps "/" and "." (no file name to derive from) out
            return None
        path = next((p for p in sidecar_paths(image) if p.is_file()), None)
    except OSError:  # a name the file system refuses (too long, …): loading the photo says so
        return None
    if path is None:
        return None
    try:
        data = json.loads(path.read_text())
        pose = Orbit(float(data["azimuth"]), float(data["elevation"]),
                     float(data.get("radius", DEFAULT_RADIUS)))
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise ReconstructError(f"{path.name}: not an azimuth/elevation/radius pose "
                               f"({type(error).__name__}: {error})") from None
    if not pose.radius > 0:
        raise ReconstructError(f"{path.name}: radius must be positive")
    return pose


def user_path(text: str) -> Path:
    """A typed path, with ~ expanded where it can be."""
    try:
        return Path(text.strip()).expanduser()
    except RuntimeError:  # ~name of an unknown user: keep it literal
        return Path(text.strip())


def load_input(image: Path, res: int) -> np.ndarray:
    """(res, res, 3) uint8 on white, as the CLI's --fit-image reads it; ReconstructError if unusable."""
    try:
        return load_photo(image, res)
    except ImageError as error:
        raise ReconstructError(str(error)) from None
    except Exception as error:  # e.g. PIL's decompression-bomb guard: a bad file never ends the viewer
        raise ReconstructError(f"{image}: cannot be read ({type(error).__name__})") from None


def fit_resolution(ckpt: Checkpoint) -> int:
    """The resolution the network was trained at: photos are fitted at it."""
    return int(ckpt.meta.get("resolution", DEFAULT_FIT_RES))


class _Closed(Exception):
    """The session was closed during its modulation steps: they stop there."""


class _Stopped(Exception):
    """Stop (pause()) during the modulation steps: the offset so far is the car's."""


class Phase(enum.Enum):
    """Where a session is, as the panel shows it."""

    STARTING = "estimating"  # the mode's start (encoder pass, front/back pick) is being computed
    REFINING = "refining"
    PAST_LATENT = "past the latent"  # modulation steps on the newest latent: the session's last
    PAUSED = "stopped"  # by the user, before its run of steps ended
    DONE = "done"  # its run of steps ended (Continue runs more), or `encoder` mode has its code
    FAILED = "failed"


class FitSession:
    """One inference on one photo, on a background thread: its start at once, then auto-decoding
    steps (none in `encoder` mode) in runs of resume(steps).

    `start` is the mode's starting point, `latest` the newest FitStep; `history()` gives the loss
    and PSNR of every step so far.

    With `wake` (a window's loop), the session calls it once the start is known and then holds its
    renders and steps until `start_on_screen()`, at most START_HOLD_S: the start's first frame gets
    the cores to itself, where a 2-core CPU would otherwise split them with the fit's first renders.
    """

    def __init__(self, model, photo: np.ndarray, mode: InferenceMode, pose: Orbit | None,
                 encoder: CarEncoder | None = None, options: dict | None = None,
                 wake: Callable[[], None] | None = None):
        self.mode = mode
        self.start: InferenceStart | None = None
        self.start_known_s = 0.0  # perf_counter when `start` was set
        self.start_psnr: float | None = None  # of the whole photo, dB, soon after `start`
        self.latest: FitStep | None = None
        self.error: str | None = None
        self.seconds = 0.0  # time spent in steps, for steps per second
        self._losses: list[float] = []
        self._psnrs: list[float] = []
        self._lock = threading.Lock()
        self._run = threading.Event()
        self._wake = wake
        self._start_shown = threading.Event()
        self._closed = False
        self._ended = False  # the thread has returned: nothing more will run
        self._pause_at = 0
        # past the latent: the steps asked for, taken, and the offset they reached
        self.modulation_target = 0
        self.modulation_steps = 0
        self.modulation_offset: torch.Tensor | None = None
        self.modulation_so_far: torch.Tensor | None = None  # the offset at step modulation_steps
        self.modulation_psnr: float | None = None  # of the whole photo, once they are done
        self._options = options or {}
        photo = torch.tensor(photo)  # a copy: the photo may be a read-only PIL buffer
        self._thread = threading.Thread(target=self._loop, args=(model, photo, pose, encoder,
                                                                 self._options),
                                        name="lfn-fit", daemon=True)
        self._thread.start()

    @property
    def steps(self) -> int:
        return self.latest.step if self.latest else 0

    @property
    def target_steps(self) -> int:
        """Where the current run of steps ends."""
        return self._pause_at

    @property
    def running(self) -> bool:
        return self._run.is_set() and not self._closed and not self._ended

    @property
    def phase(self) -> Phase:
        if self.error is not None:
            return Phase.FAILED
        if self.start is None:
            return Phase.STARTING
        if self.modulation_target and self.modulation_offset is None and not self._ended:
            return Phase.PAST_LATENT
        if self.running:
            return Phase.REFINING
        return Phase.DONE if self._ended or self.steps >= self._pause_at else Phase.PAUSED

    @property
    def pose(self) -> Orbit | None:
        """The photo's camera: refined by the steps when it was estimated, else the start's."""
        if self.latest is not None and self.latest.orbit is not None:
            return self.latest.orbit
        return self.start.orbit if self.start else None

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else 0.0

    def newest(self) -> tuple[int, torch.Tensor] | None:
        """The newest code and its step (0: the start), or None before the start is known."""
        with self._lock:
            if self.latest is not None:
                return self.latest.step, self.latest.latent
            return (0, self.start.latent) if self.start is not None else None

    def newest_offset(self) -> tuple[int, torch.Tensor] | None:
        """Past the latent: the modulation step reached and its offset, or None before the first."""
        with self._lock:
            if self.modulation_so_far is None:
                return None
            return self.modulation_steps, self.modulation_so_far

    def resume(self, steps: int) -> None:
        """Run `steps` more steps (or until pause())."""
        with self._lock:  # with the thread's own pause check, so neither undoes the other
            if self.error is None and not self._closed and not self._ended and not self.modulation_target:
                self._pause_at = self.steps + steps
                self._run.set()

    @property
    def can_go_past_latent(self) -> bool:
        """Whether past_latent() would start: latent steps were taken and none are running."""
        return (self.mode is not InferenceMode.ENCODER and self.steps > 0 and not self.running
                and not self.modulation_target and self.error is None and not self._ended)

    def past_latent(self, steps: int) -> None:
        """After the latent steps, `steps` modulation steps on the newest latent; the session
        ends with them (no more latent steps: the offset belongs to that latent)."""
        with self._lock:
            if self.can_go_past_latent and steps > 0:
                self.modulation_target = steps
                self._run.set()

    def start_on_screen(self) -> None:
        """The window shows the start's code: the held renders and steps may go."""
        self._start_shown.set()

    def pause(self) -> None:
        """Stop after the step in flight; the latent and optimizer state stay for resume(). During
        the modulation steps they end there: the offset so far is the car's."""
        self._run.clear()

    def history(self) -> tuple[np.ndarray, np.ndarray]:
        """Loss and PSNR (on the step's random rays) of every step so far."""
        with self._lock:
            return np.array(self._losses, np.float64), np.array(self._psnrs, np.float64)

    def close(self) -> bool:
        """Stop after the step in flight; whether the thread ended within CLOSE_TIMEOUT_S."""
        with self._lock:
            self._closed = True
            self._run.set()  # wake the thread so it can see _closed and end
            self._start_shown.set()
        return join_within(self._thread)

    def _go_past_latent(self, model, photo: torch.Tensor) -> None:
        """The modulation steps of past_latent(), on this thread."""
        latent, orbit = self.latest.latent, self.pose
        res = photo.shape[0]

        def count(step: FitStep) -> None:
            with self._lock:
                self.modulation_steps, self.modulation_so_far = step.step, step.latent
            if self._closed:
                raise _Closed
            if not self._run.is_set():
                raise _Stopped

        try:
            offset = refine_modulations(
                model, photo[None], orbit.cam2world()[None], intrinsics(res, res), latent,
                steps=self.modulation_target, on_step=count,
                mirror_weight=self._options.get("mirror_weight", MIRROR_WEIGHT))
        except _Closed:
            return
        except _Stopped:
            offset = self.modulation_so_far
        self.modulation_psnr = view_psnr(model, latent, orbit, photo, offset)
        with self._lock:
            self.modulation_offset = offset

    def _loop(self, model, photo: torch.Tensor, pose: Orbit | None, encoder: CarEncoder | None,
              options: dict) -> None:
        steps = None
        try:
            start = start_inference(model, photo, self.mode, encoder, pose)
            with self._lock:
                self.start_known_s = time.perf_counter()  # first: the UI reads it once `start` is set
                self.start = start
            if self._wake is not None:
                self._wake()
                self._start_shown.wait(START_HOLD_S)
            # after `start` is out: the first picture needs only the code, not this render
            self.start_psnr = view_psnr(model, start.latent, start.orbit, photo)
            if self.mode is InferenceMode.ENCODER:
                return
            steps = refinement_steps(model, photo, start, **options)
            while True:
                if not self._run.is_set():
                    trim_heap()  # paused: what its steps freed goes back to the OS while it waits
                self._run.wait()
                if self._closed:
                    return
                if self.modulation_target:
                    steps.close()  # gives the network back before the modulation fit takes it
                    steps = None
                    self._go_past_latent(model, photo)
                    return
                began = time.perf_counter()
                step = next(steps)
                with self._lock:
                    self.seconds += time.perf_counter() - began
                    self._losses.append(step.loss)
                    self._psnrs.append(step.psnr)
                    self.latest = step
                    if step.step >= self._pause_at and not self._closed:
                        self._run.clear()
        except Exception as error:  # shown in the panel; the viewer keeps running
            with self._lock:  # with resume()'s check, so a failed fit is never resumed
                self.error = f"reconstruction failed: {type(error).__name__}: {error}"
        finally:
            with self._lock:
                self._ended = True
            if steps is not None:
                steps.close()  # gives the network its requires_grad back


def default_save_path(ckpt_path: Path) -> Path:
    """`<ckpt stem>_fitted.pt` beside the checkpoint."""
    return ckpt_path.with_name(f"{ckpt_path.stem}_fitted.pt")


def save_fitted(ckpt: Checkpoint, latent: torch.Tensor, name: str, meta: dict, path: Path,
                source: Path | None = None, modulation_offset: torch.Tensor | None = None) -> int:
    """Write a copy of `ckpt` with `latent` (and the offset of a car refined past it) appended as
    instance `name`; returns its index. `source`, the file `ckpt` came from, is never overwritten."""
    if path.suffix.lower() != ".pt":
        raise ReconstructError(f"{path}: expected a .pt file")
    if source is not None and path.resolve() == source.resolve():
        raise ReconstructError(f"{path}: that is the open checkpoint; save the copy elsewhere")
    if not path.parent.is_dir():
        raise ReconstructError(f"{path}: folder {path.parent} does not exist")
    # with_instance concatenates on the CPU; a copy leaves the viewer's (maybe CUDA) model alone
    on_cpu = dataclasses.replace(ckpt, model=copy.deepcopy(ckpt.model).cpu())
    fitted = with_instance(on_cpu, latent, name, meta, modulation_offset)
    try:
        fitted.save(path)
    except OSError as error:
        raise ReconstructError(f"{path}: {error.strerror or error}") from None
    return len(fitted.instance_names) - 1
