"""Faults from outside, end to end: bad checkpoints and flags through the real command line, running
out of memory mid-frame, a failing CUDA-GL interop, and training killed with SIGKILL and resumed.

tests/test_checkpoint.py covers bad checkpoints at the library level and tests/test_cli.py the
common flag mistakes; this file adds what a user would meet at the command line beyond those.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import moderngl
import numpy as np
import pytest
import torch

import engine.texture
import main
from engine.texture import FrameTexture
from models.cameras import Orbit
from models.checkpoint import checkpoint_dict, load_checkpoint
from models.depth import gradient_depth
from models.lfn import LFNConfig, LightFieldNetwork
from models.occupancy import CPU_SCHEDULE
from models.renderer import CPU_WORKING_BYTES, LIVE_ACTIVATIONS, LFNRenderer, VolumetricRenderer
from models.resolution import Resolution
from models.volumetric import VolumetricConfig, VolumetricField
from tests.conftest import egl_context, names, tiny_lfn, tiny_volumetric
from tests.synthetic_cars import write_synthetic_dataset
from tests.test_train import TINY_ARGS
from tools.train import state_files

ROOT = Path(__file__).resolve().parents[1]
MAIN = ROOT / "main.py"
SHIPPED = ROOT / "checkpoints" / "cars.pt"
SHIPPED_VOLUMETRIC = ROOT / "checkpoints" / "cars_volumetric.pt"


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(MAIN), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> tuple[int, str]:
    """Exit code and the one stderr line, asserting that there is exactly one, `error: …`."""
    _, err = process.communicate(timeout=120)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return process.returncode, lines[0]


# ---------------------------------------------------------------- checkpoints from elsewhere


class Payload:
    """Unpickling this runs `touch marker`: a checkpoint that tries to run code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def good_dict() -> dict:
    return checkpoint_dict(tiny_lfn(), names(3), {"steps": 0, "dataset": "none", "metrics": {}})


def bad_checkpoint(case: str, folder: Path) -> Path:
    """A checkpoint file as it might arrive from elsewhere, broken in the way `case` names."""
    path = folder / f"{case}.pt"
    if case == "directory":
        path.mkdir()
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "random":
        path.write_bytes(random.Random(0).randbytes(4096))
    elif case == "truncated":  # the real shipped checkpoint, cut in half as by a failed download
        data = SHIPPED.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "wrong_content":
        torch.save({"weights": torch.zeros(3)}, path)
    elif case == "wrong_version":
        torch.save(dict(good_dict(), version=99), path)
    elif case == "wrong_shapes":
        torch.save(dict(good_dict(), latents=torch.zeros(3, 5)), path)
    elif case == "runs_code":
        torch.save(dict(good_dict(), meta=Payload(folder / "payload_ran")), path)
    return path


@pytest.mark.parametrize("case, problem", [
    ("missing", "no such file"),
    ("directory", "is a directory"),
    ("empty", "is empty"),
    ("random", "not a torch checkpoint"),
    ("truncated", "truncated or corrupt"),
    ("wrong_content", "not an LFN viewer checkpoint"),
    ("wrong_version", "format version 99 is not supported"),
    ("wrong_shapes", "latent table has shape (3, 5)"),
    ("runs_code", "refused"),
])
def test_a_bad_checkpoint_is_one_line_and_exit_1_in_viewer_and_benchmark(tmp_path, case, problem):
    path = bad_checkpoint(case, tmp_path)
    # Both at once: they are independent, and each pays for importing torch.
    processes = [start("--ckpt", str(path)), start("--benchmark", "--volumetric", str(path))]
    for process in processes:
        code, line = finish(process)
        assert code == 1 and str(path) in line and problem in line, line
    assert not (tmp_path / "payload_ran").exists()


def test_the_code_running_checkpoint_is_a_real_trap(tmp_path):
    """The payload does run when the file is unpickled without weights_only: the test above means it."""
    path = bad_checkpoint("runs_code", tmp_path)
    torch.load(path, weights_only=False)
    assert (tmp_path / "payload_ran").exists()


