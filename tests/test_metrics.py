import math

import pytest
import torch

from engine.metrics import psnr, ssim


def test_psnr_of_a_known_error():
    a = torch.zeros(8, 8, 3)
    assert psnr(a, a + 0.1) == pytest.approx(20.0, abs=1e-4)
    assert math.isinf(psnr(a, a))


def test_ssim_of_constant_images_matches_the_formula():
    a, b = 0.3, 0.6
    c1 = 0.01**2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)  # variances are zero: structure term is 1
    got = ssim(torch.full((16, 16, 3), a), torch.full((16, 16, 3), b))
    assert got == pytest.approx(expected, rel=1e-4)


def test_ssim_is_one_for_identical_and_lower_for_noisy_images():
    image = torch.rand(32, 32, 3)
    assert ssim(image, image) == pytest.approx(1.0, abs=1e-5)
    assert ssim(image, (image + 0.2 * torch.randn_like(image)).clamp(0, 1)) < 0.9
