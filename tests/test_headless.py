"""Headless export: PNG and GIF through the display shaders (EGL), depth modes, point clouds."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

import main
from models.cameras import Orbit
from models.checkpoint import load_checkpoint
from models.renderer import make_renderer
from models.resolution import Resolution
from viewer import headless, offscreen


def export(capsys, ckpt, out, *args: str) -> tuple[int, str, str]:
    code = main.main(["--ckpt", str(ckpt), "--headless", "--out", str(out), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


EXPORT_LINE = re.compile(r"wrote (.+): (\d+) frames at (\S+), ([\d.]+) s "
                         r"\(render ([\d.]+) s, encode ([\d.]+) s, setup (-?[\d.]+) s\)")


def renderer_image(ckpt, instance: int, orbit: Orbit, res: Resolution | int) -> np.ndarray:
    """What the CPU renderer itself gives, in 8 bits (compare with --device cpu exports)."""
    loaded = load_checkpoint(ckpt)
    renderer = make_renderer(loaded.model)
    renderer.set_latent(loaded.latents[instance])
    return headless.to_uint8(renderer.render(orbit.cam2world(), res)).astype(np.int16)


def test_png_is_the_renderers_image_through_the_display_shader(capsys, tiny_ckpt, tmp_path):
    out = tmp_path / "view.png"
    code, stdout, stderr = export(capsys, tiny_ckpt, out, "--res", "48", "--instance", "1",
                                  "--device", "cpu",
                                  "--azimuth", "75", "--elevation", "10", "--radius", "2.5")
    assert (code, stderr) == (0, "") and f"wrote {out}" in stdout
    image = np.asarray(Image.open(out).convert("RGB")).astype(np.int16)
    assert image.shape == (48, 48, 3) and image.std() > 1.0
    expected = renderer_image(tiny_ckpt, 1, Orbit(azimuth=75, elevation=10, radius=2.5), 48)
    assert np.abs(image - expected).max() <= 1


def test_gif_is_an_azimuth_turntable(capsys, tiny_ckpt, tmp_path):
    out = tmp_path / "turntable.gif"
    code, _, stderr = export(capsys, tiny_ckpt, out, "--res", "32", "--frames", "4",
                             "--device", "cpu")
    assert (code, stderr) == (0, "")
    gif = Image.open(out)
    assert gif.n_frames == 4 and gif.size == (32, 32)
    frames = []
    for i in range(4):
        gif.seek(i)
        frames.append(np.asarray(gif.convert("RGB")).astype(np.int16))
    quarter = renderer_image(tiny_ckpt, 0, Orbit(azimuth=Orbit().azimuth + 90.0), 32)
    assert np.abs(frames[1] - quarter).max() <= 8  # GIF palettes quantize a little
    assert any(np.abs(frames[0] - f).max() > 0 for f in frames[1:])


@pytest.mark.parametrize("mode, options", [("depth", []), ("normals", []),
                                           ("depth", ["--summed-depth"])])
def test_depth_modes(capsys, tiny_ckpt, tmp_path, mode, options):
    out = tmp_path / f"{mode}.png"
    code, _, stderr = export(capsys, tiny_ckpt, out, "--res", "32", "--mode", mode, *options)
    assert (code, stderr) == (0, "")
    assert np.asarray(Image.open(out)).shape == (32, 32, 3)


def test_exported_depth_is_refined_unless_gradient_depth_is_asked_for(capsys, tiny_ckpt, tmp_path):
    depths = {}
    for name, options in (("refined", []), ("gradient", ["--gradient-depth"])):
        out = tmp_path / f"{name}.png"
        code, _, stderr = export(capsys, tiny_ckpt, out, "--res", "32", "--mode", "depth",
                                 "--device", "cpu", "--precision", "fp32", *options)
        assert (code, stderr) == (0, "")
        depths[name] = np.load(out.with_suffix(".npy"))
    refined, gradient = depths["refined"], depths["gradient"]
    assert np.array_equal(np.isnan(refined), np.isnan(gradient))  # the same pixels have a depth
    valid = ~np.isnan(gradient)
    assert valid.any() and not np.array_equal(refined[valid], gradient[valid])
    # the search moves a depth by at most its ±6 % range
    assert np.all(np.abs(refined[valid] / gradient[valid] - 1) <= 0.06 + 1e-5)


def test_point_cloud(capsys, tiny_ckpt, tmp_path):
    ply = tmp_path / "car.ply"
    code, stdout, stderr = export(capsys, tiny_ckpt, tmp_path / "v.png", "--res", "24",
                                  "--ply", str(ply))
    assert (code, stderr) == (0, "")
    data = ply.read_bytes()
    header, body = data.split(b"end_header\n")
    count = int(header.split(b"element vertex ")[1].split(b"\n")[0])
    assert len(body) == count * 15 and f"({count} points)" in stdout


def test_without_egl_the_tensor_is_written_directly(capsys, tiny_ckpt, tmp_path, monkeypatch):
    def no_egl(**_):
        raise RuntimeError("no EGL here")

    monkeypatch.setattr(offscreen, "offscreen_context", no_egl)
    out = tmp_path / "direct.png"
    code, stdout, stderr = export(capsys, tiny_ckpt, out, "--res", "24", "--device", "cpu",
                                  "--precision", "fp32")
    assert (code, stderr) == (0, "") and "no EGL here" in stdout
    image = np.asarray(Image.open(out).convert("RGB")).astype(np.int16)
    assert np.array_equal(image, renderer_image(tiny_ckpt, 0, Orbit(), 24))


def test_direct_depth_image_is_gray_and_black_where_invalid():
    from engine.display_mode import DisplayMode
    from engine.frame import Frame, FrameRequest
    from engine.latents import InstanceLatent

    depth = torch.tensor([[2.0, 4.0], [3.0, 3.0]])
    valid = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    frame = Frame(FrameRequest(Orbit(), 2, DisplayMode.DEPTH, InstanceLatent(0)),
                  torch.stack([depth, valid, valid], -1), depth_range=(2.0, 4.0))
    gray = headless.direct_image(frame)[..., 0]
    assert gray.tolist() == [[255, 0], [128, 0]]


def test_a_non_square_png_is_the_renderers_wide_frame(capsys, tiny_ckpt, tmp_path):
    out = tmp_path / "wide.png"
    code, _, stderr = export(capsys, tiny_ckpt, out, "--res", "48x32", "--device", "cpu")
    assert (code, stderr) == (0, "")
    image = np.asarray(Image.open(out).convert("RGB")).astype(np.int16)
    assert image.shape == (32, 48, 3)  # 48 wide, 32 tall
    assert np.abs(image - renderer_image(tiny_ckpt, 0, Orbit(), Resolution(48, 32))).max() <= 1


def test_non_square_depth_keeps_the_frame_size(capsys, tiny_ckpt, tmp_path):
    out = tmp_path / "wide.png"
    code, _, stderr = export(capsys, tiny_ckpt, out, "--res", "48x32", "--mode", "depth")
    assert (code, stderr) == (0, "")
    assert np.asarray(Image.open(out)).shape == (32, 48, 3)
    assert np.load(out.with_suffix(".npy")).shape == (32, 48)


def test_a_video_export_says_how_long_rendering_and_encoding_took(capsys, tiny_ckpt, tmp_path):
    out = tmp_path / "orbit.mp4"
    code, stdout, stderr = export(capsys, tiny_ckpt, out, "--res", "32", "--frames", "5", "--device", "cpu")
    assert (code, stderr) == (0, "")
    (line,) = [line for line in stdout.splitlines() if line.startswith("wrote")]
    match = EXPORT_LINE.fullmatch(line)
    assert match, line
    assert (match[1], int(match[2]), match[3]) == (str(out), 5, "32²")
    total, render, encode = (float(match[i]) for i in (4, 5, 6))
    assert render > 0 and encode > 0
    assert render + encode <= total + 0.001  # each of the three rounded to 1 ms


def test_a_non_square_video_keeps_the_frame_size(capsys, tiny_ckpt, tmp_path):
    import av

    out = tmp_path / "wide.mp4"
    code, _, stderr = export(capsys, tiny_ckpt, out, "--res", "48x32", "--frames", "2")
    assert (code, stderr) == (0, "")
    with av.open(str(out)) as video:
        assert (video.streams.video[0].width, video.streams.video[0].height) == (48, 32)
