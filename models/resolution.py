"""A frame's size in pixels, width × height, as every renderer, config and report carries it.

    Resolution(1920, 1080)          a Full-HD frame: 1920 columns, 1080 rows
    Resolution.square(256)          256 × 256
    Resolution.of(256)              where an API also takes an int: an int N is N × N
    Resolution.parse("1920x1080")   the command line's form, "N" or "WxH"; str() writes it back

The camera keeps its vertical field of view at any aspect (models/cameras.py), so a frame's height
is its angular resolution and a wider frame sees more to the sides.

Plain Python (no torch): main.py parses --res with it before anything heavy loads.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

_TEXT = re.compile(r"(\d+)(?:x(\d+))?")


@functools.total_ordering
@dataclass(frozen=True)
class Resolution:
    """Ordered smallest first: by pixel count, then the narrower of two."""

    width: int  # columns
    height: int  # rows

    def __post_init__(self) -> None:
        for name, value in (("width", self.width), ("height", self.height)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")

    @classmethod
    def square(cls, side: int) -> Resolution:
        return cls(side, side)

    @classmethod
    def of(cls, value: Resolution | int) -> Resolution:
        """`value` itself, or the square an int stands for (the renderers' and tests' N)."""
        return value if isinstance(value, Resolution) else cls.square(value)

    @classmethod
    def parse(cls, text: str) -> Resolution:
        """"N" (a square) or "WxH"; ValueError for anything else."""
        match = _TEXT.fullmatch(text.strip().lower())
        if match is None:
            raise ValueError(f"{text!r} is not N or WxH")
        width, height = match.groups()
        return cls(int(width), int(height or width))

    def __lt__(self, other: Resolution) -> bool:
        return (self.pixels, self.width) < (other.pixels, other.width)

    def __str__(self) -> str:
        """The command line's form, which parse reads back: "256" for a square, else "1920x1080"."""
        return str(self.width) if self.is_square else f"{self.width}x{self.height}"

    @property
    def label(self) -> str:
        """For people: "256²" or "1920×1080"."""
        return f"{self.width}²" if self.is_square else f"{self.width}×{self.height}"

    @property
    def is_square(self) -> bool:
        return self.width == self.height

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def aspect(self) -> float:
        return self.width / self.height

    def at_height(self, height: int) -> Resolution:
        """This frame's aspect at `height` rows (the viewer's coarse frames while moving)."""
        if height == self.height:
            return self
        return Resolution(max(1, round(height * self.aspect)), height)

    def at_heights(self, heights: Iterable[int]) -> list[Resolution]:
        """This frame and its aspect at each of `heights`, smallest first (a resolution menu)."""
        return sorted({self, *(self.at_height(height) for height in heights)})
