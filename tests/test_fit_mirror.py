"""The single-image fit's mirrored rays (models/fitting.py): a car's far side from its near side."""

import torch

from models.cameras import Orbit, intrinsics
from models.fitting import REFLECT_Y, fit_latent

RES = 16


class SidedColors(torch.nn.Module):
    """A field with one gray level per side of the plane y = 0: a ray heading to +y (it sees the
    car's right side from its left) shows sigmoid(latent[0]), any other ray sigmoid(latent[1]).
    Records the rays it is asked for."""

    def __init__(self):
        super().__init__()
        self.latents = torch.nn.Embedding(1, 2)
        torch.nn.init.zeros_(self.latents.weight)
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # the frozen "network"
        self.calls = []

    def forward(self, origins, dirs, latents):
        self.calls.append((origins.detach().clone(), dirs.detach().clone()))
        side = torch.where(dirs[..., 1:2] > 0, latents[:, None, 0:1], latents[:, None, 1:2])
        return torch.sigmoid(side + self.anchor).expand(*dirs.shape[:-1], 3)

    def side_gray(self, latent: torch.Tensor) -> tuple[float, float]:
        return tuple(torch.sigmoid(latent).tolist())


def fit(model, mirror_weight: float):
    # a camera on the +y side looks toward -y: every observed ray heads to -y
    camera = Orbit(azimuth=90.0, elevation=10.0).cam2world()[None]
    dark = torch.full((1, RES, RES, 3), 40, dtype=torch.uint8)
    return fit_latent(model, dark, camera, intrinsics(RES, RES), steps=60, rays_per_step=32,
                      lr=0.1, latent_weight=0.0, mirror_weight=mirror_weight)


def test_without_mirrored_rays_the_unseen_side_keeps_its_start():
    model = SidedColors()
    seen, unseen = model.side_gray(fit(model, 0.0).latent)[::-1]
    assert abs(seen - 40 / 255) < 0.02
    assert unseen == 0.5  # no ray reached it
    assert all(d.shape[1] == 32 for _, d in model.calls)


def test_mirrored_rays_carry_the_photo_to_the_far_side():
    model = SidedColors()
    seen, unseen = model.side_gray(fit(model, 0.25).latent)[::-1]
    assert abs(seen - 40 / 255) < 0.02 and abs(unseen - 40 / 255) < 0.05


def test_the_mirrored_rays_are_the_drawn_rays_reflected_in_y_0():
    model = SidedColors()
    fit(model, 0.25)
    reflect = torch.tensor(REFLECT_Y)
    for origins, dirs in model.calls:
        observed, mirrored = origins.shape[1] // 2, slice(origins.shape[1] // 2, None)
        assert origins.shape[1] == 64
        assert torch.equal(origins[:, mirrored], origins[:, :observed] * reflect)
        assert torch.equal(dirs[:, mirrored], dirs[:, :observed] * reflect)
        assert (dirs[:, :observed, 1] < 0).all() and (dirs[:, mirrored, 1] > 0).all()


def test_the_reported_psnr_is_the_observed_rays_alone():
    """The fit's PSNR says how well the photo is matched, whatever the far side does."""
    model = SidedColors()
    with torch.no_grad():
        model.latents.weight[0, 0] = 5.0  # far side white: the mirrored rays are far off
    first = fit_latent(model, torch.full((1, RES, RES, 3), 128, dtype=torch.uint8),
                       Orbit(90.0, 10.0).cam2world()[None], intrinsics(RES, RES), steps=1,
                       rays_per_step=32, lr=0.0, latent_weight=0.0, mirror_weight=1.0)
    # the near side's 0.5 is the photo's 128 / 255 but for 0.002 (54 dB); counting the white far
    # side's rays would read about 9 dB
    assert first.psnr > 50
