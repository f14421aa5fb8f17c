"""Camera paths (engine/camera_path.py) and MP4 export (engine/video.py)."""

import json

import av
import numpy as np
import pytest

from engine.camera_path import (
    CameraPath,
    CameraPathError,
    Keyframe,
    camera_path,
    catmull_rom,
    instance_blend,
    read_camera_path,
    view_keyframe,
    write_camera_path,
)
from engine.latents import BlendLatent, FittedLatent, InstanceLatent, RandomLatent
from engine.video import VideoError, write_mp4
from models.cameras import Orbit


def test_catmull_rom_passes_through_its_middle_points_and_keeps_a_line_straight():
    points = [0.0, 1.0, 5.0, 2.0]
    assert catmull_rom(points, 0.0) == 1.0 and catmull_rom(points, 1.0) == 5.0
    for u in (0.1, 0.5, 0.9):  # evenly spaced collinear points: exactly linear
        assert catmull_rom([0.0, 10.0, 20.0, 30.0], u) == pytest.approx(10.0 + 10.0 * u)


def test_turntable_turns_once_at_constant_speed_and_keeps_height():
    frames = camera_path("orbit", Orbit(30.0, 25.0, 2.5), instance=2, num_instances=5).frames(12)
    assert [f.orbit.azimuth for f in frames] == pytest.approx([30.0 + 30.0 * k for k in range(12)])
    assert {f.orbit.elevation for f in frames} == {25.0} and {f.orbit.radius for f in frames} == {2.5}
    assert {f.weights for f in frames} == {((2, 1.0),)}


def test_open_path_ends_on_its_last_keyframe_and_blends_codes_linearly(tmp_path):
    path = tmp_path / "path.json"
    path.write_text(json.dumps({"keyframes": [
        {"azimuth": 0, "elevation": 10, "radius": 2.0, "instance": 0},
        {"azimuth": 90, "elevation": 40, "instance": 1, "blend_to": 3, "t": 0.25},
    ]}))
    frames = read_camera_path(path, default_instance=0, num_instances=4).frames(5)
    assert (frames[0].orbit.azimuth, frames[0].orbit.elevation) == (0.0, 10.0)
    assert (frames[-1].orbit.azimuth, frames[-1].orbit.elevation) == (90.0, 40.0)
    assert {f.orbit.radius for f in frames} == {2.0}  # the radius carries over to later keyframes
    assert dict(frames[-1].weights) == pytest.approx({1: 0.75, 3: 0.25})
    middle = dict(frames[2].weights)
    assert middle == pytest.approx({0: 0.5, 1: 0.375, 3: 0.125})
    assert all(sum(w for _, w in f.weights) == pytest.approx(1.0) for f in frames)


def test_loop_crosses_its_seam_without_jumping_back():
    weights = ((0, 1.0),)
    even = tuple(Keyframe(Orbit(a, 20.0, 3.0), weights) for a in (0.0, 90.0, 180.0, 270.0))
    azimuths = [f.orbit.azimuth for f in CameraPath(even, loop=True).frames(40)]
    assert azimuths == pytest.approx([9.0 * k for k in range(40)])  # stops one step before its start
    uneven = tuple(Keyframe(Orbit(a, 20.0, 3.0), weights) for a in (0.0, 100.0, 200.0, 300.0))
    steps = np.diff([f.orbit.azimuth for f in CameraPath(uneven, loop=True).frames(40)])
    assert np.all(steps > 0)  # the seam segment 300 -> 360 is shorter, but never turns back


@pytest.mark.parametrize(("content", "needle"), [
    ("{", "not JSON"),
    ('{"keyframes": []}', "non-empty"),
    ('{"keyframes": [{"azimuth": 0}]}', 'keyframe 0: \'"elevation" is missing\''),
    ('{"keyframes": [{"azimuth": 0, "elevation": 95}]}', "|elevation| <= 89"),
    ('{"keyframes": [{"azimuth": 0, "elevation": 0, "radius": -1}]}', "radius > 0"),
    ('{"keyframes": [{"azimuth": "a", "elevation": 0}]}', '"azimuth" must be a number'),
    ('{"keyframes": [{"azimuth": 0, "elevation": 0, "instance": 9}]}', "out of range"),
    ('{"keyframes": [{"azimuth": 0, "elevation": 0, "t": 0.5}]}', '"blend_to"'),
    ('{"keyframes": [{"azimuth": 0, "elevation": 0, "zoom": 2}]}', "unknown field(s) zoom"),
    ('{"keyframes": [{"azimuth": 0, "elevation": 0}], "loop": "yes"}', '"loop"'),
])
def test_malformed_path_files_name_the_file_and_the_problem(tmp_path, content, needle):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(CameraPathError) as error:
        read_camera_path(path, default_instance=0, num_instances=3)
    assert str(error.value).startswith(str(path)) and needle in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_path_file_is_one_error(tmp_path):
    with pytest.raises(CameraPathError, match="cannot be read"):
        camera_path(str(tmp_path / "none.json"), Orbit(), 0, 3)


