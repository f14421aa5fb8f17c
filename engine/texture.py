"""Tensor → GL texture on a GPU without a trip through host memory, else a CPU copy.

On a GPU a frame arrives one of two ways: from a shared frame (engine/shared_frames.py: memory CUDA
wrote and GL imported, copied by GL), or through the CUDA-GL interop (CUDA copies the tensor into
the texture's registered image).

Every frame lands in an RGBA32F texture: the display shader reads colors, depth and signed normals
from the same format, and a CUDA tensor can be copied into it byte for byte.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import moderngl
import torch

from engine.frame import to_rgba32f

if TYPE_CHECKING:  # shared_frames imports cuda_check from here
    from engine.shared_frames import SharedFrame

GL_TEXTURE_2D = 0x0DE1
# Frame sizes whose textures are kept: the resting and moving sizes of the view, and a few more.
MAX_TEXTURES = 4

SHADER_DIR = Path(__file__).resolve().parent.parent / "shaders"  # the GLSL of every GL stage


def cuda_check(result: tuple, call: str) -> tuple:
    """The values of a cuda-python call's (error, *values) result, runtime or driver API (both
    report success as 0); raises on an error."""
    error, *values = result
    if error != 0:
        raise RuntimeError(f"{call} failed: {getattr(error, 'name', error)}")
    return tuple(values)


class CudaGLInterop:
    """Copies CUDA tensors into GL textures through cuda-python's graphics interop.

    Each texture is registered once (write-discard: CUDA overwrites it whole); a copy maps it, copies
    device to device into its array and unmaps it, all on the tensor's current stream.
    """

    def __init__(self):
        from cuda.bindings import runtime as cudart  # only on GPU machines; ImportError → CPU copy

        self.cudart = cudart
        self.resources: dict[int, object] = {}

    def _resource(self, texture: moderngl.Texture):
        if texture.glo not in self.resources:
            flags = self.cudart.cudaGraphicsRegisterFlags.cudaGraphicsRegisterFlagsWriteDiscard
            (resource,) = cuda_check(
                self.cudart.cudaGraphicsGLRegisterImage(texture.glo, GL_TEXTURE_2D, flags),
                "cudaGraphicsGLRegisterImage",
            )
            self.resources[texture.glo] = resource
        return self.resources[texture.glo]

    def copy(self, rgba: torch.Tensor, texture: moderngl.Texture) -> None:
        """Copy a contiguous (H, W, 4) float32 CUDA tensor into an RGBA32F texture of that size."""
        cudart, resource = self.cudart, self._resource(texture)
        stream = torch.cuda.current_stream(rgba.device).cuda_stream
        height, width = rgba.shape[:2]
        row_bytes = width * 4 * rgba.element_size()
        cuda_check(cudart.cudaGraphicsMapResources(1, resource, stream), "cudaGraphicsMapResources")
        try:
            (array,) = cuda_check(
                cudart.cudaGraphicsSubResourceGetMappedArray(resource, 0, 0),
                "cudaGraphicsSubResourceGetMappedArray",
            )
            cuda_check(
                cudart.cudaMemcpy2DToArrayAsync(
                    array, 0, 0, rgba.data_ptr(), row_bytes, row_bytes, height,
                    cudart.cudaMemcpyKind.cudaMemcpyDeviceToDevice, stream,
                ),
                "cudaMemcpy2DToArrayAsync",
            )
        finally:
            cuda_check(
                cudart.cudaGraphicsUnmapResources(1, resource, stream), "cudaGraphicsUnmapResources"
            )

    def forget(self, texture: moderngl.Texture) -> None:
        resource = self.resources.pop(texture.glo, None)
        if resource is not None:
            self.cudart.cudaGraphicsUnregisterResource(resource)


class FrameTexture:
    """The texture a frame is shown from, one GL texture per frame size, the MAX_TEXTURES sizes used
    last kept (moving and resting sizes alternate; a resolution slider dragged across its range
    would otherwise keep a 16 MB texture for each of hundreds of sizes).

    `texture_path` says how the last frame arrived: "cuda-gl-shared", "cuda-gl-interop" or
    "cpu-copy". A failed shared copy disables its pool (the reason is kept there) and the frame
    takes the interop; once interop fails, `fallback_reason` keeps the first error and every later
    frame takes the CPU copy.
    """

    def __init__(self, ctx: moderngl.Context):
        self.ctx = ctx
        self.textures: dict[tuple[int, int], moderngl.Texture] = {}
        self.texture_path = "cpu-copy"
        self.fallback_reason: str | None = None
        self._interop: CudaGLInterop | None = None

    def _texture(self, width: int, height: int) -> moderngl.Texture:
        texture = self.textures.pop((width, height), None)
        if texture is None:
            texture = self.ctx.texture((width, height), 4, dtype="f4")
            texture.filter = (moderngl.LINEAR, moderngl.LINEAR)
            texture.repeat_x = texture.repeat_y = False
            if len(self.textures) >= MAX_TEXTURES:  # the least recently used size goes
                self._release(self.textures.pop(next(iter(self.textures))))
        self.textures[(width, height)] = texture  # last in the dict: the most recently used
        return texture

    def _release(self, texture: moderngl.Texture) -> None:
        if self._interop is not None:
            self._interop.forget(texture)
        texture.release()

    def _copy_with_interop(self, rgba: torch.Tensor, texture: moderngl.Texture) -> bool:
        if self.fallback_reason is not None:
            return False
        try:
            if self._interop is None:
                self._interop = CudaGLInterop()
            self._interop.copy(rgba, texture)
        except Exception as error:  # any failure: remember why and use the CPU copy from now on
            self.fallback_reason = f"{type(error).__name__}: {error}"
            return False
        return True

    def _copy_shared(self, shared: SharedFrame, texture: moderngl.Texture) -> bool:
        try:
            shared.copy_to(texture)
        except Exception as error:  # e.g. GL refused the import: the renderer stops taking frames
            shared.pool.disable(f"{type(error).__name__}: {error}")
            return False
        return True

    def upload(self, image: torch.Tensor, shared: SharedFrame | None = None) -> moderngl.Texture:
        """Write an (H, W, C ≤ 4) tensor into the texture of its size and return that texture.
        `shared`: the shared frame that `image` is the tensor of (its CUDA writes finished)."""
        rgba = to_rgba32f(image)
        height, width = rgba.shape[:2]
        texture = self._texture(width, height)
        if shared is not None and self._copy_shared(shared, texture):
            self.texture_path = "cuda-gl-shared"
        elif rgba.is_cuda and self._copy_with_interop(rgba, texture):
            self.texture_path = "cuda-gl-interop"
        else:
            texture.write(rgba.cpu().numpy())
            self.texture_path = "cpu-copy"
        return texture

    def release(self) -> None:
        for texture in self.textures.values():
            self._release(texture)
        self.textures.clear()
