"""Camera directions of the data set: training views on a Fibonacci spiral over the upper band
of the sphere, test views on a different, stratified-random set of directions."""

from __future__ import annotations

import math

import numpy as np
import torch

from models.cameras import orbit_pose

ELEVATION_RANGE = (5.0, 60.0)  # degrees above the ground plane
GOLDEN_ANGLE = 180.0 * (3.0 - math.sqrt(5.0))  # degrees


def _band(fractions: np.ndarray) -> np.ndarray:
    """Elevations (degrees) for fractions in [0, 1] of the band's area (uniform in sin)."""
    lo, hi = (math.sin(math.radians(e)) for e in ELEVATION_RANGE)
    return np.degrees(np.arcsin(lo + fractions * (hi - lo)))


def train_directions(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(azimuths, elevations) in degrees: an even Fibonacci spiral, turned by a random azimuth."""
    k = np.arange(count)
    azimuth = (k * GOLDEN_ANGLE + rng.uniform(0, 360)) % 360
    return azimuth, _band((k + 0.5) / count)


def test_directions(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(azimuths, elevations) in degrees: one random direction per equal-area band stratum."""
    fractions = (np.arange(count) + rng.uniform(size=count)) / count
    return rng.uniform(0, 360, size=count), _band(rng.permutation(fractions))


def poses(azimuths: np.ndarray, elevations: np.ndarray, radius: float) -> np.ndarray:
    """(V, 4, 4) float32 OpenCV cam2world matrices of orbit cameras looking at the origin."""
    return torch.stack(
        [orbit_pose(float(a), float(e), radius) for a, e in zip(azimuths, elevations, strict=True)]
    ).numpy()
