"""Offscreen rendering of a Mesh with moderngl (EGL): color, per-pixel ray depth, mask and normal.

Cameras follow models.cameras (OpenCV cam2world, pinhole intrinsics, pixel centers at +0.5).
Color is rendered at `supersample` times the resolution and box-averaged (anti-aliasing); the
supersample factor is odd so one sub-sample of each pixel sits exactly on the pixel center, and
depth, mask and normal come from that sample alone, never averaged across an edge.
The normal is the visible triangle's geometric (face) normal, not the interpolated shading normal:
it is the normal of the surface the depth map measures, which is what depth-derived normals are
scored against (a smooth-shaded low-poly body's shading normals tilt away from its triangles).
"""

from __future__ import annotations

from dataclasses import dataclass

import moderngl
import numpy as np
import torch

from models.cameras import DEFAULT_FOV_DEG, intrinsics, pixel_rays
from tools.mesh import Mesh, face_normals, separate_coplanar_faces

# A light fixed in the world (not the camera), so a surface looks the same from every view.
LIGHT_DIR = np.array([0.35, 0.25, 1.0]) / np.linalg.norm([0.35, 0.25, 1.0])
AMBIENT = 0.4
OPENCV_TO_GL = np.diag([1.0, -1.0, -1.0, 1.0])  # camera axes: y down, z forward -> y up, z back

_VERTEX = """
#version 330
uniform mat4 mvp;
in vec3 in_pos;
in vec3 in_normal;
in vec3 in_face_normal;
in vec2 in_uv;
in vec3 in_color;
out vec3 v_pos;
out vec3 v_normal;
out vec3 v_face_normal;
out vec2 v_uv;
out vec3 v_color;
void main() {
    gl_Position = mvp * vec4(in_pos, 1.0);
    v_pos = in_pos;
    v_normal = in_normal;
    v_face_normal = in_face_normal;
    v_uv = in_uv;
    v_color = in_color;
}
"""

_FRAGMENT = """
#version 330
uniform sampler2D tex;
uniform vec3 light_dir;
uniform float ambient;
uniform vec3 eye;
in vec3 v_pos;
in vec3 v_normal;
in vec3 v_face_normal;
in vec2 v_uv;
in vec3 v_color;
layout(location = 0) out vec4 f_color;
layout(location = 1) out vec4 f_normal;
void main() {
    vec3 albedo = v_color * texture(tex, v_uv).rgb;
    // two-sided: a face lit the same from either side, whatever its winding
    float lambert = abs(dot(normalize(v_normal), light_dir));
    f_color = vec4(albedo * (ambient + (1.0 - ambient) * lambert), 1.0);
    // windings are not consistent across car parts: face the camera, as estimated normals do
    vec3 n = normalize(v_face_normal);
    f_normal = vec4(dot(n, eye - v_pos) < 0.0 ? -n : n, 0.0);
}
"""


@dataclass
class View:
    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) float32: distance along each pixel's ray, inf on background
    mask: np.ndarray  # (H, W) bool
    normal: np.ndarray  # (H, W, 3) float32: world-frame unit normal facing the camera, 0 on background


def create_context() -> moderngl.Context:
    """A headless OpenGL 3.3+ context through EGL (Mesa llvmpipe on CPU, or a GPU driver)."""
    return moderngl.create_standalone_context(backend="egl")


def gl_projection(k: np.ndarray, width: int, height: int, near: float, far: float) -> np.ndarray:
    """(4, 4) OpenGL projection of GL eye coordinates for pinhole intrinsics `k` (OpenCV: image
    row 0 at the top, which lands at NDC y = +1)."""
    fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    return np.array([
        [2 * fx / width, 0.0, 1 - 2 * cx / width, 0.0],
        [0.0, 2 * fy / height, 2 * cy / height - 1, 0.0],
        [0.0, 0.0, -(far + near) / (far - near), -2 * far * near / (far - near)],
        [0.0, 0.0, -1.0, 0.0],
    ])


