"""Second-style procedural cars: reproducible per seed, broader in shape than the first style,
standing on their wheels, and painted through box-projected panels that are never mirrored."""

from __future__ import annotations

import numpy as np

from tools.panel_canvas import PANELS, Extent, PanelCanvas, panel_of, panel_uvs
from tools.procedural_cars import procedural_car
from tools.procedural_variety import BODY_TYPES, TEXTURES, body_type, variety_car, variety_car_raw

MESH_ARRAYS = ("positions", "normals", "uvs", "colors", "tri_texture")


def test_same_seed_same_car_and_paint() -> None:
    (a, a_images), (b, b_images) = variety_car(7), variety_car(7)
    for name in MESH_ARRAYS:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a_images.keys() == b_images.keys() == set(TEXTURES)
    assert all(np.array_equal(a_images[k], b_images[k]) for k in a_images)
    other, _ = variety_car(8)
    assert other.positions.shape != a.positions.shape or not np.array_equal(
        other.positions, a.positions)


def _aspects(cars: list[np.ndarray]) -> np.ndarray:
    """(N, 2) height / length and width / length of each car's bounding box."""
    extent = np.array([np.ptp(p, axis=0) for p in cars])
    return extent[:, [2, 1]] / extent[:, :1]


def test_second_style_is_broader_in_shape_than_the_first() -> None:
    seeds = range(80)
    first = _aspects([procedural_car(s).positions for s in seeds])
    second = _aspects([variety_car(s)[0].positions for s in seeds])
    assert (second.std(axis=0) > 1.5 * first.std(axis=0)).all()
    assert np.ptp(second[:, 0]) > 1.5 * np.ptp(first[:, 0])
    assert {body_type(s) for s in range(120)} == set(BODY_TYPES)


def test_cars_stand_on_their_wheels_inside_the_unit_sphere() -> None:
    for seed in range(12):
        raw, images = variety_car_raw(seed)
        assert np.isfinite(raw.positions).all() and np.isfinite(raw.uvs).all()
        assert abs(raw.positions[:, 2].min()) < 1e-4  # tyres touch the ground, nothing below
        textured = raw.tri_texture >= 0
        assert textured.mean() > 0.2
        uv = raw.uvs.reshape(-1, 3, 2)[textured]
        assert (uv > 0).all() and (uv < 1).all()  # the panels' margins hold every corner
        assert all(im.dtype == np.uint8 and im.ndim == 3 and im.shape[2] == 3
                   for im in images.values())
        car, _ = variety_car(seed)
        assert np.linalg.norm(car.positions, axis=1).max() <= 0.95 + 1e-5
        extent = np.ptp(car.positions, axis=0)
        assert extent[0] > extent[1] and extent[0] > extent[2]  # long along x


def test_faces_take_the_panel_they_look_toward() -> None:
    normals = np.array([[0, 1, 0], [0, -1, 0], [0, 0, 1], [1, 0, 0], [-1, 0, 0], [0.1, 0, -1]])
    assert [PANELS[i] if i >= 0 else None for i in panel_of(normals.astype(float))] == [
        *PANELS, None]


def _ink_columns(image: np.ndarray) -> np.ndarray:
    dark = image.sum(axis=2) < 100
    return np.flatnonzero(dark.any(axis=0))


def test_paint_lands_where_it_was_drawn_and_text_reads_on_both_sides() -> None:
    extent = Extent(half_length=2.0, half_width=0.9, height=1.4)
    canvas = PanelCanvas(extent, (1.0, 1.0, 1.0))
    canvas.rect(("left", "right"), (1.0, 0.4), (1.5, 0.8), (1.0, 0.0, 0.0))  # near the front
    canvas.text(("left", "right"), (-1.0, 0.6), 0.4, "1", (0.0, 0.0, 0.0))
    images = canvas.images()
    for side, y in (("left", 0.9), ("right", -0.9)):
        uv = panel_uvs(extent, side, np.array([[1.25, y, 0.6], [-1.9, y, 0.6]]))
        image = images[side]
        rows, cols = image.shape[:2]
        pixels = [image[int((1 - v) * rows), int(u * cols)] for u, v in uv]
        assert tuple(pixels[0]) == (255, 0, 0) and tuple(pixels[1]) == (255, 255, 255)
        # a "1" is its right-hand segments: ink right of the glyph's center as seen from outside
        ink = _ink_columns(image)
        center = panel_uvs(extent, side, np.array([[-1.0, y, 0.6]]))[0, 0] * cols
        assert ink.min() > center - 2