def test_a_checkpoint_of_the_other_model_kind_is_refused(tmp_path):
    processes = [start("--ckpt", str(SHIPPED_VOLUMETRIC), "--headless", "--out", str(tmp_path / "a.png")),
                 start("--benchmark", "--volumetric", str(SHIPPED))]
    assert finish(processes[0]) == (
        1, f"error: --ckpt {SHIPPED_VOLUMETRIC}: is a volumetric checkpoint, not an LFN")
    assert finish(processes[1]) == (
        1, f"error: --volumetric {SHIPPED}: is a lfn checkpoint, not a volumetric one")


# ---------------------------------------------------------------- flags (beyond tests/test_cli.py)


@pytest.mark.parametrize("args, message", [
    (["--headless", "--out", "/proc/view.png"], "error: --out /proc/view.png: not writable"),
    (["--benchmark", "--json", "/proc/bench.json"], "error: --json /proc/bench.json: not writable"),
    (["--headless", "--out", "{file}/view.png"], "error: --out {file}/view.png: folder {file} is a file"),
    (["--headless", "--out", "{dir}/view.png", "--instance", "-4"],
     "error: --instance -4 is out of range: this checkpoint has 3 instances"),
])
def test_bad_flag_values_after_parsing_exit_1_naming_the_flag(tiny_ckpt, tmp_path, args, message):
    # Tests run as root, which permission bits do not stop: /proc refuses new files whoever asks.
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    fill = {"file": str(a_file), "dir": str(tmp_path)}
    code, line = finish(start("--ckpt", str(tiny_ckpt), "--res", "16",
                              *[a.format(**fill) for a in args]))
    assert code == 1 and line.startswith(message.format(**fill)), line
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.parametrize("res", ["15", "4097", "-1", "1e3", "1920x4097", "15x1080", "1920x", "x1080",
                                 "0", "1920x1080x3"])
def test_resolutions_just_outside_the_range_exit_2(res, capsys):
    with pytest.raises(SystemExit) as exit_:
        main.parse_args(["--headless", "--out", "a.png", "--res", res])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and err.startswith("error: argument --res: ")


def test_resolutions_at_the_range_edges_are_accepted():
    assert main.parse_args(["--res", "16"]).res == [Resolution.square(16)]
    assert main.parse_args(["--res", "4096"]).res == [Resolution.square(4096)]
    assert main.parse_args(["--res", "4096x16"]).res == [Resolution(4096, 16)]


# ---------------------------------------------------------------- out of memory mid-frame


def out_of_memory_above(limit: int, render_rays, calls: list[int]):
    """render_rays that raises torch.OutOfMemoryError, like CUDA would, for chunks above `limit` rays."""

    def tight(*tensors: torch.Tensor):
        calls.append(tensors[0].shape[0])
        if tensors[0].shape[0] > limit:
            raise torch.OutOfMemoryError(f"pretend: {tensors[0].shape[0]} rays do not fit")
        return render_rays(*tensors)

    return tight


