"""A render thread: the network runs beside the UI loop, so the window never waits for a frame.

The UI submits the newest FrameRequest (an unstarted older one is dropped) and picks up finished
Frames. Torch releases the GIL inside its kernels, so the UI keeps its frame rate while a slow
frame (a full-resolution CPU render, the volumetric baseline) is in flight. A job (swapping the
renderer for another backend) also runs there, between two frames, so no frame sees half of it.
The render thread owns the renderers and the FrameRenderer; the UI reaches them only through the
condition-guarded mailboxes below (submit, call, take).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

from engine.frame import Frame, FrameRenderer, FrameRequest
from engine.memory import trim_heap

# How long close() waits for a worker thread. Each one ends within one unit of its work (a frame, a
# fit step, a benchmark frame); the slowest, a full-size CPU volumetric frame, takes ~20 s.
CLOSE_TIMEOUT_S = 30.0
TRIM_PERIOD_S = 2.0  # how often an idle render thread gives freed memory back to the OS


def join_within(thread: threading.Thread, timeout_s: float = CLOSE_TIMEOUT_S) -> bool:
    """Wait up to `timeout_s` for `thread` to end; whether it did. One still running is named on
    stderr: it is a daemon, so it cannot keep the process from exiting."""
    thread.join(timeout_s)
    if thread.is_alive():
        print(f"warning: thread {thread.name} did not end within {timeout_s:.0f} s of close",
              file=sys.stderr)
        return False
    return True


class RenderWorker:
    def __init__(self, frames: FrameRenderer, on_done: Callable[[], None] = lambda: None):
        """`on_done` runs on the render thread after each frame (the window wakes its loop)."""
        self.frames = frames
        self.on_done = on_done
        self._cond = threading.Condition()
        self._pending: FrameRequest | None = None
        self._job: Callable[[], bool] | None = None
        self._last: FrameRequest | None = None  # the newest request rendered (render thread only)
        self._done: Frame | BaseException | None = None
        self._busy = False
        self._stop = False
        self._trimmed_s = 0.0  # when the render thread last gave freed memory back (monotonic)
        self._thread = threading.Thread(target=self._loop, name="lfn-render", daemon=True)
        self._thread.start()

    def submit(self, request: FrameRequest) -> None:
        with self._cond:
            self._pending = request
            self._cond.notify()

    def call(self, job: Callable[[], bool]) -> None:
        """Run `job` on the render thread before the next frame. It returns whether it changed how
        frames look; then the newest request renders again. `job` reports its own errors."""
        with self._cond:
            self._job = job
            self._cond.notify()

    @property
    def idle(self) -> bool:
        with self._cond:
            return not self._busy and self._pending is None and self._job is None

    def take(self) -> Frame | BaseException | None:
        """The newest finished frame (or the error that ended it) since the last call, if any."""
        with self._cond:
            done, self._done = self._done, None
            return done

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> bool:
        """Stop after the frame or job in flight; whether the thread ended within `timeout_s`."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        return join_within(self._thread, timeout_s)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and self._job is None and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                job, request = self._job, self._pending
                self._job, self._pending, self._busy = None, None, True
            done: Frame | BaseException | None = None
            try:
                changed = job() if job is not None else False
                if changed and request is None:
                    request = self._last  # the view on screen, changed by the job; None before any
                if request is not None:
                    self._last = request
                    done = self.frames.render(request)
            except Exception as error:  # handed to the UI thread, which decides what it means
                done = error
            with self._cond:
                replaced = self._done if done is not None else None
                self._done, self._busy = done or self._done, False
            if isinstance(replaced, Frame):  # never shown: its shared frame is free again
                replaced.drop()
            self.on_done()
            self._trim_when_idle()

    def _trim_when_idle(self) -> None:
        """A depth or compare frame's working memory, freed, stays in this thread's malloc arena
        and in the resident set: hand it back to the OS when no frame waits, at most every
        TRIM_PERIOD_S (malloc_trim walks the heap: milliseconds)."""
        now = time.monotonic()
        if self.idle and now - self._trimmed_s >= TRIM_PERIOD_S:
            trim_heap()
            self._trimmed_s = now
