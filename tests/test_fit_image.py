"""Single-image inference: fitting recovers a view, the CLI appends an instance, bad photos fail."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.metrics import psnr
from models.cameras import intrinsics, orbit_pose
from models.checkpoint import load_checkpoint
from models.fitting import MIRROR_WEIGHT, fit_latent
from models.modulation_fit import MODULATION_STEPS
from models.renderer import LFNRenderer
from tests.conftest import tiny_lfn

MAIN = Path(__file__).resolve().parents[1] / "main.py"


def test_fitting_a_latent_recovers_a_view_of_a_known_latent():
    model = tiny_lfn(num_instances=4)
    renderer = LFNRenderer(model, bounded=False)  # the network's view on every ray, as the fit sees it
    pose = orbit_pose(40, 25)
    renderer.set_latent(model.latents.weight[2])
    target = renderer.render(pose, 24)
    target_u8 = (target * 255).round().to(torch.uint8)
    renderer.set_latent(model.latents.weight.mean(0))
    before = psnr(renderer.render(pose, 24), target)
    fit = fit_latent(model, target_u8[None], pose[None], intrinsics(24, 24), steps=150, lr=5e-2)
    renderer.set_latent(fit.latent)
    after = psnr(renderer.render(pose, 24), target)
    assert after > 30.0 and after > before + 5


def photo(path: Path, res: int = 32, border: bool = True) -> Path:
    image = np.full((res, res, 3), 255, np.uint8)
    image[8:-8, 6:-6] = (200, 30, 30)
    if not border:
        image[:] = 60
    Image.fromarray(image).save(path)
    return path


def run(*args):
    return subprocess.run([sys.executable, str(MAIN), *args], capture_output=True, text=True,
                          timeout=120)


def test_cli_appends_the_fitted_car_as_the_last_instance(tiny_ckpt, tmp_path):
    out = tmp_path / "car.pt"
    result = run("--ckpt", str(tiny_ckpt), "--fit-image", str(photo(tmp_path / "red.png")),
                 "--pose", "30,20", "--steps", "5", "--out", str(out))
    assert result.returncode == 0, result.stderr
    before, after = load_checkpoint(tiny_ckpt), load_checkpoint(out)
    assert len(after.instance_names) == len(before.instance_names) + 1
    assert after.instance_names[-1] == "red"
    assert torch.equal(after.latents[:-1], before.latents)
    shown = run("--ckpt", str(out), "--instance", "-1", "--headless", "--out",
                str(tmp_path / "v.png"), "--res", "16")
    assert shown.returncode == 0, shown.stderr


def test_cli_mirror_weight_reaches_the_fit_and_the_meta(tiny_ckpt, tmp_path):
    out, image = tmp_path / "car.pt", str(photo(tmp_path / "red.png"))
    common = ["--ckpt", str(tiny_ckpt), "--fit-image", image, "--pose", "30,20", "--steps", "5",
              "--out", str(out)]
    assert run(*common).returncode == 0
    default = load_checkpoint(out)
    assert default.meta["fit_mirror_weight"] == MIRROR_WEIGHT
    assert run(*common, "--mirror-weight", "0").returncode == 0
    alone = load_checkpoint(out)
    assert alone.meta["fit_mirror_weight"] == 0.0
    assert not torch.equal(alone.latents[-1], default.latents[-1])  # the mirrored rays moved it
    for bad in (["--mirror-weight", "-1"], ["--mirror-weight", "x"]):
        rejected = run(*common, *bad)
        assert rejected.returncode == 2 and "--mirror-weight" in rejected.stderr
    elsewhere = run("--ckpt", str(tiny_ckpt), "--headless", "--out", str(tmp_path / "v.png"),
                    "--mirror-weight", "0")
    assert elsewhere.returncode == 2 and "used by --fit-image only" in elsewhere.stderr
    # main.py names the default without importing torch to parse: it must be the fit's
    assert f"(default {MIRROR_WEIGHT};" in " ".join(run("--help").stdout.split())


def test_cli_refines_past_the_latent_and_the_viewer_shows_it(tiny_ckpt, tmp_path):
    image = str(photo(tmp_path / "red.png"))
    common = ["--ckpt", str(tiny_ckpt), "--fit-image", image, "--pose", "30,20", "--steps", "5"]
    refined, plain = tmp_path / "refined.pt", tmp_path / "plain.pt"
    result = run(*common, "--modulation-steps", "30", "--out", str(refined))
    assert result.returncode == 0, result.stderr
    assert "+ 30 modulation steps" in result.stdout
    assert run(*common, "--modulation-steps", "0", "--out", str(plain)).returncode == 0
    with_offset, without = load_checkpoint(refined), load_checkpoint(plain)
    last = len(with_offset.instance_names) - 1
    assert set(with_offset.modulation_offsets) == {last} and without.modulation_offsets == {}
    assert with_offset.modulation_offsets[last].abs().max() > 0
    assert (with_offset.meta["fit_modulation_steps"], without.meta["fit_modulation_steps"]) == (30, 0)
    assert torch.equal(with_offset.latents, without.latents)  # the same latent fit before it
    views = []
    for ckpt in (refined, plain):
        out = tmp_path / f"{ckpt.stem}.png"
        shown = run("--ckpt", str(ckpt), "--instance", "-1", "--headless", "--out", str(out),
                    "--res", "16")
        assert shown.returncode == 0, shown.stderr
        views.append(np.asarray(Image.open(out), dtype=np.int16))
    assert np.abs(views[0] - views[1]).max() > 0  # the headless view renders the offset
    # an auto-decoding fit refines past its latent by default
    assert run(*common, "--out", str(plain)).returncode == 0
    assert load_checkpoint(plain).meta["fit_modulation_steps"] == MODULATION_STEPS
    elsewhere = run("--ckpt", str(tiny_ckpt), "--headless", "--out", str(tmp_path / "v.png"),
                    "--modulation-steps", "3")
    assert elsewhere.returncode == 2 and "used by --fit-image only" in elsewhere.stderr
    # main.py names the default without importing torch to parse: it must be the fit's
    help_text = " ".join(run("--help").stdout.split())
    assert f"(default {MODULATION_STEPS} after refine and autodecode" in help_text


@pytest.mark.parametrize("make, needle", [
    (lambda p: p.write_bytes(b"not an image at all"), "not a readable image"),
    (lambda p: Image.new("RGB", (40, 30), "white").save(p), "must be square"),
    (lambda p: photo(p, border=False), "white background"),
])
def test_bad_photos_give_one_line_errors(tiny_ckpt, tmp_path, make, needle):
    path = tmp_path / "bad.png"
    make(path)
    result = run("--ckpt", str(tiny_ckpt), "--fit-image", str(path), "--pose", "30,20",
                 "--steps", "2", "--out", str(tmp_path / "o.pt"))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "--fit-image" in lines[0]
