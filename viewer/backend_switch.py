"""Switching the LFN's render backend and precision while the viewer runs.

The panel asks for a backend and precision; the render thread builds that renderer between two
frames and swaps it in holding the shown latent. A build can take seconds (tracing, torch.compile,
a Triton autotune), so it runs as a job on the render thread: the window keeps drawing the last
frame meanwhile and the panel says "switching to ...". A build that fails keeps the old renderer and
leaves a one-line error for the panel.
"""

from __future__ import annotations

from models.cameras import Orbit
from models.renderer import BACKENDS, PRECISIONS, LFNRenderer, backend_unavailable, make_renderer
from viewer.worker import RenderWorker

# torch.compile compiles and Triton autotunes on the first call, not when built: one small frame
# before the swap makes such a failure keep the old renderer instead of breaking the view.
PROBE_RES = 16


def one_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


class BackendSwitch:
    """The LFN renderer a RenderWorker renders with, and switching it to another backend or precision."""

    def __init__(self, worker: RenderWorker):
        self.worker = worker
        self.switching: str | None = None  # "backend precision" while the render thread builds it
        self.error: str | None = None  # why the last switch failed

    @property
    def renderer(self) -> LFNRenderer:
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
        if self.switching is not None:
            return
        reason = backend_unavailable(backend, self.renderer.device, precision)
        if reason is not None:
            self.error = f"{backend} {precision}: {reason}"
            return
        self.switching, self.error = f"{backend} {precision}", None
        self.worker.call(lambda: self._swap(backend, precision))

    def _swap(self, backend: str, precision: str) -> bool:
        """On the render thread, between two frames; whether the renderer changed."""
        old = self.renderer
        try:
            new = make_renderer(old.model, old.device, precision, backend)
            new.render_rgba(Orbit().cam2world(), PROBE_RES)
            self.worker.frames.replace_renderer(new)
            return True
        except Exception as error:  # the old renderer stays; the panel shows why
            self.error = f"{backend} {precision}: {one_line(error)}"
            return False
        finally:
            self.switching = None
