"""Frames in device memory that CUDA writes and GL reads, with nothing mapped or unmapped per frame.

CUDA allocates each frame's memory exportable (a POSIX file descriptor, cuMemCreate); GL imports it
as a buffer object (GL_EXT_memory_object_fd) the first time it copies from it. The render thread
writes a frame there and waits for its stream; the GL thread copies the buffer into the frame's
texture with a compute shader and waits for that copy. No CUDA call runs on the GL thread and no
GL call on the render thread, so neither waits on the CUDA-GL interop's hand-over of a mapped
resource (H200, 512²: the copy and its wait 0.05 ms against 0.37 ms through a mapped texture; one
whole frame 0.87 against 1.08 ms, bench/interop_paths.py).

    pool = shared_frame_pool(ctx, device)      # None where CUDA or GL lacks what it needs
    frame = pool.take(res)                     # render thread: a free (H, W, 4) float32 frame
    renderer.render_rgba(pose, res, out=frame.tensor); stream.synchronize()
    frame.copy_to(texture)                     # GL thread: GL copies it, then it is free again
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading

import moderngl
import numpy as np
import torch

from engine.texture import SHADER_DIR, cuda_check
from models.resolution import Resolution

HANDLE_TYPE_OPAQUE_FD = 0x9586  # GL_HANDLE_TYPE_OPAQUE_FD_EXT
FRAMES_PER_RES = 3  # one being written, one waiting for the GL thread, one being copied
COPY_TIMEOUT_NS = 1_000_000_000


def opengl():
    """PyOpenGL with the memory-object extensions loaded. Imported first here without a display
    server (the GPU machine's offscreen contexts), it binds to EGL unless PYOPENGL_PLATFORM says
    otherwise; the variable is set for the import only, so child processes (a viewer window) still
    choose their own platform."""
    headless = not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    chosen = os.environ.get("PYOPENGL_PLATFORM")
    if headless and chosen is None and "OpenGL.GL" not in sys.modules:
        os.environ["PYOPENGL_PLATFORM"] = "egl"
    try:
        import OpenGL.GL
        import OpenGL.GL.EXT.memory_object
        import OpenGL.GL.EXT.memory_object_fd  # noqa: F401 (loads GL.EXT.memory_object_fd)
    finally:
        if chosen is None:
            os.environ.pop("PYOPENGL_PLATFORM", None)
    return OpenGL.GL


class CudaArray:
    """A float32 CUDA pointer seen as an array (__cuda_array_interface__), for torch.as_tensor."""

    def __init__(self, pointer: int, shape: tuple[int, ...]):
        self.__cuda_array_interface__ = {"shape": shape, "typestr": "<f4", "data": (pointer, False),
                                         "version": 3, "strides": None}


class SharedFrame:
    """One (H, W, 4) float32 frame of exportable CUDA memory, owned by `pool`; GL imports it into
    its context on the first copy_to()."""

    def __init__(self, pool: SharedFramePool, res: Resolution, device: torch.device):
        from cuda.bindings import driver

        self.pool, self.driver, self.res = pool, driver, res
        fd_type = driver.CUmemAllocationHandleType.CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR
        prop = driver.CUmemAllocationProp()
        prop.type = driver.CUmemAllocationType.CU_MEM_ALLOCATION_TYPE_PINNED
        prop.location.type = driver.CUmemLocationType.CU_MEM_LOCATION_TYPE_DEVICE
        prop.location.id = device.index if device.index is not None else torch.cuda.current_device()
        prop.requestedHandleTypes = fd_type
        (granularity,) = cuda_check(driver.cuMemGetAllocationGranularity(
            prop, driver.CUmemAllocationGranularity_flags.CU_MEM_ALLOC_GRANULARITY_MINIMUM),
            "cuMemGetAllocationGranularity")
        self.size = -(-res.pixels * 16 // granularity) * granularity
        (self.handle,) = cuda_check(driver.cuMemCreate(self.size, prop, 0), "cuMemCreate")
        (self.pointer,) = cuda_check(driver.cuMemAddressReserve(self.size, 0, 0, 0),
                                       "cuMemAddressReserve")
        cuda_check(driver.cuMemMap(self.pointer, self.size, 0, self.handle, 0), "cuMemMap")
        access = driver.CUmemAccessDesc()
        access.location = prop.location
        access.flags = driver.CUmemAccess_flags.CU_MEM_ACCESS_FLAGS_PROT_READWRITE
        cuda_check(driver.cuMemSetAccess(self.pointer, self.size, [access], 1), "cuMemSetAccess")
        self.tensor = torch.as_tensor(CudaArray(int(self.pointer), (res.height, res.width, 4)),
                                      device=device)
        # exported here, where the render thread's CUDA context is current; GL takes it on import
        (fd,) = cuda_check(driver.cuMemExportToShareableHandle(self.handle, fd_type, 0),
                             "cuMemExportToShareableHandle")
        self._fd: int | None = int(fd)
        self._memory: int | None = None  # the GL memory object, once imported
        self._buffer: int | None = None

    def _gl_memory(self) -> int:
        """The GL memory object of this frame, imported on the first call (GL thread)."""
        if self._memory is None:
            GL, names = opengl(), np.zeros(1, np.uint32)
            GL.EXT.memory_object.glCreateMemoryObjectsEXT(1, names)
            GL.EXT.memory_object_fd.glImportMemoryFdEXT(int(names[0]), self.size, HANDLE_TYPE_OPAQUE_FD,
                                                        self._fd)
            self._fd, self._memory = None, int(names[0])  # GL owns the descriptor now
        return self._memory

    def _gl_buffer(self) -> int:
        """The GL buffer object over this frame's memory, made on the first call (GL thread)."""
        if self._buffer is None:
            GL, names = opengl(), np.zeros(1, np.uint32)
            GL.glCreateBuffers(1, names)
            GL.EXT.memory_object.glNamedBufferStorageMemEXT(int(names[0]), self.size, self._gl_memory(), 0)
            self._buffer = int(names[0])
        return self._buffer

    def copy_to(self, texture: moderngl.Texture) -> None:
        """GL copies this frame into `texture` (GL thread; the CUDA writes must have finished) and
        waits for it; the frame goes back to its pool either way."""
        try:
            self.pool.copy(self._gl_buffer(), texture)
        finally:
            self.pool.give_back(self)

    def release(self) -> None:
        """Free the GL objects (on the GL thread, with its context current) and the CUDA memory."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        GL = opengl() if self._memory is not None else None
        if self._buffer is not None:
            GL.glDeleteBuffers(1, np.array([self._buffer], np.uint32))
            self._buffer = None
        if self._memory is not None:
            GL.EXT.memory_object.glDeleteMemoryObjectsEXT(1, np.array([self._memory], np.uint32))
            self._memory = None
        self.driver.cuMemUnmap(self.pointer, self.size)
        self.driver.cuMemRelease(self.handle)
        self.driver.cuMemAddressFree(self.pointer, self.size)


def wait_for_gl(GL) -> None:
    """Block until the GL commands issued so far have finished (at most COPY_TIMEOUT_NS)."""
    fence = GL.glFenceSync(GL.GL_SYNC_GPU_COMMANDS_COMPLETE, 0)
    try:
        if GL.glClientWaitSync(fence, GL.GL_SYNC_FLUSH_COMMANDS_BIT, COPY_TIMEOUT_NS) not in (
                GL.GL_ALREADY_SIGNALED, GL.GL_CONDITION_SATISFIED):
            raise RuntimeError("GL did not finish copying a shared frame within a second")
    finally:
        GL.glDeleteSync(fence)


def shared_frame_pool(ctx: moderngl.Context, device: torch.device) -> SharedFramePool | None:
    """A pool for frames rendered on `device` and shown in the GL context `ctx`, or None where either
    side lacks what it takes (a CPU device, no cuda-python, no GL_EXT_memory_object_fd)."""
    if device.type != "cuda" or "GL_EXT_memory_object_fd" not in ctx.extensions:
        return None
    try:
        import cuda.bindings.driver  # noqa: F401 (on the GPU machine only)
    except ImportError:
        return None
    return SharedFramePool(ctx, device)


class SharedFramePool:
    """Up to FRAMES_PER_RES shared frames per resolution, each either free or held by one thread.

    take() (render thread) hands out a free frame or makes one; a frame comes back through its
    copy_to() (GL thread) or give_back() (a frame dropped before it was shown). When all of a
    resolution's frames are held, or after disable(), take() returns None and the caller renders
    into its own memory as before.

    `copy_with`: "compute" (a compute shader, shaders/frame_copy.comp) or "unpack" (GL's pixel
    unpack from a buffer, glTextureSubImage2D: slower, kept to measure the difference).
    """

    def __init__(self, ctx: moderngl.Context, device: torch.device, copy_with: str = "compute"):
        self.ctx, self.device, self.copy_with = ctx, device, copy_with
        self._copy_program: moderngl.ComputeShader | None = None
        self.disabled_because: str | None = None
        self._lock = threading.Lock()
        self._free: dict[Resolution, list[SharedFrame]] = {}
        self._count: dict[Resolution, int] = {}
        self._all: list[SharedFrame] = []

    def take(self, res: Resolution | int) -> SharedFrame | None:
        res = Resolution.of(res)
        with self._lock:
            if self.disabled_because is not None:
                return None
            free = self._free.setdefault(res, [])
            if free:
                return free.pop()
            if self._count.get(res, 0) >= FRAMES_PER_RES:
                return None
            self._count[res] = self._count.get(res, 0) + 1
        try:
            frame = SharedFrame(self, res, self.device)
        except Exception as error:  # e.g. a driver without exportable allocations: never again
            self.disable(f"{type(error).__name__}: {error}")
            return None
        with self._lock:
            self._all.append(frame)
        return frame

    def give_back(self, frame: SharedFrame) -> None:
        with self._lock:
            self._free.setdefault(frame.res, []).append(frame)

    def disable(self, reason: str) -> None:
        """take() hands out nothing from now on; the first reason is kept."""
        with self._lock:
            self.disabled_because = self.disabled_because or reason

    def copy(self, buffer: int, texture: moderngl.Texture) -> None:
        """GL copies the RGBA32F frame in the GL buffer `buffer` into `texture` (its size), then the
        calling thread waits for it: the buffer may be rewritten once this returns."""
        GL = opengl()
        if self.copy_with == "unpack":
            GL.glBindBuffer(GL.GL_PIXEL_UNPACK_BUFFER, buffer)
            try:
                GL.glTextureSubImage2D(texture.glo, 0, 0, 0, texture.width, texture.height, GL.GL_RGBA,
                                       GL.GL_FLOAT, ctypes.c_void_p(0))
            finally:
                GL.glBindBuffer(GL.GL_PIXEL_UNPACK_BUFFER, 0)
        else:
            if self._copy_program is None:
                self._copy_program = self.ctx.compute_shader((SHADER_DIR / "frame_copy.comp").read_text())
            GL.glBindBufferBase(GL.GL_SHADER_STORAGE_BUFFER, 0, buffer)
            texture.bind_to_image(0, read=False, write=True)
            self._copy_program.run(-(-texture.width // 16), -(-texture.height // 16))
            self.ctx.memory_barrier(moderngl.TEXTURE_FETCH_BARRIER_BIT)
        wait_for_gl(GL)

    def release(self) -> None:
        """Free every frame (GL thread, once nothing renders into them any more)."""
        with self._lock:
            frames, self._all, self._free, self._count = self._all, [], {}, {}
            self.disabled_because = self.disabled_because or "released"
        for frame in frames:
            frame.release()
        if self._copy_program is not None:
            self._copy_program.release()
            self._copy_program = None
