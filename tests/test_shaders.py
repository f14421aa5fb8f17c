"""The display shaders in an offscreen EGL context: they compile, and each mode maps as documented."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.display_mode import DisplayMode
from engine.texture import MAX_TEXTURES, FrameTexture
from tests.conftest import egl_context
from viewer.display import Display, Pane, ShaderMode, frame_panes

RES = 32
TURBO_COLD = np.array([48, 18, 59])  # turbo(0) in 8 bits, from the reference table
TURBO_HOT = np.array([122, 4, 3])  # turbo(1)


@pytest.fixture(scope="module")
def display():
    ctx = egl_context()
    yield Display(ctx)
    ctx.release()


def draw(display: Display, image: torch.Tensor, mode: ShaderMode, **uniforms) -> np.ndarray:
    textures = FrameTexture(display.ctx)
    try:
        reference = uniforms.pop("reference", None)
        pane = Pane(textures.upload(image), mode, **uniforms)
        if reference is not None:
            pane.reference = FrameTexture(display.ctx).upload(reference)
        return display.read_image([pane], image.shape[0]).astype(np.int16)
    finally:
        textures.release()


def is_gray(pixels: np.ndarray) -> bool:
    return bool((pixels.max(-1) - pixels.min(-1) <= 1).all())


def test_program_compiles_with_its_uniforms(display):
    for name in ("image", "reference", "mode", "near", "far", "gain"):
        assert name in display.program, name


def test_rgb_passes_through_upright(display):
    image = torch.rand(RES, RES, 3)
    image[0, 0] = torch.tensor([1.0, 0.0, 0.0])  # top-left pixel of the tensor: red
    shown = draw(display, image, ShaderMode.RGB)
    assert np.abs(shown - np.round(image.numpy() * 255)).max() <= 1
    assert tuple(shown[0, 0]) == (255, 0, 0)


def test_depth_colormap_runs_red_near_to_blue_far_and_marks_invalid(display):
    depth = torch.linspace(2.0, 4.0, RES).expand(RES, RES)  # increases left to right
    valid = torch.ones(RES, RES)
    valid[RES // 2 :] = 0  # bottom half invalid
    shown = draw(display, torch.stack([depth, valid, valid], -1), ShaderMode.DEPTH, near=2.0, far=4.0)
    assert np.abs(shown[0, 0] - TURBO_HOT).max() <= 2  # near: turbo's dark red end
    assert np.abs(shown[0, -1] - TURBO_COLD).max() <= 2  # far: its dark violet end
    invalid = shown[RES // 2 :]
    assert is_gray(invalid) and len(np.unique(invalid[..., 0])) == 2  # a two-gray checkerboard


def test_normals_map_to_half_plus_half_with_invalid_checker(display):
    normals = torch.zeros(RES, RES, 4)
    normals[..., 0] = 1.0  # +x everywhere
    normals[..., 3] = 1.0
    normals[:, : RES // 2, 3] = 0.0  # left half invalid
    shown = draw(display, normals, ShaderMode.NORMALS)
    assert np.abs(shown[:, RES // 2 :] - np.array([255, 128, 128])).max() <= 1
    assert is_gray(shown[:, : RES // 2])


def test_difference_heatmap_is_cold_for_equal_images_and_hot_for_opposite(display):
    image = torch.rand(RES, RES, 3)
    same = draw(display, image, ShaderMode.DIFFERENCE, reference=image.clone())
    opposite = draw(display, image.round(), ShaderMode.DIFFERENCE, reference=1 - image.round())
    assert np.abs(same - TURBO_COLD).max() <= 2
    assert np.abs(opposite - TURBO_HOT).max() <= 2


def test_compare_frames_get_three_panes():
    texture, reference = object(), object()
    panes = frame_panes(DisplayMode.COMPARE, texture, reference)
    assert [p.mode for p in panes] == [ShaderMode.RGB, ShaderMode.RGB, ShaderMode.DIFFERENCE]
    assert panes[2].reference is reference
    assert [p.mode for p in frame_panes(DisplayMode.COMPARE, texture)] == [ShaderMode.RGB]
    depth = frame_panes(DisplayMode.DEPTH, texture, depth_range=(1.0, 2.0))
    assert [(p.mode, p.far) for p in depth] == [(ShaderMode.DEPTH, 2.0)]
    assert frame_panes(DisplayMode.NORMALS, texture)[0].mode is ShaderMode.NORMALS


def test_a_texture_per_size_only_for_the_sizes_used_last(display):
    """A resolution slider dragged across its range must not keep a texture for every size."""
    textures = FrameTexture(display.ctx)
    try:
        for res in range(16, 16 + 4 * MAX_TEXTURES * 3, 4):
            textures.upload(torch.full((res, res, 3), 0.25))
        assert len(textures.textures) == MAX_TEXTURES
        red = torch.zeros(RES, RES, 3)
        red[..., 0] = 1.0
        texture = textures.upload(red)  # a size evicted long ago comes back, fresh
        pixels = display.read_image([Pane(texture, ShaderMode.RGB)], RES)
        assert (pixels[..., 0] == 255).all() and (pixels[..., 1:] == 0).all()
        assert next(reversed(textures.textures)) == (RES, RES)  # and is the one kept longest now
    finally:
        textures.release()