@pytest.mark.parametrize("kind", ["volumetric", "lfn"])
def test_out_of_memory_halves_the_chunk_and_the_image_is_unchanged(kind, monkeypatch):
    cam, res, limit = Orbit(azimuth=40.0).cam2world(), 16, 50
    if kind == "volumetric":
        renderer = VolumetricRenderer(tiny_volumetric(), max_samples=1 << 30)
        attribute = "_render_rays"
    else:
        renderer = LFNRenderer(tiny_lfn(), max_rays=1 << 24, bounded=False)  # every ray counted below
        attribute = "colors"
    whole = renderer.render(cam, res)  # one pass: the chunk holds the whole frame
    calls: list[int] = []
    monkeypatch.setattr(renderer, attribute, out_of_memory_above(limit, getattr(renderer, attribute), calls))
    chunked = renderer.render(cam, res)
    assert renderer.rays_per_chunk <= limit < 2 * renderer.rays_per_chunk  # halved just far enough
    assert sum(c for c in calls if c <= limit) == res * res  # every ray rendered once in the end
    # Matrix products of other batch sizes may round differently in the last bit.
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-6)
    calls.clear()
    renderer.render(cam, res)  # the halved chunk is kept: the next frame fits at once
    assert max(calls) == renderer.rays_per_chunk and len(calls) == -(-res * res // renderer.rays_per_chunk)


def test_out_of_memory_even_for_one_ray_is_raised_not_looped(monkeypatch):
    renderer = LFNRenderer(tiny_lfn(), max_rays=64)
    monkeypatch.setattr(renderer, "colors", out_of_memory_above(0, renderer.colors, []))
    with pytest.raises(torch.OutOfMemoryError):
        renderer.render(Orbit().cam2world(), 16)
    assert renderer.rays_per_chunk == 1


def test_cpu_chunks_keep_to_the_working_memory_budget():
    """No out-of-memory signal on a CPU (the OOM killer comes first): a chunk's activations stay
    under CPU_WORKING_BYTES, for the full-size networks too."""
    full_lfn = LightFieldNetwork(LFNConfig(num_instances=1))
    full_volumetric = VolumetricField(VolumetricConfig(num_instances=1))
    cases = ((tiny_lfn(), LFNRenderer), (full_lfn, LFNRenderer),
             (tiny_volumetric(), VolumetricRenderer), (full_volumetric, VolumetricRenderer))
    for model, renderer_class in cases:
        renderer = renderer_class(model)
        per_ray = model.config.width * model.evals_per_ray * LIVE_ACTIVATIONS * 4
        assert renderer.rays_per_chunk * per_ray <= CPU_WORKING_BYTES
        assert renderer.rays_per_chunk * per_ray > CPU_WORKING_BYTES // 2  # and use most of it
    assert LFNRenderer(full_lfn).rays_per_chunk < 512 * 512  # a 512² frame is more than one chunk
    # The accelerated baseline evaluates at most one marching round (its largest round's samples) of a
    # ray at once: its chunks hold that many samples' activations, not all 196.
    model = tiny_volumetric()
    accelerated = VolumetricRenderer(model, sampling="accelerated")
    per_ray = model.config.width * max(CPU_SCHEDULE.rounds) * LIVE_ACTIVATIONS * 4
    assert CPU_WORKING_BYTES // 2 < accelerated.rays_per_chunk * per_ray <= CPU_WORKING_BYTES


def test_depth_in_chunks_equals_depth_in_one_pass():
    model = tiny_lfn()
    whole, sliced = LFNRenderer(model, backend="eager"), LFNRenderer(model, backend="eager", max_rays=37)
    pose = Orbit(40.0, 25.0, 2.6).cam2world()
    a, b = gradient_depth(whole, pose, 24), gradient_depth(sliced, pose, 24)
    assert torch.equal(a.valid, b.valid)
    assert torch.allclose(a.depth, b.depth, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- CUDA-GL interop failing


class PretendCuda(torch.Tensor):
    """A CPU tensor that claims to be on CUDA, so the upload tries the interop path."""

    @property
    def is_cuda(self) -> bool:
        return True


class FailingInterop:
    """Registers nothing: every copy fails the way a driver without GL interop does."""

    error = "cudaGraphicsGLRegisterImage failed: cudaErrorOperatingSystem"
    created = 0

    def __init__(self):
        FailingInterop.created += 1

    def copy(self, rgba: torch.Tensor, texture: moderngl.Texture) -> None:
        raise RuntimeError(self.error)

    def forget(self, texture: moderngl.Texture) -> None:
        pass


def test_a_failing_interop_falls_back_to_the_cpu_copy_for_good(monkeypatch):
    ctx = egl_context()
    to_rgba = engine.texture.to_rgba32f
    monkeypatch.setattr(engine.texture, "to_rgba32f", lambda image: to_rgba(image).as_subclass(PretendCuda))
    monkeypatch.setattr(engine.texture, "CudaGLInterop", FailingInterop)
    FailingInterop.created = 0
    textures = FrameTexture(ctx)
    for _ in range(3):
        image = torch.rand(8, 12, 3)
        texture = textures.upload(image)
        back = np.frombuffer(texture.read(), np.float32).reshape(8, 12, 4)
        assert np.array_equal(back[..., :3], image.numpy()) and (back[..., 3] == 1).all()
    assert textures.texture_path == "cpu-copy"
    assert textures.fallback_reason == f"RuntimeError: {FailingInterop.error}"
    assert FailingInterop.created == 1  # tried once, then the CPU copy without asking again
    textures.release()
    ctx.release()


# ---------------------------------------------------------------- training killed and resumed

SAVE_EVERY, STEPS, KILLS = 10, 150, 3


def train_command(data: Path, out: Path, resume: bool) -> list[str]:
    return [sys.executable, "-u", "-m", "tools.train", "--data", str(data), "--out", str(out),
            "--steps", str(STEPS), "--save-every", str(SAVE_EVERY), "--eval-every", "100000",
            *TINY_ARGS, "--log-every", "1", *(["--resume"] if resume else [])]


def logged_steps(log: Path, offset: int) -> list[int]:
    """Steps this run logged: the log lines after byte `offset` (the log is appended across runs)."""
    if not log.exists():
        return []
    with log.open("rb") as f:
        f.seek(offset)
        lines = f.read().decode().splitlines()
    # A line cut by the kill is the one step this run may have lost mid-write.
    return [json.loads(line)["step"] for line in lines if line.endswith("}")]


def loadable_steps(out: Path) -> list[int]:
    """The step of every state file on disk, each loaded as resume would load it."""
    steps = []
    for path in state_files(out):
        state = torch.load(path, map_location="cpu", weights_only=True)
        assert int(path.stem.split("_")[1]) == state["step"], path
        steps.append(state["step"])
    return steps


def test_sigkill_at_random_moments_loses_at_most_one_save_interval(tmp_path):
    data = write_synthetic_dataset(tmp_path / "cars", cars=4, views=8, res=16)
    out, log = tmp_path / "run", tmp_path / "run" / "log.jsonl"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    chooser = random.Random()
    resumed, history = 0, []
    for run in range(KILLS + 1):
        start_step, offset = resumed, log.stat().st_size if log.exists() else 0
        stdout = tmp_path / f"stdout_{run}.txt"
        with stdout.open("w") as sink:
            process = subprocess.Popen(train_command(data, out, resume=run > 0), cwd=ROOT, env=env,
                                       stdout=sink, stderr=subprocess.DEVNULL)
        if run == KILLS:
            assert process.wait(timeout=120) == 0, (history, stdout.read_text())
        else:
            # A random moment: some steps past at least one new save, plus a fraction of a step,
            # so the kill lands anywhere in the loop, in a save's write included.
            target = start_step + chooser.randint(SAVE_EVERY + 1, 3 * SAVE_EVERY)
            deadline = time.monotonic() + 60
            while not (steps := logged_steps(log, offset)) or steps[-1] < target:
                assert process.poll() is None and time.monotonic() < deadline, (history, steps)
                time.sleep(0.002)
            time.sleep(chooser.uniform(0, 0.02))
            process.send_signal(signal.SIGKILL)
            assert process.wait(timeout=30) == -signal.SIGKILL
            reached = logged_steps(log, offset)[-1]
            on_disk = loadable_steps(out)  # every state left behind loads: none is torn
            history.append({"target": target, "reached": reached, "saved": on_disk})
            assert on_disk and max(on_disk) > start_step, history
            resumed = max(on_disk)
            assert 0 <= reached - resumed <= SAVE_EVERY, history
        if run > 0:  # the run began from the newest state on disk, nothing older
            found = re.search(r"resumed from step (\d+)", stdout.read_text())
            assert found and int(found.group(1)) == start_step, (history, stdout.read_text())
    assert max(loadable_steps(out)) == STEPS
    final = torch.load(state_files(out)[0], map_location="cpu", weights_only=True)
    assert final["optimizer"]["state"][0]["step"] == STEPS  # Adam counted each kept step once
    assert load_checkpoint(out / "model.pt").meta["steps"] == STEPS
