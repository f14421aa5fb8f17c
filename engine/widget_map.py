"""The widget map: where the viewer's panel put each labelled widget in its last frame.

With LFN_WIDGET_MAP=FILE in its environment the viewer (viewer/widget_recorder.py) writes FILE
whenever the panel's layout changes, so that a program driving the real window (bench/chaos.py's
prelude) presses a widget by its label instead of by a pixel position that a new line in the panel
would shift. The file is JSON, {label: Widget fields}, replaced atomically.

A section that runs a job on a thread of its own names it in its header ("Record path
(exporting)"): its buttons are not drawn while it is closed, its header always is, so the map says
which jobs run whatever is open (bench/chaos.py files each memory reading under them).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

WIDGET_MAP_ENV = "LFN_WIDGET_MAP"
EXPORTING = "exporting"  # the job a "Record path" header names while its video export runs
FITTING = "fitting"  # the one a "Reconstruct from a photo" header names while its fit runs


def section_label(title: str, job: str | None) -> str:
    """A collapsing header's ImGui label: the title, plus the job it runs in parentheses, under the
    title's ID (the part from "###"), so that the section stays open or closed as the job comes and
    goes. The map records the shown part."""
    return f"{title} ({job})###{title}" if job else f"{title}###{title}"


def shown_label(label: str) -> str:
    """What ImGui shows of a label: the part before "###"."""
    return label.split("###", 1)[0]


@dataclass(frozen=True)
class Widget:
    """One widget: its rectangle in window units (origin top-left, as mouse positions and xdotool's
    `mousemove --window` have them), whether it was disabled, and what it showed: a combo its
    current option, a checkbox or radio button "on" or "off"."""

    kind: str  # the ImGui function that drew it, e.g. "button", "slider_int", "begin_combo"
    x: float
    y: float
    width: float
    height: float
    disabled: bool = False
    value: str | None = None

    def point(self, fraction: float = 0.5) -> tuple[int, int]:
        """A point on the widget, `fraction` of its width from its left edge, halfway down."""
        return round(self.x + fraction * self.width), round(self.y + self.height / 2)


def write_widget_map(path: Path, widgets: dict[str, Widget]) -> None:
    """Replace `path` with the map, whole (a reader never sees half a file)."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps({label: asdict(widget) for label, widget in widgets.items()}))
    os.replace(partial, path)


def read_widget_map(path: Path) -> dict[str, Widget]:
    """The map the viewer wrote last; empty before its first frame."""
    try:
        return {label: Widget(**fields) for label, fields in json.loads(path.read_text()).items()}
    except FileNotFoundError:
        return {}
