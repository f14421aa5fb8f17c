"""`main.py --fit-image`: fit a new car's latent to one photo, append it to a checkpoint copy.

The photo shows a car on a white background (or with alpha, composited on white), square; it is
resized to the resolution the network was trained at. Its camera is given in the product's orbit
convention (models/cameras.py) or estimated by the checkpoint's encoder; models/inference.py holds
the three inference modes.
"""

from __future__ import annotations

import argparse

import torch
from tqdm import tqdm

from engine.photo import DEFAULT_FIT_RES, ImageError, load_photo
from models.cameras import Orbit
from models.checkpoint import Checkpoint, save_checkpoint
from models.encoder import encoder_path, find_encoder
from models.inference import (
    InferenceError,
    InferenceMode,
    check_inputs,
    default_mode,
    infer,
    resolve_steps,
)
from models.instances import with_instance


def run_fit_image(args: argparse.Namespace, ckpt: Checkpoint) -> int:
    res = int(ckpt.meta.get("resolution", DEFAULT_FIT_RES))
    try:
        photo = torch.from_numpy(load_photo(args.fit_image, res))
    except ImageError as error:
        raise ImageError(f"--fit-image {error}") from None
    model = ckpt.model.to(args.device_obj)
    encoder = find_encoder(args.ckpt, ckpt.model)
    encoder = encoder.to(args.device_obj) if encoder is not None else None
    mode = InferenceMode(args.inference) if args.inference else default_mode(encoder)
    orbit = Orbit(*args.pose) if args.pose else None
    try:
        check_inputs(mode, encoder, orbit)
    except InferenceError as error:
        raise InferenceError(
            f"--fit-image: {error}; give --pose AZ,EL with --inference autodecode (the default "
            f"without an encoder), or train an encoder "
            f"(python -m tools.train_encoder --ckpt {args.ckpt}, written to "
            f"{encoder_path(args.ckpt)})") from None
    steps = resolve_steps(mode, args.steps)
    with tqdm(total=steps, desc=f"{mode.value} inference", unit="step") as bar:
        def progress(step):
            bar.set_postfix(psnr=f"{step.psnr:.2f} dB")
            bar.update(1)

        result = infer(model, photo, mode, encoder, orbit, steps, on_step=progress)
    pose = result.orbit
    fitted = with_instance(ckpt, result.latent, args.fit_image.stem,
                           {"fitted_from": args.fit_image.name, "fit_mode": mode.value,
                            "fit_steps": steps, "fit_psnr": round(result.psnr, 3),
                            "fit_pose": [round(pose.azimuth, 3), round(pose.elevation, 3),
                                         round(pose.radius, 3)]})
    save_checkpoint(fitted.model.cpu(), fitted.instance_names, fitted.meta, args.out)
    source = "estimated" if result.pose_estimated else "given"
    print(f"wrote {args.out}: instance {len(fitted.instance_names) - 1} "
          f"({args.fit_image.stem}), {mode.value} inference in {result.seconds:.2f} s, pose "
          f"{pose.azimuth:.1f},{pose.elevation:.1f},{pose.radius:.2f} ({source}), "
          f"input-view PSNR {result.psnr:.2f} dB")
    return 0
