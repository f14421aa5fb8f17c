"""Every entry point (main.py, tools/, bench/) answers bad input the same way (engine/cli.py): a real
subprocess per input in BAD_INPUTS, exit 2 for what argparse rejects and 1 for everything else,
exactly one stderr line `error: …` naming the flag or file, and no traceback anywhere.

    python -m tests.test_entry_points     # runs the table, prints it as RELIABILITY.md's table
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.cli import INTERRUPTED, run_entry_point
from engine.photo import load_photo
from models.checkpoint import save_checkpoint
from tests.conftest import names, tiny_lfn

ROOT = Path(__file__).resolve().parents[1]
PARALLEL = 4  # subprocesses at once: each mostly waits on importing torch
TIMEOUT_S = 120


@dataclass(frozen=True)
class BadInput:
    entry: str  # main.py or bench/x.py (a file), or tools.x / bench.x (a module)
    args: tuple[str, ...]  # relative to the folder write_inputs fills
    exit_code: int
    names: str  # the flag or file the error line must name

    def command(self) -> list[str]:
        launcher = [str(ROOT / self.entry)] if self.entry.endswith(".py") else ["-m", self.entry]
        return [sys.executable, *launcher, *self.args]

    def shown(self) -> str:
        launcher = self.entry if self.entry.endswith(".py") else f"-m {self.entry}"
        return " ".join(["python", launcher, *self.args])


def bad(entry: str, args: str, exit_code: int, names: str) -> BadInput:
    return BadInput(entry, tuple(args.split()), exit_code, names)


FIT = "--ckpt tiny.pt --pose 30,20 --out fitted.pt --steps 1 --fit-image"
BAD_INPUTS = [
    # main.py: the command line, checkpoints, output files
    bad("main.py", "--bogus", 2, "--bogus"),
    bad("main.py", "--headless --out view.png --res 8", 2, "--res"),
    bad("main.py", "--headless --out view.png --res 1920x", 2, "--res"),
    bad("main.py", "--ckpt missing.pt --headless --out view.png", 1, "missing.pt"),
    bad("main.py", "--ckpt a_folder --headless --out view.png", 1, "a_folder"),
    bad("main.py", "--ckpt corrupt.pt --headless --out view.png", 1, "corrupt.pt"),
    bad("main.py", "--ckpt truncated.pt --headless --out view.png", 1, "truncated.pt"),
    bad("main.py", "--ckpt car.png --headless --out view.png", 1, "car.png"),
    bad("main.py", "--ckpt tiny.pt --headless --out view.txt", 1, "--out"),
    bad("main.py", "--ckpt tiny.pt --headless --out a_folder", 1, "--out"),
    bad("main.py", "--ckpt tiny.pt --headless --out no_folder/view.png", 1, "--out"),
    bad("main.py", "--ckpt tiny.pt --headless --out folder.png", 1, "--out folder.png"),
    bad("main.py", "--ckpt tiny.pt --instance 9 --headless --out view.png", 1, "--instance"),
    bad("main.py", "--ckpt tiny.pt --benchmark --volumetric missing.pt", 1, "--volumetric"),
    bad("main.py", "--ckpt tiny.pt --benchmark --volumetric corrupt.pt", 1, "corrupt.pt"),
    # main.py --fit-image: the photo
    bad("main.py", f"{FIT} missing.png", 1, "--fit-image missing.png"),
    bad("main.py", f"{FIT} a_folder", 1, "--fit-image a_folder"),
    bad("main.py", f"{FIT} not_an_image.png", 1, "--fit-image not_an_image.png"),
    bad("main.py", f"{FIT} truncated.png", 1, "--fit-image truncated.png"),
    bad("main.py", f"{FIT} huge.png", 1, "--fit-image huge.png"),
    bad("main.py", f"{FIT} bomb.png", 1, "--fit-image bomb.png"),
    bad("main.py", f"{FIT} wide.png", 1, "--fit-image wide.png"),
    bad("main.py", f"{FIT} dark_background.png", 1, "--fit-image dark_background.png"),
    bad("main.py", f"{FIT} car.png --steps 0", 2, "--steps"),
    bad("main.py", "--ckpt tiny.pt --pose 30,20 --out fitted.png --fit-image car.png", 1, "--out"),
    # tools/
    bad("tools.evaluate", "--ckpt nope.pt --data x", 1, "nope.pt"),
    bad("tools.evaluate", "--ckpt tiny.pt --data no_data_set", 1, "no_data_set"),
    bad("tools.evaluate", "--ckpt tiny.pt", 2, "--data"),
    bad("tools.evaluate_depth", "--ckpt tiny.pt --data no_data_set", 1, "no_data_set"),
    bad("tools.evaluate_depth", "--ckpt tiny.pt --data x --backend fancy", 2, "--backend"),
    bad("tools.train", "--data no_data_set --out run", 1, "no_data_set"),
    bad("tools.train", "--data no_data_set --out run --steps many", 2, "--steps"),
    bad("tools.make_dataset", "--torcs /nonexistent --out data_set", 1, "--torcs /nonexistent"),
    bad("tools.make_dataset", "--source torcs --out data_set", 1, "--torcs"),
    bad("tools.make_dataset", "--cars 3", 2, "--out"),
    bad("tools.make_dataset", "--pack-torcs /nonexistent pack", 1, "--pack-torcs /nonexistent"),
    bad("tools.make_dataset", "--sumo /nonexistent --out data_set", 1, "--sumo /nonexistent"),
    bad("tools.make_dataset", "--flightgear a_folder --out data_set", 1, "--flightgear a_folder"),
    bad("tools.make_dataset", "--procedural-style v3 --out data_set", 2, "--procedural-style"),
    bad("tools.make_dataset", "--pack-flightgear /nonexistent pack", 1,
        "--pack-flightgear /nonexistent"),
    bad("tools.contact_sheet", "--torcs /nonexistent", 1, "/nonexistent"),
    bad("tools.contact_sheet", "--sumo /nonexistent", 1, "--sumo /nonexistent"),
    bad("tools.contact_sheet", "--procedural x", 2, "--procedural"),
    # bench/
    bad("bench.soak", "--ckpt missing.pt", 1, "missing.pt"),
    bad("bench.soak", "--ckpt tiny.pt --res 8", 2, "--res"),
    bad("bench.fit_speed", "--ckpt tiny.pt --data no_data_set", 1, "no_data_set"),
    bad("bench.fit_speed", "--ckpt corrupt.pt --data no_data_set", 1, "corrupt.pt"),
    bad("bench.ddp_scaling", "--gpus 1 --data x", 2, "--gpus"),
    bad("bench.ddp_scaling", "--from missing.json", 1, "--from missing.json"),
    bad("bench.ddp_scaling", "--from car.png", 1, "--from car.png"),
    bad("bench/frame_path.py", "--ckpt missing.pt", 1, "missing.pt"),
    bad("bench/fit_step.py", "--ckpt corrupt.pt", 1, "corrupt.pt"),
    bad("bench.fit_step", "--rays many", 2, "--rays"),
    bad("bench/thread_frames.py", "--ckpt missing.pt", 1, "missing.pt"),
    bad("bench.thread_frames", "--precision fp64", 2, "--precision"),
    bad("bench/interop_paths.py", "--ckpt corrupt.pt", 1, "corrupt.pt"),
    bad("bench/depth_skip.py", "--ckpt a_folder", 1, "a_folder"),
    bad("bench/gpu_check.py", "--res big", 2, "--res"),
    bad("bench.kernel_stats", "--arch sm90", 2, "--arch"),
    bad("bench/chaos.py", "--bogus", 2, "--bogus"),
    bad("bench.chaos", "--minutes soon", 2, "--minutes"),
    bad("bench/chaos.py", "--ckpt missing.pt", 1, "--ckpt missing.pt"),
    bad("bench.chaos", "--ckpt a_folder", 1, "--ckpt a_folder"),
]


def car_image(background: int = 255, size: tuple[int, int] = (64, 64)) -> Image.Image:
    pixels = np.full((size[1], size[0], 3), background, np.uint8)
    pixels[size[1] // 3: 2 * size[1] // 3, size[0] // 6: 5 * size[0] // 6] = (200, 30, 30)
    return Image.fromarray(pixels)


def write_inputs(folder: Path) -> None:
    """The files BAD_INPUTS names, each bad in its own way (and a good checkpoint and photo)."""
    save_checkpoint(tiny_lfn(), names(3), {"steps": 0, "dataset": "none", "metrics": {}},
                    folder / "tiny.pt")
    tiny = (folder / "tiny.pt").read_bytes()
    (folder / "truncated.pt").write_bytes(tiny[: len(tiny) // 2])
    (folder / "corrupt.pt").write_bytes(random.Random(0).randbytes(4096))
    (folder / "a_folder").mkdir()
    (folder / "folder.png").mkdir()
    (folder / "no_data_set").mkdir()
    car_image().save(folder / "car.png")
    png = (folder / "car.png").read_bytes()
    (folder / "truncated.png").write_bytes(png[: len(png) // 2])
    (folder / "not_an_image.png").write_text("a text file with a .png name\n")
    Image.new("L", (8000, 8000), 255).save(folder / "huge.png")  # above engine/photo's limit
    Image.new("1", (14000, 14000), 1).save(folder / "bomb.png")  # above PIL's bomb guard too
    car_image(size=(96, 64)).save(folder / "wide.png")
    car_image(background=0).save(folder / "dark_background.png")


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    stdout: str
    stderr: str


def run_one(case: BadInput, folder: Path) -> Outcome:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(case.command(), cwd=folder, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S)
    return Outcome(done.returncode, done.stdout, done.stderr)


def run_all(folder: Path) -> list[Outcome]:
    with ThreadPoolExecutor(PARALLEL) as pool:
        return list(pool.map(lambda case: run_one(case, folder), BAD_INPUTS))


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> list[Outcome]:
    folder = tmp_path_factory.mktemp("bad_inputs")
    write_inputs(folder)
    return run_all(folder)


@pytest.mark.parametrize("index", range(len(BAD_INPUTS)),
                         ids=[case.shown().removeprefix("python ") for case in BAD_INPUTS])
def test_a_bad_input_is_one_error_line_and_its_exit_code(outcomes, index):
    case, outcome = BAD_INPUTS[index], outcomes[index]
    assert "Traceback" not in outcome.stdout + outcome.stderr, outcome.stderr
    lines = outcome.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), outcome.stderr
    assert case.names in lines[0], lines[0]
    assert outcome.exit_code == case.exit_code, lines[0]


@pytest.mark.parametrize("entry", ["main.py", "tools.evaluate", "bench.soak", "bench/chaos.py"])
def test_debug_shows_the_traceback(entry, tmp_path):
    args = ("--ckpt", "missing.pt", "--debug") + (("--data", "x") if entry == "tools.evaluate" else ())
    outcome = run_one(BadInput(entry, args, 1, "missing.pt"), tmp_path)
    assert outcome.exit_code == 1 and "Traceback" in outcome.stderr and "missing.pt" in outcome.stderr


def raise_(error: BaseException):
    raise error


@pytest.mark.parametrize("body, code, stderr", [
    (lambda: 3, 3, ""),
    (lambda: Path("returned, not a status"), 0, ""),
    (lambda: raise_(ValueError("a.png: not\n  square")), 1, "error: a.png: not square\n"),
    (lambda: raise_(RuntimeError()), 1, "error: RuntimeError\n"),
    (lambda: raise_(KeyboardInterrupt()), INTERRUPTED, ""),
])
def test_run_entry_point_maps_outcomes_to_exit_codes(body, code, stderr, capsys):
    assert run_entry_point(body, debug=False) == code
    assert capsys.readouterr().err == stderr


def test_run_entry_point_with_debug_raises():
    with pytest.raises(ValueError, match="kept"):
        run_entry_point(lambda: raise_(ValueError("kept")), debug=True)


def photo_in_mode(mode: str) -> tuple[Image.Image, np.ndarray]:
    """The test car as a photo of PIL mode `mode`, and the RGB on white it shows."""
    car = car_image()
    if mode in ("I;16", "I"):  # 16-bit gray (PNG opens as I;16, TIFF keeps I): scaled, not clipped
        gray = np.asarray(car.convert("L"))
        sixteen = gray.astype(np.uint16) * 257
        image = Image.fromarray(sixteen if mode == "I;16" else sixteen.astype(np.int32))
        return image, np.repeat(gray[..., None], 3, -1)
    if mode in ("LA", "RGBA"):  # a transparent background: composited on white
        shown = car.convert(mode[:-1]).convert("RGB")
        alpha = np.where((np.asarray(car) == 255).all(-1), 0, 255).astype(np.uint8)
        return Image.fromarray(np.dstack([np.asarray(car), alpha])).convert(mode), np.asarray(shown)
    image = car.convert(mode)
    return image, np.asarray(image.convert("RGB"))


@pytest.mark.parametrize("mode, suffix", [("L", ".png"), ("LA", ".png"), ("RGBA", ".png"),
                                          ("P", ".png"), ("I;16", ".png"), ("I", ".tif")])
def test_photos_of_every_pixel_format_load_on_white(mode, suffix, tmp_path):
    image, shown = photo_in_mode(mode)
    path = tmp_path / f"photo{suffix}"
    image.save(path)
    assert Image.open(path).mode == mode
    loaded = load_photo(path, 32)
    expected = np.asarray(Image.fromarray(shown).resize((32, 32), Image.LANCZOS))
    assert loaded.shape == (32, 32, 3) and loaded.dtype == np.uint8
    assert np.abs(loaded.astype(int) - expected).max() <= 2


def markdown_table(outcomes: list[Outcome]) -> str:
    rows = ["| bad input | exit | stderr |", "|---|---|---|"]
    for case, outcome in zip(BAD_INPUTS, outcomes, strict=True):
        message = outcome.stderr.strip().replace("|", "\\|")
        rows.append(f"| `{case.shown()}` | {outcome.exit_code} | `{message}` |")
    return "\n".join(rows)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as temp:
        write_inputs(Path(temp))
        print(markdown_table(run_all(Path(temp))))


def bench_scripts() -> list[Path]:
    return sorted(p for p in (ROOT / "bench").glob("*.py") if '__name__ == "__main__"' in p.read_text())


def test_every_bench_script_runs_by_its_path_from_any_folder(tmp_path):
    """`python bench/x.py` as well as `python -m bench.x`: nothing on PYTHONPATH, another folder."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    scripts = bench_scripts()
    with ThreadPoolExecutor(PARALLEL) as pool:
        done = list(pool.map(lambda script: subprocess.run(
            [sys.executable, str(script), "--help"], cwd=tmp_path, env=env, capture_output=True,
            text=True, timeout=TIMEOUT_S), scripts))
    failed = {script.name: outcome.stderr.strip().splitlines()[-1:]
              for script, outcome in zip(scripts, done, strict=True)
              if outcome.returncode != 0 or "usage:" not in outcome.stdout}
    assert len(scripts) >= 10 and not failed, failed  # 14 on 2026-12-06
