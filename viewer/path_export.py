"""The viewer's "Export video": a camera path rendered to an MP4 on a thread beside the UI.

The export thread owns what it renders with: an LFN renderer of its own (the viewer's backend and
precision at the press of the button, over the checkpoint's model), a FrameRenderer and an
offscreen EGL context for the display shader, built, used and released on that thread alone, as
the benchmark's are (viewer/app.py). Its frames are those `main.py --headless --path` renders
for the same path file (viewer/headless.py path_pictures), encoded as they come (engine/video.py).
It posts its progress and outcome under a lock; the UI reads them once a frame (status()).
close() sets its stop event, which ends the run before its next frame, and waits, bounded.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from engine.camera_path import CameraPath, PathFrame
from engine.frame import FrameRenderer
from engine.latents import LatentBank
from engine.memory import then_trim
from engine.video import VideoError, write_mp4
from models.checkpoint import Checkpoint
from models.renderer import make_renderer
from models.resolution import Resolution
from viewer.headless import open_offscreen, path_pictures
from viewer.worker import CLOSE_TIMEOUT_S, join_within


class ExportCancelled(Exception):
    """The viewer closed (or the user cancelled) while frames were still to render."""


@dataclass(frozen=True)
class VideoSettings:
    """What the video is: where it goes, how many frames at what rate and size, rendered how."""

    out: Path
    frames: int
    fps: float
    res: Resolution  # the view's, as the window requests it
    device: torch.device
    precision: str
    backend: str


@dataclass(frozen=True)
class ExportStatus:
    done: int  # frames rendered and encoded
    total: int
    outcome: str | None = None  # "wrote ...", why it failed, or that it was cancelled; None while running
    failed: bool = False

    @property
    def running(self) -> bool:
        return self.outcome is None


def check_video_file(out: Path) -> None:
    """VideoError, at once, for a video file that could never be written."""
    if out.suffix.lower() != ".mp4":
        raise VideoError(f"{out}: expected a .mp4 file")
    if out.is_dir():
        raise VideoError(f"{out}: is a folder, not a file")
    if not out.parent.is_dir():
        raise VideoError(f"{out}: folder {out.parent} does not exist")


class PathVideoExport:
    """One export of `path` to `settings.out`; the thread starts at once."""

    def __init__(self, ckpt: Checkpoint, path: CameraPath, settings: VideoSettings):
        check_video_file(settings.out)
        self.ckpt, self.path, self.settings = ckpt, path, settings
        self._lock = threading.Lock()  # guards _status, the one thing both threads touch
        self._status = ExportStatus(done=0, total=settings.frames)
        self._stop = threading.Event()
        # a daemon: should close() time out, the thread cannot hold the process open
        self._thread = threading.Thread(target=then_trim(self._run), name="lfn-path-export", daemon=True)
        self._thread.start()

    def status(self) -> ExportStatus:
        with self._lock:
            return self._status

    def cancel(self) -> None:
        """End the run before its next frame; the partial video is removed."""
        self._stop.set()

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> bool:
        """Cancel and wait up to `timeout_s` for the thread; whether it ended."""
        self.cancel()
        return join_within(self._thread, timeout_s)

    def _post(self, **changes) -> None:
        with self._lock:
            self._status = replace(self._status, **changes)

    def _counted(self, steps: Iterable[PathFrame]) -> Iterator[PathFrame]:
        """The path's frames, each taken once the one before it is encoded, until stopped."""
        for done, step in enumerate(steps):
            if self._stop.is_set():
                raise ExportCancelled
            self._post(done=done)
            yield step

    def _run(self) -> None:
        settings, offscreen = self.settings, None
        try:
            renderer = make_renderer(self.ckpt.model, settings.device, settings.precision, settings.backend)
            frames = FrameRenderer(renderer, LatentBank.of_checkpoint(self.ckpt))
            offscreen = open_offscreen()  # current on this thread only: the window's context stays the UI's
            steps = self._counted(self.path.frames(settings.frames))
            written = write_mp4(settings.out, path_pictures(frames, offscreen, steps, settings.res),
                                settings.fps)
            res = settings.res
            self._post(done=written, outcome=f"wrote {settings.out.resolve()} ({written} "
                       f"frames, {res.width}x{res.height}, {settings.fps:g} fps)")
        except ExportCancelled:
            self._post(outcome="export cancelled")
        except Exception as error:  # shown in the panel; the viewer keeps running
            self._post(failed=True, outcome=f"export failed: {type(error).__name__}: {error}")
        finally:
            if offscreen is not None:
                offscreen.release()
