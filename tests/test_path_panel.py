"""The viewer's "Record path": keyframes taken from the view, saved as the file `--headless --path`
reads, and exported as an MP4 on a thread beside the UI (viewer/path_panel.py, viewer/path_export.py)."""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch

import main
from engine.camera_path import CameraPathError
from engine.latents import BlendLatent, InstanceLatent, RandomLatent
from engine.video import VideoError
from models.cameras import Orbit
from models.checkpoint import load_checkpoint
from models.resolution import Resolution
from viewer import headless as headless_export
from viewer import path_export
from viewer.path_panel import headless_command
from viewer.path_recording import PathRecording

CPU = torch.device("cpu")
RES = Resolution.square(24)
WIDE = Resolution(48, 32)
CLOSE_BOUND_S = 20.0  # one tiny frame takes milliseconds; this is the bound with slack


def decoded(video: Path) -> tuple[list[np.ndarray], float]:
    with av.open(str(video)) as container:
        rate = container.streams.video[0].average_rate
        return [f.to_ndarray(format="rgb24").astype(np.int16) for f in container.decode(video=0)], rate


def recorded(ckpt: Path) -> PathRecording:
    """Three keyframes as a user takes them: orbiting across azimuth 0, blending, then a new car."""
    recording = PathRecording(load_checkpoint(ckpt))
    recording.add(Orbit(340.0, 20.0, 2.5), InstanceLatent(0))
    recording.add(Orbit(30.0, 35.0, 2.5), BlendLatent(0, 2, 0.5))
    recording.add(Orbit(120.0, 10.0, 3.0), InstanceLatent(2))
    return recording


def finished(recording: PathRecording, timeout_s: float = 120.0):
    deadline = time.monotonic() + timeout_s
    while recording.exporting and time.monotonic() < deadline:
        time.sleep(0.05)
    status = recording.export.status()
    assert not status.running, status
    return status


def export(recording: PathRecording, out: Path, backend: str = "torchscript", res: Resolution = RES) -> None:
    recording.start_export(out, res, CPU, "fp32", backend)


def test_recorded_keyframes_save_the_file_headless_renders(tiny_ckpt, tmp_path):
    recording = recorded(tiny_ckpt)
    path_file = tmp_path / "path.json"
    assert recording.save(path_file) == f"wrote {path_file} (3 keyframes)"
    entries = json.loads(path_file.read_text())["keyframes"]
    assert [e["azimuth"] for e in entries] == [340.0, 390.0, 480.0]  # unwrapped: one way round
    assert entries[1] == {"azimuth": 390.0, "elevation": 35.0, "radius": 2.5,
                          "instance": 0, "blend_to": 2, "t": 0.5}
    out = tmp_path / "headless.mp4"
    assert main.main(["--ckpt", str(tiny_ckpt), "--headless", "--path", str(path_file), "--out", str(out),
                      "--frames", "5", "--fps", "10", "--res", str(RES), "--device", "cpu"]) == 0
    frames, rate = decoded(out)
    assert len(frames) == 5 and frames[0].shape == (24, 24, 3) and rate == 10


def encoded_pictures(monkeypatch, module) -> list[list[np.ndarray]]:
    """Each video `module` writes from now on: the pictures handed to its encoder."""
    videos: list[list[np.ndarray]] = []
    write = module.write_mp4

    def recording_write(out, pictures, fps):
        videos.append([np.array(picture) for picture in pictures])
        return write(out, iter(videos[-1]), fps)

    monkeypatch.setattr(module, "write_mp4", recording_write)
    return videos


def test_the_exported_video_has_the_frames_asked_and_is_the_headless_one(tiny_ckpt, tmp_path, monkeypatch):
    exported, rendered = encoded_pictures(monkeypatch, path_export), encoded_pictures(
        monkeypatch, headless_export)
    recording = recorded(tiny_ckpt)
    recording.frames, recording.fps = 7, 12.0
    out = tmp_path / "panel.mp4"
    export(recording, out)
    status = finished(recording)
    assert not status.failed and (status.done, status.total) == (7, 7)
    assert status.outcome == f"wrote {out} (7 frames, 24x24, 12 fps)"
    frames, rate = decoded(out)
    assert len(frames) == 7 and frames[0].shape == (24, 24, 3) and rate == 12
    assert np.abs(frames[0] - frames[-1]).mean() > 1  # the camera and the car moved

    recording.save(tmp_path / "path.json")
    headless = tmp_path / "headless.mp4"
    assert main.main(["--ckpt", str(tiny_ckpt), "--headless", "--path", str(tmp_path / "path.json"),
                      "--out", str(headless), "--frames", "7", "--fps", "12", "--res", str(RES),
                      "--device", "cpu", "--precision", "fp32"]) == 0  # as export() rendered
    # the same pictures went to the encoder: the videos may still differ by H.264's rounding, most
    # at the hard edge where the unit sphere's bound whitens the tiny model's background
    assert len(exported) == len(rendered) == 1
    assert all(np.array_equal(a, b) for a, b in zip(exported[0], rendered[0], strict=True))
    assert np.mean([np.abs(a - b).mean() for a, b in zip(frames, decoded(headless)[0], strict=True)]) <= 1


