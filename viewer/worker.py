"""A render thread: the network runs beside the UI loop, so the window never waits for a frame.

The UI submits the newest request of each kind, a FrameRequest and, while the EPI section is open,
an EpiRequest (an unstarted older one of the same kind is dropped), and picks up finished Frames and
EpiFrames. A waiting frame renders before a waiting EPI: while the view keeps changing, its EPI
catches up in the pauses instead of slowing it. Torch releases the GIL inside its kernels, so the
UI keeps its frame rate while a slow frame (a full-resolution CPU render, the volumetric baseline)
is in flight. A job (swapping the renderer for another backend) also runs there, between two
frames, so no frame sees half of it.
A CPU frame is given up between two slices of its rays once a newer FrameRequest waits
(models/renderer.py CPU_SLICE_RAYS, FrameAbandoned), a compare frame's volumetric half between two
of its chunks (or of its occupancy grid's, unless the waiting request compares the same latent;
engine/frame.py), a depth or normals frame between slices of gradient depth's passes: a camera
move or a dropped photo's car no longer waits for the rest of a full-size frame nobody will look at.
An EPI is given up the same way once a newer EpiRequest waits (between slices of its view's
gradient depth and slices of its colors): dragging the scanline or orbiting no longer waits for
EPIs nobody will look at. A frame or EPI given up is never shown, and the next one of its kind
always renders to the end, so a stream of requests each newer than the last still shows every
other one.
The render thread owns the renderers and the FrameRenderer; the UI reaches them only through the
condition-guarded mailboxes below (submit, call, take).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

from engine.frame import EpiFrame, EpiRequest, Frame, FrameRenderer, FrameRequest, Request
from engine.memory import trim_heap
from models.renderer import FrameAbandoned

# How long close() waits for a worker thread. Each one ends within one unit of its work (a frame, a
# fit step, a benchmark frame); the slowest, a full-size CPU volumetric frame, takes ~20 s.
CLOSE_TIMEOUT_S = 30.0
TRIM_PERIOD_S = 2.0  # how often a render thread between frames gives freed memory back to the OS
# ... and once it has rested this long after its last frame: at rest memory is back to what stays
REST_TRIM_S = 0.5

Result = Frame | EpiFrame
RENDER_ORDER = (FrameRequest, EpiRequest)  # which pending request renders first: the view's


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
        """`on_done` runs on the render thread after each frame, EPI or job (the window wakes its loop)."""
        self.frames = frames
        self.on_done = on_done
        self._renders: dict[type, Callable[[Request, Callable[[], Request | None] | None], Result]] = {
            FrameRequest: frames.render, EpiRequest: frames.render_epi}
        self._cond = threading.Condition()
        self._pending: dict[type, Request] = {}  # the newest unstarted request of each kind
        self._job: Callable[[], bool] | None = None
        self._last: dict[type, Request] = {}  # the newest request rendered of each kind (render thread only)
        self._done: dict[type, Result | BaseException] = {}  # by request kind
        self._busy = False
        self._stop = False
        self._abandoned_last: set[type] = set()  # kinds whose last was given up: their next runs to the end
        self._trimmed_s = 0.0  # when the render thread last gave freed memory back (monotonic)
        self._untrimmed = False  # a frame or job ran since then
        self._thread = threading.Thread(target=self._loop, name="lfn-render", daemon=True)
        self._thread.start()

    def submit(self, request: Request) -> None:
        with self._cond:
            self._pending[type(request)] = request
            self._cond.notify()

    def call(self, job: Callable[[], bool]) -> None:
        """Run `job` on the render thread before the next frame. It returns whether it changed how
        frames look; then the newest request of each kind renders again. `job` reports its own
        errors."""
        with self._cond:
            self._job = job
            self._cond.notify()

    @property
    def idle(self) -> bool:
        with self._cond:
            return not self._busy and not self._pending and self._job is None

    def take(self, kind: type = FrameRequest) -> Result | BaseException | None:
        """The newest finished result of a `kind` of request (a Frame for FrameRequest, an EpiFrame
        for EpiRequest) or the error that ended it, since the last call, if any."""
        with self._cond:
            return self._done.pop(kind, None)

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> bool:
        """Stop after the frame or job in flight; whether the thread ended within `timeout_s`."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        return join_within(self._thread, timeout_s)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and self._job is None and not self._stop:
                    if not self._cond.wait(REST_TRIM_S if self._untrimmed else None):
                        break  # rested REST_TRIM_S with freed memory not given back yet
                if self._stop:
                    return
                resting = not self._pending and self._job is None
                if not resting:
                    job, self._job, self._busy = self._job, None, True
            if resting:
                self._trim()
                continue
            kind, done = FrameRequest, None
            try:
                if job is not None and job():
                    with self._cond:  # the views on screen, changed by the job, render again
                        self._pending = self._last | self._pending
                # One request a round, the most urgent kind first: a waiting frame before a waiting EPI.
                with self._cond:
                    kind = next((k for k in RENDER_ORDER if k in self._pending), FrameRequest)
                    request = self._pending.pop(kind, None)
                if request is not None:
                    self._last[kind] = request
                    done = self._render(request)
            except Exception as error:  # handed to the UI thread, which decides what it means
                done = error
            with self._cond:
                replaced = self._done.get(kind) if done is not None else None
                if done is not None:
                    self._done[kind] = done
                self._busy = False
            if isinstance(replaced, Frame):  # never shown: its shared frame is free again
                replaced.drop()
            self._untrimmed = True
            self.on_done()
            self._trim_when_idle()

    def _render(self, request: Request) -> Result | None:
        """The frame or EPI of `request`, or None when a newer request of its kind made it stale midway."""
        kind = type(request)
        waiting = None if kind in self._abandoned_last else lambda: self._waiting(kind)
        try:
            result = self._renders[kind](request, waiting)
        except FrameAbandoned:
            self._abandoned_last.add(kind)
            return None
        self._abandoned_last.discard(kind)
        return result

    def _waiting(self, kind: type) -> Request | None:
        with self._cond:
            return self._pending.get(kind)

    def _trim_when_idle(self) -> None:
        """A depth or compare frame's working memory, freed, stays in this thread's malloc arena
        and in the resident set: hand it back to the OS when no frame waits, at most every
        TRIM_PERIOD_S (malloc_trim walks the heap: milliseconds). What the last frames before a
        rest freed is given back REST_TRIM_S into the rest (_loop)."""
        if self.idle and time.monotonic() - self._trimmed_s >= TRIM_PERIOD_S:
            self._trim()

    def _trim(self) -> None:
        trim_heap()
        self._trimmed_s, self._untrimmed = time.monotonic(), False
