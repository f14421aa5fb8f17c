"""`main.py --fit-image`: fit a new car's latent to one photo, append it to a checkpoint copy.

The photo shows a car on a white background (or with alpha, composited on white), square; it is
resized to the resolution the network was trained at. Its camera is given in the product's orbit
convention (models/cameras.py).
"""

from __future__ import annotations

import argparse

import torch
from tqdm import tqdm

from engine.photo import DEFAULT_FIT_RES, ImageError, load_photo
from models.cameras import DEFAULT_RADIUS, intrinsics, orbit_pose
from models.checkpoint import Checkpoint, save_checkpoint
from models.fitting import fit_latent
from models.instances import with_instance


def run_fit_image(args: argparse.Namespace, ckpt: Checkpoint) -> int:
    res = int(ckpt.meta.get("resolution", DEFAULT_FIT_RES))
    try:
        photo = torch.from_numpy(load_photo(args.fit_image, res))
    except ImageError as error:
        raise ImageError(f"--fit-image {error}") from None
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
