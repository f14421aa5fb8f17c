"""`main.py --fit-image`: fit a new car to one photo, append it to a checkpoint copy.

The car is a latent and, refined past it (models/modulation_fit.py), a modulation offset: both
are stored, and the viewer shows the instance as both.

The photo shows a car on a white background (or with alpha, composited on white), square; it is
resized to the resolution the network was trained at. Its camera is given in the product's orbit
convention (models/cameras.py) or estimated by the checkpoint's encoder; models/inference.py holds
the three inference modes.
"""

from __future__ import annotations

import torch
from tqdm import tqdm

from engine.cli import UsageError
from engine.config import FitImageConfig
from engine.photo import DEFAULT_FIT_RES, ImageError, load_photo
from models.checkpoint import Checkpoint, CheckpointError
from models.encoder import encoder_path, find_encoder
from models.fitting import MIRROR_WEIGHT
from models.inference import (
    InferenceError,
    InferenceMode,
    check_inputs,
    default_mode,
    infer,
    resolve_steps,
)
from models.instances import with_instance


def run_fit_image(config: FitImageConfig, ckpt: Checkpoint) -> int:
    res = int(ckpt.meta.get("resolution", DEFAULT_FIT_RES))
    try:
        photo = torch.from_numpy(load_photo(config.photo, res))
    except ImageError as error:
        raise ImageError(f"--fit-image {error}") from None
    model = ckpt.model.to(config.render.device)
    try:
        encoder = find_encoder(config.checkpoint, ckpt.model, config.encoder)
    except CheckpointError as error:
        if config.encoder is None:
            raise
        raise UsageError(f"--encoder {error}") from None
    encoder = encoder.to(config.render.device) if encoder is not None else None
    mode = InferenceMode(config.inference) if config.inference else default_mode(encoder)
    orbit = config.pose
    try:
        check_inputs(mode, encoder, orbit)
    except InferenceError as error:
        raise InferenceError(
            f"--fit-image: {error}; give --pose AZ,EL with --inference autodecode (the default "
            f"without an encoder), or name an encoder with --encoder FILE, or train one "
            f"(python -m tools.train_encoder --ckpt {config.checkpoint}, written to "
            f"{encoder_path(config.checkpoint)})") from None
    steps = resolve_steps(mode, config.steps, config.render.device)
    mirror_weight = MIRROR_WEIGHT if config.mirror_weight is None else config.mirror_weight
    with tqdm(total=steps, desc=f"{mode.value} inference", unit="step") as bar:
        def progress(step):
            bar.set_postfix(psnr=f"{step.psnr:.2f} dB")
            bar.update(1)

        result = infer(model, photo, mode, encoder, orbit, steps, on_step=progress,
                       mirror_weight=mirror_weight, modulation_steps=config.modulation_steps)
    pose = result.orbit
    fitted = with_instance(ckpt, result.latent, config.photo.stem,
                           {"fitted_from": config.photo.name, "fit_mode": mode.value,
                            "fit_steps": steps, "fit_mirror_weight": mirror_weight,
                            "fit_modulation_steps": result.modulation_steps,
                            "fit_psnr": round(result.psnr, 3),
                            "fit_pose": [round(pose.azimuth, 3), round(pose.elevation, 3),
                                         round(pose.radius, 3)]},
                           result.modulation_offset)
    fitted.save(config.out)
    source = "estimated" if result.pose_estimated else "given"
    past = f" + {result.modulation_steps} modulation steps" if result.modulation_steps else ""
    print(f"wrote {config.out}: instance {len(fitted.instance_names) - 1} "
          f"({config.photo.stem}), {mode.value} inference{past} in {result.seconds:.2f} s, pose "
          f"{pose.azimuth:.1f},{pose.elevation:.1f},{pose.radius:.2f} ({source}), "
          f"input-view PSNR {result.psnr:.2f} dB")
    return 0
