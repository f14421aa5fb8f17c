"""What the view shows of a frame: colors, gradient depth, normals, or the LFN beside the
volumetric baseline. The value is the command line's name for it (`--mode depth`). Also the options
of a depth frame that the window's panel and the web page both offer."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class DisplayMode(Enum):
    RGB = "rgb"
    DEPTH = "depth"
    NORMALS = "normals"
    COMPARE = "compare"

    @property
    def label(self) -> str:
        """The name the panel and the window title show."""
        return _LABELS[self]

    @property
    def uses_depth(self) -> bool:
        """Whether its frames come from gradient depth (models/depth.py) instead of colors."""
        return self in (DisplayMode.DEPTH, DisplayMode.NORMALS)


_LABELS = {
    DisplayMode.RGB: "RGB",
    DisplayMode.DEPTH: "gradient depth",
    DisplayMode.NORMALS: "normals",
    DisplayMode.COMPARE: "LFN vs volumetric",
}


@dataclass(frozen=True)
class DepthOption:
    """A checkbox of a depth display mode (DisplayMode.uses_depth), in the window and the page alike."""

    label: str
    hint: str  # what it trades; its line breaks are the window's tooltip's


SUMMED_DEPTH = DepthOption(
    "fast: channels summed",
    "One equation per axis from the sum of the color channels: on the\n"
    "triton backend one reverse pass instead of three, 1.3x faster\n"
    "at 512² (H200); median depth error 1.04 % instead of 0.99 %\n"
    "(DEPTH.md).")
STEREO_DEPTH = DepthOption(
    "refine: wide-baseline search (slow)",
    "Moves each pixel's depth to where the light field's views 20° and\n"
    "35° to each side agree with its color: 400 more LFN evaluations\n"
    "a pixel, for stills, not motion; the depth error drops by about\n"
    "a quarter on the trained cars (DEPTH.md).")
