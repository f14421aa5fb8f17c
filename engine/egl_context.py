"""Offscreen EGL contexts that the thread which made one can release whole.

moderngl's Context.release() calls eglDestroyContext, and EGL destroys a context only once no
thread has it current; moderngl leaves it current on the thread that made it. On a thread that
then ends (a benchmark run, a video export) it was never destroyed: the whole Mesa context, its
textures and framebuffers stayed in memory, 2.7 MB a thread measured with llvmpipe
(viewer/repeat_action.py). eglReleaseThread after the release unbinds it there, so it goes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

import moderngl


@functools.cache
def libegl() -> ctypes.CDLL | None:
    """The EGL library moderngl's EGL backend loaded (already in the process: no second copy)."""
    name = ctypes.util.find_library("EGL") or "libEGL.so.1"
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def offscreen_context() -> moderngl.Context:
    """A standalone EGL context, current on the calling thread; give it back with release_context."""
    return moderngl.create_standalone_context(backend="egl")


def release_context(ctx: moderngl.Context) -> None:
    """Release `ctx`, made by offscreen_context on this thread, and this thread's EGL state: the
    context leaves memory now rather than never, should the thread end with it still current.
    Another EGL context current on this thread is unbound too (making `ctx` had unbound it)."""
    ctx.release()
    if (egl := libegl()) is not None:
        egl.eglReleaseThread()