class SceneRenderer:
    """Renders one loaded mesh from many cameras, reusing the GL objects across views and cars."""

    def __init__(
        self,
        resolution: int,
        fov_deg: float = DEFAULT_FOV_DEG,
        supersample: int = 3,
        ctx: moderngl.Context | None = None,
        coplanar_gap: float = 0.0,
    ) -> None:
        if supersample % 2 == 0:
            raise ValueError("supersample must be odd: one sub-sample per pixel on its center")
        self.ctx = ctx or create_context()
        self.resolution, self.supersample = resolution, supersample
        self.coplanar_gap = coplanar_gap  # 0: coplanar faces left to the depth test
        self.intrinsics = intrinsics(resolution, resolution, fov_deg).numpy()
        size = resolution * supersample
        self._k_render = intrinsics(size, size, fov_deg).numpy()
        # cos of the angle between each pixel's ray and the optical axis: ray depth = z / cos
        _, dirs = pixel_rays(torch.eye(4), torch.from_numpy(self.intrinsics), resolution,
                             resolution)
        self._cos = dirs[..., 2].numpy()
        self._fbo = self.ctx.framebuffer(
            [self.ctx.renderbuffer((size, size), 4), self.ctx.renderbuffer((size, size), 4, dtype="f4")],
            self.ctx.depth_texture((size, size)),
        )
        self._program = self.ctx.program(vertex_shader=_VERTEX, fragment_shader=_FRAGMENT)
        self._program["light_dir"].value = tuple(LIGHT_DIR)
        self._program["ambient"].value = AMBIENT
        self._white = self.ctx.texture((1, 1), 3, bytes([255, 255, 255]))
        self._vbo: moderngl.Buffer | None = None
        self._vao: moderngl.VertexArray | None = None
        self._textures: list[moderngl.Texture] = []
        self._draws: list[tuple[moderngl.Texture, int, int]] = []

    def set_mesh(self, mesh: Mesh, images: dict[str, np.ndarray]) -> None:
        """Upload a mesh and its texture images ((H, W, 3) uint8, rows top to bottom).

        With `coplanar_gap` > 0, coplanar overlapping faces are first moved that far apart
        (tools.mesh.separate_coplanar_faces). Left to the depth test, 5 of the 14 TORCS training
        models show 3.6-6 % of their pixels changing between two cameras 1e-4 rad apart (README,
        "The car data set")."""
        self._release_mesh()
        if self.coplanar_gap > 0:
            mesh = separate_coplanar_faces(mesh, self.coplanar_gap)
        order = np.argsort(mesh.tri_texture, kind="stable")
        corners = (order[:, None] * 3 + np.arange(3)).ravel()
        flat = np.repeat(face_normals(mesh.positions), 3, axis=0)
        data = np.hstack([mesh.positions, mesh.normals, flat, mesh.uvs, mesh.colors])[corners]
        self._vbo = self.ctx.buffer(np.ascontiguousarray(data, np.float32).tobytes())
        self._vao = self.ctx.vertex_array(
            self._program, [(self._vbo, "3f 3f 3f 2f 3f", "in_pos", "in_normal", "in_face_normal",
                             "in_uv", "in_color")]
        )
        gl_textures = {-1: self._white}
        for index, name in enumerate(mesh.textures):
            image = np.ascontiguousarray(images[name][::-1, :, :3])  # GL rows start at v = 0
            texture = self.ctx.texture((image.shape[1], image.shape[0]), 3, image.tobytes())
            texture.build_mipmaps()
            texture.anisotropy = 4.0
            self._textures.append(texture)
            gl_textures[index] = texture
        ids, starts, counts = np.unique(mesh.tri_texture[order], return_index=True,
                                        return_counts=True)
        self._draws = [(gl_textures[int(i)], int(s) * 3, int(c) * 3)
                       for i, s, c in zip(ids, starts, counts, strict=True)]

    def render(self, cam2world: np.ndarray) -> View:
        """One view from an OpenCV cam2world (4, 4); the object must lie in the unit sphere."""
        if self._vao is None:
            raise RuntimeError("set_mesh first")
        cam2world = np.asarray(cam2world, np.float64)
        distance = np.linalg.norm(cam2world[:3, 3])
        near, far = max(distance - 1.05, 0.01), distance + 1.05  # tight: precise depth
        size = self.resolution * self.supersample
        view = OPENCV_TO_GL @ np.linalg.inv(cam2world)
        mvp = gl_projection(self._k_render, size, size, near, far) @ view
        self._program["mvp"].write(mvp.T.astype(np.float32).tobytes())  # GL is column-major
        self._program["eye"].value = tuple(cam2world[:3, 3])
        self._fbo.use()
        self._fbo.clear(1.0, 1.0, 1.0, 1.0, depth=1.0)
        self.ctx.enable(moderngl.DEPTH_TEST)
        for texture, first, count in self._draws:
            texture.use(0)
            self._vao.render(moderngl.TRIANGLES, vertices=count, first=first)
        color = np.frombuffer(self._fbo.read(components=3), np.uint8).reshape(size, size, 3)
        depth = np.frombuffer(self._fbo.depth_attachment.read(), np.float32).reshape(size, size)
        normal = np.frombuffer(self._fbo.read(components=3, attachment=1, dtype="f4"),
                               np.float32).reshape(size, size, 3)
        color, depth, normal = color[::-1], depth[::-1], normal[::-1]  # GL rows run bottom to top
        s, r = self.supersample, self.resolution
        rgb = color.reshape(r, s, r, s, 3).mean(axis=(1, 3))
        center = depth[s // 2 :: s, s // 2 :: s]
        mask = center < 1.0
        z_ndc = 2.0 * center.astype(np.float64) - 1.0
        z_cam = 2.0 * far * near / ((far + near) - z_ndc * (far - near))
        ray_depth = np.where(mask, z_cam / self._cos, np.inf).astype(np.float32)
        # the attachment was cleared to white like the color: background normals are zeros
        normal = np.where(mask[..., None], normal[s // 2 :: s, s // 2 :: s], 0.0).astype(np.float32)
        return View(np.rint(rgb).astype(np.uint8), ray_depth, mask, normal)

    def _release_mesh(self) -> None:
        for obj in (self._vao, self._vbo, *self._textures):
            if obj is not None:
                obj.release()
        self._vao, self._vbo, self._textures, self._draws = None, None, [], []

    def release(self) -> None:
        self._release_mesh()
        self._fbo.release()
        self._program.release()
        self._white.release()
