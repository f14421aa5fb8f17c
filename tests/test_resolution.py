"""models/resolution.py: the frame size every renderer, config and report carries."""

from __future__ import annotations

import pytest

from models.resolution import Resolution


def test_parse_reads_what_str_writes():
    assert Resolution.parse("256") == Resolution.square(256) == Resolution(256, 256)
    assert Resolution.parse("1920x1080") == Resolution(1920, 1080)
    assert Resolution.parse(" 1920X1080 ") == Resolution(1920, 1080)
    for res in (Resolution(256, 256), Resolution(1920, 1080), Resolution(7, 19)):
        assert Resolution.parse(str(res)) == res
    assert (str(Resolution(256, 256)), str(Resolution(1920, 1080))) == ("256", "1920x1080")
    assert (Resolution(256, 256).label, Resolution(1920, 1080).label) == ("256²", "1920×1080")


@pytest.mark.parametrize("text", ["", "abc", "1920x", "x1080", "1920x1080x3", "-1", "1e3", "12.5", "0x4"])
def test_parse_rejects_anything_but_n_or_w_x_h(text):
    with pytest.raises(ValueError):
        Resolution.parse(text)


def test_sizes_are_positive_integers():
    for width, height in ((0, 4), (4, -1), (4.0, 4), (True, 4)):
        with pytest.raises(ValueError):
            Resolution(width, height)


def test_an_int_stands_for_a_square_and_a_resolution_for_itself():
    wide = Resolution(48, 32)
    assert Resolution.of(32) == Resolution(32, 32) and Resolution.of(wide) is wide
    assert (wide.pixels, wide.aspect, wide.is_square) == (1536, 1.5, False)


def test_at_height_keeps_the_aspect():
    full_hd = Resolution(1920, 1080)
    assert full_hd.at_height(1080) is full_hd
    assert full_hd.at_height(540) == Resolution(960, 540)
    assert full_hd.at_height(64) == Resolution(114, 64)  # 113.8 columns, rounded
    assert Resolution.square(256).at_height(64) == Resolution.square(64)
    assert Resolution(1, 1000).at_height(10) == Resolution(1, 10)  # never zero columns


def test_smaller_frames_sort_first_and_a_menu_keeps_the_aspect():
    assert sorted([Resolution(1920, 1080), Resolution.square(512), Resolution(16, 9), Resolution(9, 16)]) == [
        Resolution(9, 16), Resolution(16, 9), Resolution.square(512), Resolution(1920, 1080)]
    assert Resolution(1920, 1080).at_heights([540, 1080, 64]) == [
        Resolution(114, 64), Resolution(960, 540), Resolution(1920, 1080)]
