"""tools.plot_training: curves from a tools.train log, and its entry-point contract."""

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def run_tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.plot_training", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def write_log(path: Path, steps: int) -> None:
    records = [{"step": s, "seconds": s / 10, "loss": 0.01, "psnr": 20 + s / 100}
               for s in range(50, steps + 1, 50)]
    records += [{"step": s, "seconds": s / 10, "heldout_psnr": 19 + s / 200}
                for s in range(500, steps + 1, 500)]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")


def test_two_runs_plot_into_one_png(tmp_path):
    write_log(tmp_path / "a.jsonl", 2000)
    write_log(tmp_path / "b.jsonl", 1000)
    out = tmp_path / "curves.png"
    done = run_tool(str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"), "--out", str(out),
                    "--rays-per-step", "65536", "262144", "--reference", "29.1:earlier")
    assert done.returncode == 0, done.stderr
    with Image.open(out) as image:
        assert image.width > 800 and image.height > 300
        assert len(set(image.convert("RGB").getdata())) > 50  # curves, not a blank canvas


def test_bad_inputs_are_one_error_line(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"step": 1, "psnr": 20}\nnot json\n')
    (tmp_path / "empty.jsonl").write_text('{"step": 10, "heldout_psnr": 20}\n')
    out = str(tmp_path / "x.png")
    for args, code, needle in (
        ([str(tmp_path / "missing.jsonl"), "--out", out, "--rays-per-step", "1"], 1, "missing.jsonl"),
        ([str(tmp_path / "bad.jsonl"), "--out", out, "--rays-per-step", "1"], 1, "bad.jsonl:2"),
        ([str(tmp_path / "empty.jsonl"), "--out", out, "--rays-per-step", "1"], 1, "no training"),
        ([str(tmp_path / "bad.jsonl"), "--out", out, "--rays-per-step", "1", "2"], 2, "one per log"),
        ([str(tmp_path / "bad.jsonl"), "--out", out, "--rays-per-step", "1", "--reference", "x"], 2,
         "PSNR[:label]"),
    ):
        done = run_tool(*args)
        assert done.returncode == code, (args, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], lines
    assert not Path(out).exists()
