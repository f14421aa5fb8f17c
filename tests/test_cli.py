"""The command line through a real subprocess: exit codes and the one-line stderr."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

MAIN = Path(__file__).resolve().parents[1] / "main.py"


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(MAIN), *args], capture_output=True, text=True,
                          timeout=120, env=env)


def assert_one_line_error(result, code: int, *needles: str) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.parametrize("args, needle", [
    (["--bogus"], "--bogus"),
    (["--res", "8"], "--res"),
    (["--res", "5000"], "--res"),
    (["--res", "abc"], "--res"),
    (["--res", "1920x5000"], "5000 is outside 16..4096"),
    (["--res", "1920by1080"], "'1920by1080' is not N or WxH"),
    (["--device", "tpu"], "--device"),
    (["--headless", "--out", "x.png", "--mode", "fancy"], "--mode"),
    (["--headless"], "--out"),
    (["--fit-image", "a.png"], "--out"),
    (["--fit-image", "a.png", "--pose", "1,2,3,4", "--out", "c.pt"], "--pose"),
    (["--headless", "--benchmark", "--out", "x.png"], "mode"),
    (["--benchmark", "--summed-depth"], "argument --summed-depth: used by --headless, the viewer"),
    (["--fit-image", "a.png", "--out", "c.pt", "--mode", "rgb"], "argument --mode: used by"),
    (["--web", "--gradient-depth"], "argument --gradient-depth: used by --headless only"),
])
def test_argparse_rejections_exit_2_with_one_line(args, needle):
    assert_one_line_error(run(*args), 2, needle)


def test_missing_checkpoint_exits_1(tmp_path):
    assert_one_line_error(run("--ckpt", str(tmp_path / "none.pt")), 1, "none.pt", "no such file")


def test_bad_flags_after_parsing_exit_1(tiny_ckpt, tmp_path):
    out = str(tmp_path / "a.png")
    assert_one_line_error(run("--ckpt", str(tiny_ckpt), "--instance", "7", "--headless", "--out",
                              out), 1, "--instance")
    assert_one_line_error(run("--ckpt", str(tiny_ckpt), "--headless", "--out",
                              str(tmp_path / "no" / "a.png")), 1, "--out")
    assert_one_line_error(run("--ckpt", str(tiny_ckpt), "--headless", "--out",
                              str(tmp_path / "a.txt")), 1, "--out")


def test_cuda_requested_without_cuda_exits_1(tiny_ckpt, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = run("--ckpt", str(tiny_ckpt), "--device", "cuda", "--headless", "--out",
                 str(tmp_path / "a.png"))
    assert_one_line_error(result, 1, "--device cuda")


def test_headless_png_from_a_tiny_checkpoint(tiny_ckpt, tmp_path):
    out = tmp_path / "view.png"
    result = run("--ckpt", str(tiny_ckpt), "--headless", "--out", str(out), "--res", "32",
                 "--instance", "-1")
    assert result.returncode == 0, result.stderr
    image = np.asarray(Image.open(out))
    assert image.shape[:2] == (32, 32) and image.std() > 1.0


def test_res_takes_a_square_side_or_width_x_height():
    import main
    from models.resolution import Resolution

    assert main.parse_args(["--res", "1920x1080"]).res == [Resolution(1920, 1080)]
    assert main.parse_args(["--res", "256"]).res == [Resolution(256, 256)]
    assert main.parse_args([]).res == [Resolution(256, 256)]
    assert main.parse_args(["--benchmark", "--res", "512", "1920x1080"]).res == [
        Resolution(512, 512), Resolution(1920, 1080)]


def test_help_explains_each_flag():
    result = run("--help")
    assert result.returncode == 0
    for flag in ("--ckpt", "--instance", "--res", "--device", "--debug", "--headless",
                 "--benchmark", "--fit-image", "--pose", "--steps", "--stats", "--exit-after"):
        assert flag in result.stdout
