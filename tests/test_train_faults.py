"""Long training across processes, and the faults of data and training: each one clear error
naming the file, or handled (a NaN step skipped, a full disk, SIGTERM)."""

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import models.checkpoint
import tools.train
from engine.cardata import load_cars
from engine.evaluation import evaluate
from engine.train_step import BatchForward, TrainingStep, draw_batch, make_optimizer
from models.lfn import LFNConfig, LightFieldNetwork
from tests.synthetic_cars import write_synthetic_dataset
from tests.test_train import TINY_ARGS
from tools.train import load_latest_state, parse_args, settled, state_files, train

ROOT = Path(__file__).resolve().parents[1]
ONE_THREAD = dict(os.environ, OMP_NUM_THREADS="1")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_synthetic_dataset(tmp_path_factory.mktemp("cars"), cars=4, views=8, res=16)


def args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["--data", str(data), "--out", str(out), "--eval-every", "100000", *TINY_ARGS, *extra]


def train_process(argv: list[str], **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tools.train", *argv], cwd=ROOT,
                            env=ONE_THREAD, text=True, **popen)


def assert_same_state(a: dict, b: dict) -> None:
    assert a["step"] == b["step"]
    assert a["skipped_steps"] == b["skipped_steps"]
    assert torch.equal(a["torch_rng"], b["torch_rng"])
    assert a["model"].keys() == b["model"].keys()
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    for index, moments in a["optimizer"]["state"].items():
        for key, tensor in moments.items():
            assert torch.equal(tensor, b["optimizer"]["state"][index][key]), (index, key)
    assert [g["lr"] for g in a["optimizer"]["param_groups"]] == \
        [g["lr"] for g in b["optimizer"]["param_groups"]]


# ---------------------------------------------------------------- long runs across processes


@pytest.mark.parametrize("noise", [[], ["--latent-noise", "0.05"]], ids=["plain", "latent-noise"])
def test_two_processes_with_a_resume_equal_one_process_bit_for_bit(data, tmp_path, noise):
    # The lr decays over --steps 30 in both; the first process stops after 12 of them. The
    # latent noise draws from the global generator, which the state carries.
    split, whole = tmp_path / "split", tmp_path / "whole"
    common = ["--steps", "30", "--save-every", "1000", "--log-every", "5", *noise]
    first = train_process(args(data, split, *common, "--call-steps", "12"),
                          stdout=subprocess.PIPE)
    assert first.wait(timeout=120) == 0
    assert load_latest_state(split)[1]["step"] == 12
    second = train_process(args(data, split, *common, "--resume"), stdout=subprocess.PIPE)
    assert second.wait(timeout=120) == 0
    assert "resumed from step 12" in second.stdout.read()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the two processes: the same kernels, the same sums
    try:
        train(parse_args(args(data, whole, *common)))
    finally:
        torch.set_num_threads(threads)
    assert_same_state(load_latest_state(split)[1], load_latest_state(whole)[1])


# ---------------------------------------------------------------- data faults


def copy_dataset(data: Path, to: Path) -> Path:
    to.mkdir()
    for f in data.iterdir():
        (to / f.name).write_bytes(f.read_bytes())
    return to