def test_a_wide_views_video_is_its_size_and_the_printed_command_renders_the_same(tiny_ckpt, tmp_path,
                                                                                 monkeypatch):
    recording = recorded(tiny_ckpt)
    recording.frames, recording.fps = 4, 10.0
    out = tmp_path / "wide.mp4"
    export(recording, out, res=WIDE)
    status = finished(recording)
    assert status.outcome == f"wrote {out} (4 frames, 48x32, 10 fps)"
    frames, _ = decoded(out)
    assert len(frames) == 4 and all(frame.shape == (32, 48, 3) for frame in frames)

    path_file = tmp_path / "path.json"
    recording.save(path_file)
    command = headless_command(tiny_ckpt, str(path_file), recording.frames, recording.fps, WIDE, "fp32",
                               "torchscript")  # as export() rendered
    assert "--res 48x32 --precision fp32 --backend torchscript" in command
    program, script, *args = shlex.split(command)
    assert (program, script) == ("python", "main.py")
    monkeypatch.chdir(tmp_path)  # the command writes video.mp4 in the working folder
    assert main.main([*args, "--device", "cpu"]) == 0
    headless = decoded(tmp_path / "video.mp4")[0]
    assert max(np.abs(a - b).max() for a, b in zip(frames, headless, strict=True)) <= 2


def test_a_code_outside_the_table_is_refused_and_the_keyframes_stay(tiny_ckpt):
    recording = recorded(tiny_ckpt)
    with pytest.raises(CameraPathError, match="random code is not in the latent table"):
        recording.add(Orbit(), RandomLatent(4))
    assert len(recording.keyframes) == 3
    recording.delete_last()
    assert [k.weights for k in recording.keyframes][-1] == ((0, 0.5), (2, 0.5))
    recording.clear()
    assert recording.keyframes == []


@pytest.mark.parametrize(("name", "needle"), [
    ("video.gif", "expected a .mp4 file"),
    ("none/video.mp4", "folder .*none does not exist"),
    ("folder.mp4", "is a folder, not a file"),
])
def test_a_video_file_that_could_never_be_written_is_refused_at_once(tiny_ckpt, tmp_path, name, needle):
    (tmp_path / "folder.mp4").mkdir()
    recording = recorded(tiny_ckpt)
    with pytest.raises(VideoError, match=needle):
        export(recording, tmp_path / name)
    assert recording.export is None


def test_no_keyframes_is_a_message_for_save_and_export(tiny_ckpt, tmp_path):
    recording = PathRecording(load_checkpoint(tiny_ckpt))
    save, start = lambda: recording.save(tmp_path / "p.json"), lambda: export(recording, tmp_path / "v.mp4")
    for action in (save, start):
        with pytest.raises(CameraPathError, match="no keyframes yet"):
            action()
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.pt"]  # the checkpoint alone


def test_a_failure_on_the_export_thread_is_an_outcome_not_a_crash(tiny_ckpt, tmp_path, monkeypatch):
    def full_disk(path, frames, fps):
        next(iter(frames))  # one frame rendered, then the encoder fails
        raise VideoError(f"{path}: encoding failed (No space left on device)")

    monkeypatch.setattr(path_export, "write_mp4", full_disk)
    recording = recorded(tiny_ckpt)
    export(recording, tmp_path / "v.mp4")
    status = finished(recording)
    assert status.failed
    assert status.outcome == (f"export failed: VideoError: {tmp_path / 'v.mp4'}: "
                              "encoding failed (No space left on device)")


def test_close_cancels_a_running_export_within_a_bound_and_leaves_no_file(tiny_ckpt, tmp_path):
    recording = recorded(tiny_ckpt)
    recording.frames = 100_000  # hours of frames: only the cancel ends it soon
    export(recording, tmp_path / "long.mp4")
    deadline = time.monotonic() + 60
    while recording.export.status().done < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert recording.exporting and recording.export.status().done >= 2
    start = time.monotonic()
    recording.close()
    assert time.monotonic() - start < CLOSE_BOUND_S and not recording.exporting
    assert recording.export.status().outcome == "export cancelled"
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.pt"]  # no video, no partial file
