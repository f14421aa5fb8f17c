"""What the view shows of a frame: colors, gradient depth, normals, or the LFN beside the
volumetric baseline. The value is the command line's name for it (`--mode depth`)."""

from __future__ import annotations

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
