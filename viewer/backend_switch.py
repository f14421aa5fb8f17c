"""Switching the LFN's render backend and precision while the viewer runs.

The panel asks for a backend and precision; the render thread builds that renderer between two
frames and swaps it in holding the shown latent. A build can take seconds (tracing, torch.compile,
a Triton autotune), so it runs as a job on the render thread: the window keeps drawing the last
frame meanwhile and the panel says "switching to ...". A build that fails keeps the old renderer and
leaves a one-line error for the panel.

The UI thread starts a switch; the render thread ends it. Both write the SwitchStatus only under
the switch's lock, and the UI reads it once per frame (status()).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from models.cameras import Orbit
from models.renderer import BACKENDS, PRECISIONS, LFNRenderer, backend_unavailable, make_renderer
from viewer.worker import RenderWorker

# torch.compile compiles and Triton autotunes on the first call, not when built: one small frame
# before the swap makes such a failure keep the old renderer instead of breaking the view.
PROBE_RES = 16


def one_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


@dataclass(frozen=True)
class SwitchStatus:
    switching: str | None = None  # "backend precision" while the render thread builds it
    error: str | None = None  # why the last switch failed


class BackendSwitch:
    """The LFN renderer a RenderWorker renders with, and switching it to another backend or precision."""

    def __init__(self, worker: RenderWorker):
        self.worker = worker
        self._lock = threading.Lock()
        self._status = SwitchStatus()

    def status(self) -> SwitchStatus:
        """The switch in flight and why the last one failed, as last posted by either thread."""
        with self._lock:
            return self._status

    def _post(self, status: SwitchStatus) -> None:
        with self._lock:
            self._status = status

    @property
    def renderer(self) -> LFNRenderer:
        """The active renderer: one reference the render thread replaces between frames, so a read
        from the UI thread sees the old one or the new one, both whole."""
        return self.worker.frames.renderer

    def backend_reasons(self) -> dict[str, str | None]:
        """Every backend, with why it cannot run at the active precision (None where it can)."""
        active = self.renderer
        return {b: backend_unavailable(b, active.device, active.precision) for b in BACKENDS}

    def precision_reasons(self) -> dict[str, str | None]:
        """Every precision, with why the active backend cannot run in it (None where it can)."""
        active = self.renderer
        return {p: backend_unavailable(active.backend, active.device, p) for p in PRECISIONS}

    def start(self, backend: str, precision: str) -> None:
        """Have the render thread switch to `backend` in `precision`; one switch at a time."""
        if self.status().switching is not None:  # only the UI thread starts one: no race here
            return
        reason = backend_unavailable(backend, self.renderer.device, precision)
        if reason is not None:
            self._post(SwitchStatus(error=f"{backend} {precision}: {reason}"))
            return
        self._post(SwitchStatus(switching=f"{backend} {precision}"))
        self.worker.call(lambda: self._swap(backend, precision))

    def _swap(self, backend: str, precision: str) -> bool:
        """On the render thread, between two frames; whether the renderer changed."""
        old = self.renderer
        try:
            new = make_renderer(old.model, old.device, precision, backend)
            new.render_rgba(Orbit().cam2world(), PROBE_RES)
            self.worker.frames.replace_renderer(new)
        except Exception as error:  # the old renderer stays; the panel shows why
            self._post(SwitchStatus(error=f"{backend} {precision}: {one_line(error)}"))
            return False
        self._post(SwitchStatus())
        return True