def test_a_truncated_car_file_names_the_file(data, tmp_path):
    broken = copy_dataset(data, tmp_path / "cars")
    car = broken / "sphere001.npz"
    car.write_bytes(car.read_bytes()[: car.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"sphere001\.npz: unreadable car file \(truncated"):
        load_cars(broken, "train")


def test_a_corrupt_car_file_names_the_file(data, tmp_path):
    broken = copy_dataset(data, tmp_path / "cars")
    (broken / "sphere002.npz").write_bytes(os.urandom(4000))
    with pytest.raises(ValueError, match=r"sphere002\.npz: unreadable car file"):
        load_cars(broken, "train")


def test_a_manifest_naming_a_missing_car_names_both(data, tmp_path):
    broken = copy_dataset(data, tmp_path / "cars")
    (broken / "sphere001.npz").unlink()
    with pytest.raises(FileNotFoundError, match=r"sphere001\.npz: car 'sphere001' of .*manifest"):
        load_cars(broken, "train")


def test_a_car_of_another_resolution_and_nan_poses_are_named(data, tmp_path):
    other = write_synthetic_dataset(tmp_path / "small", cars=4, views=8, res=8)
    mixed = copy_dataset(data, tmp_path / "mixed")
    (mixed / "sphere002.npz").write_bytes((other / "sphere002.npz").read_bytes())
    with pytest.raises(ValueError, match=r"sphere002\.npz: images of shape \(10, 8, 8, 3\)"):
        load_cars(mixed, "train")
    nan_pose = copy_dataset(data, tmp_path / "nan")
    with np.load(data / "sphere001.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["cam2world"][3, 0, 0] = np.nan
    np.savez(nan_pose / "sphere001.npz", **arrays)
    with pytest.raises(ValueError, match=r"sphere001\.npz: camera poses hold NaN"):
        load_cars(nan_pose, "train")
    assert zipfile.is_zipfile(nan_pose / "sphere001.npz")


def test_resuming_or_evaluating_on_another_resolution_is_refused(data, tmp_path):
    out = tmp_path / "run"
    train(parse_args(args(data, out, "--steps", "3", "--save-every", "3")))
    other = write_synthetic_dataset(tmp_path / "small", cars=4, views=8, res=8)
    with pytest.raises(ValueError, match=r"state_000000003\.pt: cannot resume, it was trained "
                                         r"on 16² px views and .* holds 8² px"):
        train(parse_args(args(other, out, "--steps", "6", "--resume")))
    fewer = args(data, out, "--steps", "6", "--resume", "--max-cars", "2")
    with pytest.raises(ValueError, match=r"its latent table is for 3 cars that are not the 2"):
        train(parse_args(fewer))
    ckpt = models.checkpoint.load_checkpoint(out / "model.pt")
    with pytest.raises(ValueError, match=r"8² px views, but the checkpoint was trained on 16² px"):
        evaluate(ckpt, other, torch.device("cpu"), fit_steps=1, max_cars=1, max_views=1)


# ---------------------------------------------------------------- a NaN in a batch


@pytest.mark.parametrize("fused", [False, True], ids=["host-check", "fused-on-device"])
def test_a_step_with_non_finite_gradients_changes_nothing_and_is_counted(data, fused):
    cars = load_cars(data, "train")
    torch.manual_seed(0)
    model = LightFieldNetwork(LFNConfig(num_instances=3, latent_dim=8, width=16, hidden_layers=2))
    optimizer = make_optimizer(model, 1e-2, 1e-2, "fused" if fused else "foreach")
    step = TrainingStep(BatchForward(model, folded=True), model, optimizer, [1e-2, 1e-2], 1e-4,
                        torch.device("cpu"))
    views = torch.nonzero(cars.train_view).flatten()
    batch = draw_batch(cars, views, 3, 32, torch.Generator().manual_seed(0), "fast")
    step(batch, 1.0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    moments = {k: v.clone() for k, v in optimizer.state[model.latents.weight].items()}
    batch.target[1, 5, 0] = float("nan")
    assert not torch.isfinite(step(batch, 1.0).loss)
    assert int(step.skipped) == 1
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    for key, value in optimizer.state[model.latents.weight].items():
        assert torch.equal(value, moments[key]), key  # Adam's step count included
    batch.target[1, 5, 0] = 0.5
    step(batch, 1.0)
    assert int(step.skipped) == 1 and not torch.equal(model.latents.weight, before["latents.weight"])


def test_training_skips_a_nan_batch_logs_it_and_goes_on(data, tmp_path, monkeypatch):
    calls = []

    def draw_with_one_nan(*a, **k):
        batch = draw_batch(*a, **k)
        calls.append(1)
        if len(calls) == 7:
            batch.target[0, 0, 0] = float("nan")
        return batch

    monkeypatch.setattr(tools.train, "draw_batch", draw_with_one_nan)
    out = tmp_path / "run"
    train(parse_args(args(data, out, "--steps", "20", "--save-every", "20", "--log-every", "5")))
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["skipped_steps"] for r in rows] == [0, 1, 1, 1]
    _, state = load_latest_state(out)
    assert state["step"] == 20 and state["skipped_steps"] == 1
    assert int(state["optimizer"]["state"][0]["step"]) == 19  # Adam did 19 updates
    assert all(torch.isfinite(t).all() for t in state["model"].values())


# ---------------------------------------------------------------- the disk fills up


def test_a_full_disk_while_saving_keeps_the_last_good_state(data, tmp_path, monkeypatch):
    out = tmp_path / "run"
    real_save, saves = torch.save, []

    def save_until_the_disk_is_full(obj, f, *a, **k):
        saves.append(1)
        if len(saves) == 2:  # the second state: half written, then no space left
            f.write(b"\0" * 1000)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(models.checkpoint.torch, "save", save_until_the_disk_is_full)
    common = ["--steps", "30", "--save-every", "10", "--log-every", "10"]
    with pytest.raises(OSError, match=r"disk full while writing .*state_000000020\.pt; the last "
                                      r"good state .*state_000000010\.pt is kept") as failure:
        train(parse_args(args(data, out, *common)))
    assert failure.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert [p.name for p in state_files(out)] == ["state_000000010.pt"]
    assert not list(out.glob(".*.tmp"))  # the torn temp file is gone
    train(parse_args(args(data, out, *common, "--resume")))
    assert load_latest_state(out)[1]["step"] == 30


# ---------------------------------------------------------------- SIGTERM


def test_sigterm_writes_a_state_and_the_run_resumes_from_it(data, tmp_path):
    out, log = tmp_path / "run", tmp_path / "run" / "log.jsonl"
    process = train_process(args(data, out, "--steps", "100000", "--save-every", "100000",
                                 "--log-every", "1"), stdout=subprocess.PIPE)
    deadline = time.monotonic() + 90
    while not (log.exists() and len(log.read_text().splitlines()) >= 5):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    assert "stopped by SIGTERM" in process.stdout.read()
    _, state = load_latest_state(out)
    stopped = state["step"]
    assert stopped >= 5
    assert json.loads(log.read_text().splitlines()[-1])["step"] == stopped
    train(parse_args(args(data, out, "--steps", str(stopped + 3), "--save-every", "100000",
                          "--resume")))
    assert load_latest_state(out)[1]["step"] == stopped + 3


# ---------------------------------------------------------------- leaving a gloo process group


def test_settled_waits_until_no_other_owner_holds_the_tensor():
    # The autograd graph of `tensor * tensor` holds the tensor outside Python, as a gloo worker
    # holds a collective's tensor for a moment after the collective returned.
    tensor = torch.ones(3, requires_grad=True)
    graph = [tensor * tensor]
    assert tensor._use_count() > 1
    threading.Timer(0.05, graph.clear).start()
    start = time.monotonic()
    assert settled(tensor) is tensor
    assert tensor._use_count() == 1 and time.monotonic() - start >= 0.04
