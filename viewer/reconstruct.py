"""Reconstruct from one image inside the viewer: the photo and its pose, a fitting session that runs
beside the UI, and saving the fitted code as a new instance of a checkpoint copy. No GL here.

The session drives models.fitting.fit_latent_steps on its own thread: torch releases the GIL in its
kernels, so the UI keeps its frame rate while a step runs (a step on the UI thread would cost the
UI 50-300 ms per frame on a 2-core CPU). Pausing leaves the generator suspended between steps, so
Continue resumes with the same latent and optimizer state.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from pathlib import Path

import numpy as np
import torch

from engine.photo import DEFAULT_FIT_RES, ImageError, load_photo
from models.cameras import DEFAULT_RADIUS, Orbit, intrinsics
from models.checkpoint import Checkpoint, save_checkpoint
from models.fitting import FitStep, fit_latent_steps
from models.instances import with_instance
from viewer.worker import join_within

STEPS_PER_RUN = 300  # Start or Continue runs this many steps, then pauses: no CPU burnt unasked


class ReconstructError(Exception):
    """Something the user gave cannot be used; the message is one line for the panel."""


def sidecar_paths(image: Path) -> tuple[Path, Path]:
    """Where a photo's pose may be written: car.json, else car.png.json."""
    return image.with_suffix(".json"), image.with_name(image.name + ".json")


def read_pose(image: Path) -> Orbit | None:
    """The photo's camera from its JSON sidecar {"azimuth", "elevation"[, "radius"]}, or None
    without one; a sidecar that is not such a pose raises ReconstructError."""
    if not image.is_file():  # also keeps "/" and "." (no file name to derive from) out
        return None
    path = next((p for p in sidecar_paths(image) if p.is_file()), None)
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
    if not image.is_file():
        raise ReconstructError(f"{image}: no such file")
    try:
        return load_photo(image, res)
    except ImageError as error:
        raise ReconstructError(str(error)) from None
    except Exception as error:  # e.g. PIL's decompression-bomb guard: a bad file never ends the viewer
        raise ReconstructError(f"{image}: cannot be read ({type(error).__name__})") from None


def fit_resolution(ckpt: Checkpoint) -> int:
    """The resolution the network was trained at: photos are fitted at it."""
    return int(ckpt.meta.get("resolution", DEFAULT_FIT_RES))


class FitSession:
    """Fits a fresh latent to one posed photo on a background thread; start paused, then resume().

    `latest` is the newest FitStep; `history()` gives the loss and PSNR of every step so far.
    """

    def __init__(self, model, photo: np.ndarray, pose: Orbit, options: dict | None = None):
        res = photo.shape[0]
        rgb = torch.tensor(photo)[None]  # a copy: the photo may be a read-only PIL buffer
        self.pose = pose
        self._steps = fit_latent_steps(model, rgb, pose.cam2world()[None], intrinsics(res, res),
                                       **(options or {}))
        self.latest: FitStep | None = None
        self.error: str | None = None
        self.seconds = 0.0  # time spent in steps, for steps per second
        self._losses: list[float] = []
        self._psnrs: list[float] = []
        self._lock = threading.Lock()
        self._run = threading.Event()
        self._closed = False
        self._pause_at = 0
        self._thread = threading.Thread(target=self._loop, name="lfn-fit", daemon=True)
        self._thread.start()

    @property
    def steps(self) -> int:
        return self.latest.step if self.latest else 0

    @property
    def running(self) -> bool:
        return self._run.is_set() and not self._closed

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else 0.0

    def resume(self, steps: int = STEPS_PER_RUN) -> None:
        """Run `steps` more steps (or until pause())."""
        with self._lock:  # with the thread's own pause check, so neither undoes the other
            if self.error is None and not self._closed:
                self._pause_at = self.steps + steps
                self._run.set()

    def pause(self) -> None:
        """Stop after the step in flight; the latent and optimizer state stay for resume()."""
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
        return join_within(self._thread)

    def _loop(self) -> None:
        try:
            while True:
                self._run.wait()
                if self._closed:
                    return
                start = time.perf_counter()
                step = next(self._steps)
                with self._lock:
                    self.seconds += time.perf_counter() - start
                    self._losses.append(step.loss)
                    self._psnrs.append(step.psnr)
                    self.latest = step
                    if step.step >= self._pause_at and not self._closed:
                        self._run.clear()
        except Exception as error:  # shown in the panel; the viewer keeps running
            with self._lock:  # with resume()'s check, so a failed fit is never resumed
                self.error = f"fitting failed: {type(error).__name__}: {error}"
                self._run.clear()
        finally:
            self._steps.close()  # gives the network its requires_grad back


def default_save_path(ckpt_path: Path) -> Path:
    """`<ckpt stem>_fitted.pt` beside the checkpoint."""
    return ckpt_path.with_name(f"{ckpt_path.stem}_fitted.pt")


def save_fitted(ckpt: Checkpoint, latent: torch.Tensor, name: str, meta: dict, path: Path,
                source: Path | None = None) -> int:
    """Write a copy of `ckpt` with `latent` appended as instance `name`; returns its index.
    `source`, the file `ckpt` came from, is never overwritten."""
    if path.suffix.lower() != ".pt":
        raise ReconstructError(f"{path}: expected a .pt file")
    if source is not None and path.resolve() == source.resolve():
        raise ReconstructError(f"{path}: that is the open checkpoint; save the copy elsewhere")
    if not path.parent.is_dir():
        raise ReconstructError(f"{path}: folder {path.parent} does not exist")
    # with_instance concatenates on the CPU; a copy leaves the viewer's (maybe CUDA) model alone
    on_cpu = Checkpoint(copy.deepcopy(ckpt.model).cpu(), ckpt.instance_names, ckpt.meta)
    fitted = with_instance(on_cpu, latent, name, meta)
    try:
        save_checkpoint(fitted.model, fitted.instance_names, fitted.meta, path)
    except OSError as error:
        raise ReconstructError(f"{path}: {error.strerror or error}") from None
    return len(fitted.instance_names) - 1
