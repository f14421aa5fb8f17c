"""`main.py --fit-image`: fit a new car's latent to one photo, append it to a checkpoint copy.

The photo shows a car on a white background (or with alpha, composited on white), square; it is
resized to the resolution the network was trained at. Its camera is given in the product's orbit
convention (models/cameras.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from models.cameras import DEFAULT_RADIUS, intrinsics, orbit_pose
from models.checkpoint import Checkpoint, save_checkpoint
from models.fitting import fit_latent
from models.instances import with_instance

DEFAULT_FIT_RES = 128


class ImageError(Exception):
    """A photo that cannot be fitted; the message names the file and the problem."""


def load_photo(path: Path, res: int) -> np.ndarray:
    """(res, res, 3) uint8 on white; raises ImageError for what cannot be used."""
    try:
        with Image.open(path) as image:
            image.load()
            rgba = np.asarray(image.convert("RGBA")).astype(np.float32) / 255
    except (UnidentifiedImageError, OSError) as e:
        raise ImageError(f"--fit-image {path}: not a readable image ({type(e).__name__})") from None
    h, w = rgba.shape[:2]
    if h != w or h < 16:
        raise ImageError(f"--fit-image {path}: must be square and at least 16 px, got {w}x{h}")
    rgb = rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])  # composite over white
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    if (border.min(-1) > 0.9).mean() < 0.9:
        raise ImageError(f"--fit-image {path}: needs a white background or an alpha channel "
                         "(its border is not white)")
    small = Image.fromarray((rgb * 255 + 0.5).astype(np.uint8)).resize((res, res), Image.LANCZOS)
    return np.asarray(small)


def run_fit_image(args: argparse.Namespace, ckpt: Checkpoint) -> int:
    res = int(ckpt.meta.get("resolution", DEFAULT_FIT_RES))
    photo = torch.from_numpy(load_photo(args.fit_image, res))
    azimuth, elevation, *rest = args.pose
    pose = orbit_pose(azimuth, elevation, rest[0] if rest else DEFAULT_RADIUS)
    model = ckpt.model.to(args.device_obj)
    with tqdm(total=args.steps, desc="fitting latent", unit="step") as bar:
        def progress(step):
            bar.set_postfix(psnr=f"{step.psnr:.2f} dB")
            bar.update(1)

        fit = fit_latent(model, photo[None], pose[None], intrinsics(res, res), args.steps,
                         on_step=progress)
    fitted = with_instance(ckpt, fit.latent, args.fit_image.stem,
                           {"fitted_from": args.fit_image.name, "fit_steps": args.steps,
                            "fit_psnr": round(fit.psnr, 3)})
    save_checkpoint(fitted.model.cpu(), fitted.instance_names, fitted.meta, args.out)
    print(f"wrote {args.out}: instance {len(fitted.instance_names) - 1} "
          f"({args.fit_image.stem}), input-view PSNR {fit.psnr:.2f} dB")
    return 0
