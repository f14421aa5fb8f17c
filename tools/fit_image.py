"""`main.py --fit-image`: fit a new car's latent to one photo, append it to a checkpoint copy.

The photo shows a car on a white background (or with alpha, composited on white), square; it is
resized to the resolution the network was trained at. Its camera is given in the product's orbit
convention (models/cameras.py).
"""

from __future__ import annotations

import torch
from tqdm import tqdm

from engine.config import FitImageConfig
from engine.photo import DEFAULT_FIT_RES, ImageError, load_photo
from models.cameras import intrinsics
from models.checkpoint import Checkpoint, save_checkpoint
from models.fitting import fit_latent
from models.instances import with_instance


def run_fit_image(config: FitImageConfig, ckpt: Checkpoint) -> int:
    res = int(ckpt.meta.get("resolution", DEFAULT_FIT_RES))
    try:
        photo = torch.from_numpy(load_photo(config.photo, res))
    except ImageError as error:
        raise ImageError(f"--fit-image {error}") from None
    model = ckpt.model.to(config.render.device)
    with tqdm(total=config.steps, desc="fitting latent", unit="step") as bar:
        def progress(step):
            bar.set_postfix(psnr=f"{step.psnr:.2f} dB")
            bar.update(1)

        fit = fit_latent(model, photo[None], config.pose.cam2world()[None], intrinsics(res, res),
                         config.steps, on_step=progress)
    fitted = with_instance(ckpt, fit.latent, config.photo.stem,
                           {"fitted_from": config.photo.name, "fit_steps": config.steps,
                            "fit_psnr": round(fit.psnr, 3)})
    save_checkpoint(fitted.model.cpu(), fitted.instance_names, fitted.meta, config.out)
    print(f"wrote {config.out}: instance {len(fitted.instance_names) - 1} "
          f"({config.photo.stem}), input-view PSNR {fit.psnr:.2f} dB")
    return 0