def test_mp4_round_trip_keeps_frame_count_size_and_content(tmp_path):
    out = tmp_path / "car.mp4"
    ramp = np.linspace(0, 255, 33, dtype=np.uint8)
    frames = [np.stack([np.roll(ramp, k)[None, :].repeat(17, 0)] * 3, axis=-1) for k in range(7)]
    assert write_mp4(out, iter(frames), fps=12) == 7
    with av.open(str(out)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 7
    assert decoded[0].shape == (18, 34, 3)  # odd sides padded to even for yuv420p
    error = np.abs(decoded[3][:17, :33].astype(int) - frames[3].astype(int)).mean()
    assert error < 6  # lossy, but the picture is there
    assert not list(tmp_path.glob(".*partial"))


def test_mp4_refuses_frames_of_changing_size_and_leaves_no_file(tmp_path):
    out = tmp_path / "car.mp4"
    frames = [np.zeros((16, 16, 3), np.uint8) + 40, np.zeros((32, 16, 3), np.uint8)]
    with pytest.raises(VideoError, match="frame 1 is 16x32"):
        write_mp4(out, frames, fps=10)
    assert list(tmp_path.iterdir()) == []


def test_headless_renders_a_path_file_to_an_mp4_with_the_asked_frame_count(tiny_ckpt, tmp_path):
    import main

    path = tmp_path / "path.json"
    path.write_text(json.dumps({"keyframes": [
        {"azimuth": 0, "elevation": 20, "instance": 0},
        {"azimuth": 90, "elevation": 30, "radius": 2.5, "instance": 0, "blend_to": 2, "t": 1.0}]}))
    out = tmp_path / "car.mp4"
    assert main.main(["--ckpt", str(tiny_ckpt), "--headless", "--out", str(out), "--res", "32",
                      "--frames", "6", "--fps", "24", "--path", str(path), "--device", "cpu"]) == 0
    with av.open(str(out)) as container:
        assert container.streams.video[0].average_rate == 24
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 6 and decoded[0].shape == (32, 32, 3)
    assert np.abs(decoded[0].astype(int) - decoded[-1].astype(int)).mean() > 1  # camera and car moved


def test_headless_names_the_path_flag_for_a_bad_file(tiny_ckpt, tmp_path, capsys):
    import main

    bad = tmp_path / "bad.json"
    bad.write_text('{"keyframes": [{"azimuth": 0}]}')
    code = main.main(["--ckpt", str(tiny_ckpt), "--headless", "--out", str(tmp_path / "c.mp4"),
                      "--path", str(bad), "--device", "cpu"])
    assert code == 1
    assert capsys.readouterr().err.strip() == f"error: --path {bad}: keyframe 0: '\"elevation\" is missing'"
    assert not (tmp_path / "c.mp4").exists()


def test_a_written_path_file_reads_back_as_the_same_path(tmp_path):
    keyframes = (Keyframe(Orbit(10.0, 20.0, 2.5), ((1, 1.0),)),
                 Keyframe(Orbit(-80.0, 35.0, 3.0), instance_blend(2, 0, 0.25)),
                 Keyframe(Orbit(400.0, -10.0, 4.0), ((0, 1.0),)))
    out = tmp_path / "path.json"
    write_camera_path(out, CameraPath(keyframes, loop=True))
    read = read_camera_path(out, default_instance=2, num_instances=3)
    assert read.loop and len(read.keyframes) == 3
    for written, back in zip(keyframes, read.keyframes, strict=True):
        assert back.orbit == written.orbit
        assert dict(back.weights) == pytest.approx(dict(written.weights))
    assert list(tmp_path.iterdir()) == [out]  # no partial file left


def test_writing_into_a_missing_folder_is_one_error_naming_the_file(tmp_path):
    out = tmp_path / "none" / "path.json"
    with pytest.raises(CameraPathError) as error:
        write_camera_path(out, CameraPath((Keyframe(Orbit(), ((0, 1.0),)),)))
    assert str(error.value).startswith(f"{out}: cannot be written") and "\n" not in str(error.value)


def test_a_view_keyframe_takes_the_short_way_round_and_leaves_the_pan_out():
    first = view_keyframe(Orbit(350.0, 20.0, 2.0, target=(0.1, 0.0, 0.0)), InstanceLatent(1))
    assert first.orbit == Orbit(350.0, 20.0, 2.0) and first.weights == ((1, 1.0),)
    second = view_keyframe(Orbit(10.0, 25.0, 2.0), BlendLatent(2, 0, 0.25), previous=first)
    assert second.orbit.azimuth == 370.0  # across 360, not 340 degrees back
    assert dict(second.weights) == pytest.approx({0: 0.25, 2: 0.75})
    assert view_keyframe(Orbit(200.0, 0.0), InstanceLatent(0), previous=second).orbit.azimuth == 200.0


@pytest.mark.parametrize("selection", [RandomLatent(3), FittedLatent(1, "photo", 0, 0.0)])
def test_a_code_outside_the_latent_table_is_no_keyframe(selection):
    with pytest.raises(CameraPathError, match="not in the latent table"):
        view_keyframe(Orbit(), selection)
