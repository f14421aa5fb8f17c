"""Procedural cars are reproducible per seed and vary across seeds; paint variants and view
directions behave as the data set needs."""

from __future__ import annotations

import numpy as np

from tools import views
from tools.paint import recolor_paint
from tools.procedural_cars import BODY_TYPES, body_type, procedural_car


def test_same_seed_same_car() -> None:
    a, b = procedural_car(42), procedural_car(42)
    for name in ("positions", "normals", "uvs", "colors", "tri_texture"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_seeds_give_different_cars_inside_the_unit_sphere() -> None:
    cars = [procedural_car(seed) for seed in range(6)]
    for car in cars:
        assert car.positions.dtype == np.float32 and car.positions.shape[1] == 3
        assert len(car.positions) == 3 * car.num_triangles == len(car.colors)
        radius = np.linalg.norm(car.positions, axis=1).max()
        assert 0.9 < radius <= 0.95 + 1e-5
        extent = car.positions.max(axis=0) - car.positions.min(axis=0)
        assert extent[0] > extent[1] > 0 and extent[0] > extent[2]  # long along x
        assert np.allclose(np.linalg.norm(car.normals, axis=1), 1, atol=1e-3)
    shapes = {round(float(np.ptp(c.positions[:, 2])), 4) for c in cars}
    assert len(shapes) == len(cars)
    assert {body_type(seed) for seed in range(40)} == set(BODY_TYPES)


def test_procedural_car_has_dark_tyres_glass_and_lights() -> None:
    colors = procedural_car(3).colors
    brightness = colors.mean(axis=1)
    assert (brightness < 0.1).mean() > 0.02  # tyres
    assert np.isclose(colors, [0.95, 0.95, 0.85]).all(axis=1).any()  # headlights
    assert ((colors[:, 0] > 0.6) & (colors[:, 1] < 0.1)).any()  # tail lights


def test_recolor_moves_the_paint_and_keeps_the_rest() -> None:
    texture = np.zeros((8, 8, 4), np.uint8)
    texture[..., 3] = 255
    texture[:, :6, :3] = (200, 30, 30)  # red paint
    texture[:, 6:, :3] = (20, 20, 22)  # dark glass / tyre
    out = recolor_paint(texture, hue_shift=1 / 3)
    assert out[0, 0, 1] > out[0, 0, 0]  # red turned green
    assert np.abs(out[:, 6:].astype(int) - texture[:, 6:]).max() <= 2
    assert np.array_equal(out[..., 3], texture[..., 3])


def test_train_and_test_directions_differ_and_stay_in_the_band() -> None:
    rng = np.random.default_rng(0)
    train, test = views.train_directions(50, rng), views.test_directions(25, rng)
    low, high = views.ELEVATION_RANGE
    for azimuth, elevation in (train, test):
        assert ((azimuth >= 0) & (azimuth < 360)).all()
        assert (elevation >= low).all() and (elevation <= high).all()

    def unit(az: np.ndarray, el: np.ndarray) -> np.ndarray:
        az, el = np.radians(az), np.radians(el)
        return np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=1)
    closest = (unit(*test) @ unit(*train).T).max(axis=1)
    assert (closest < np.cos(np.radians(0.5))).all()  # no test view repeats a training view
