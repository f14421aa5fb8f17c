"""Offscreen EGL contexts made, used and released on threads that then end, as every benchmark run
and video export does (engine/egl_context.py): the context leaves memory with its release."""

from __future__ import annotations

import ctypes
import gc
import threading

import torch

from engine.display_mode import DisplayMode
from engine.egl_context import libegl, offscreen_context, release_context
from engine.frame import Frame, FrameRequest
from engine.latents import InstanceLatent
from engine.memory import MB, rss_bytes, trim_heap
from models.cameras import Orbit
from tests.conftest import egl_context
from viewer.offscreen import OffscreenDisplay

THREADS = 20
# A context left current on its ended thread kept 4 MB here (llvmpipe); a released one leaves
# about 0.07 MB of EGL's per-context bookkeeping. The bound leaves room for the resident set's
# own jumps (up to 9 MB seen once in a run: arenas and thread stacks of the allocator).
MB_PER_THREAD = 1.0


def on_a_thread(work) -> None:
    thread = threading.Thread(target=work)
    thread.start()
    thread.join()


def current_context() -> int | None:
    egl = libegl()
    egl.eglGetCurrentContext.restype = ctypes.c_void_p
    return egl.eglGetCurrentContext()


def test_a_released_context_is_current_nowhere():
    egl_context().release()  # skips (or fails under LFN_REQUIRE_GUI=1) where EGL is missing
    current = {}

    def make_and_release() -> None:
        ctx = offscreen_context()
        current["made"] = current_context()
        release_context(ctx)
        current["released"] = current_context()

    on_a_thread(make_and_release)
    assert current["made"] and current["released"] is None


def test_offscreen_displays_on_threads_that_end_leave_no_memory_behind():
    egl_context().release()
    frame = Frame(FrameRequest(Orbit(), 64, DisplayMode.RGB, InstanceLatent(0)), torch.rand(64, 64, 4))

    def export_like() -> None:  # a context, a texture, a framebuffer read, as an export's frames
        offscreen = OffscreenDisplay()
        offscreen.image(frame)
        offscreen.release()

    def resident_mb() -> float:
        gc.collect()
        trim_heap()
        return rss_bytes() / MB

    for _ in range(2):  # Mesa's first context loads its drivers and compiles its shaders
        on_a_thread(export_like)
    before = resident_mb()
    for _ in range(THREADS):
        on_a_thread(export_like)
    assert resident_mb() - before < THREADS * MB_PER_THREAD
