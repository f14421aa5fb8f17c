"""Records the widget map (engine/widget_map.py) while the panel draws, when LFN_WIDGET_MAP asks.

The panels call ImGui's functions directly; while recording, the functions that draw a labelled
widget are wrapped to note the widget's rectangle (ImGui's last item) under its label, and
begin/end_disabled to know whether it was disabled. The wrappers are in place only inside
recording(), on the UI thread, and only in a viewer started with the variable set: without it,
recording() does nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from imgui_bundle import imgui

from engine.widget_map import WIDGET_MAP_ENV, Widget, shown_label, write_widget_map

# The widgets recorded, each labelled by its first argument. Those with a frame (a slider, a text
# field, a combo) are recorded by the frame alone, where a click acts, not with their label beside
# it: where the next item goes and as wide as the item width, taken before they are drawn (an open
# combo's popup window would be ImGui's last item after). The others by ImGui's last item after.
FRAMED = ("slider_int", "slider_float", "input_text", "input_int", "input_float", "combo", "begin_combo")
LAST_ITEM = ("button", "radio_button", "checkbox", "collapsing_header", "selectable")


def on_off(flag: object) -> str:
    return "on" if flag else "off"


def shown_value(kind: str, args: tuple, result: object) -> str | None:
    """What the widget showed: a combo its option, a checkbox or radio button on or off."""
    if kind == "begin_combo":  # begin_combo(label, preview)
        return args[0]
    if kind == "combo":  # combo(label, current, items)
        current, items = args[0], args[1]
        return items[current] if 0 <= current < len(items) else None
    if kind == "checkbox":  # returns (changed, value)
        return on_off(result[1])
    if kind == "radio_button":  # radio_button(label, active)
        return on_off(args[0])
    return None


class WidgetRecorder:
    def __init__(self, path: Path | None):
        self.path = path
        self.widgets: dict[str, Widget] = {}
        self._written: dict[str, Widget] | None = None
        self._disabled: list[bool] = []  # begin_disabled's arguments, innermost last

    @classmethod
    def from_environment(cls) -> WidgetRecorder:
        path = os.environ.get(WIDGET_MAP_ENV)
        return cls(Path(path) if path else None)

    def _note(self, label: str, kind: str, x: float, y: float, width: float, height: float,
              value: str | None = None) -> None:
        # the first of two widgets with one label wins: ImGui would give both one ID anyway
        widget = Widget(kind, x, y, width, height, any(self._disabled), value)
        self.widgets.setdefault(shown_label(label), widget)

    def _wrap(self, kind: str, draw: Callable) -> Callable:
        framed = kind in FRAMED

        def drawn(label: str, *args, **kwargs):
            if framed:
                x, y = imgui.get_cursor_screen_pos()
                rect = (x, y, imgui.calc_item_width(), imgui.get_frame_height())
            result = draw(label, *args, **kwargs)
            if imgui.is_window_appearing():  # a popup's first frame, drawn hidden and placed after
                return result
            if not framed:
                (x0, y0), (x1, y1) = imgui.get_item_rect_min(), imgui.get_item_rect_max()
                rect = (x0, y0, x1 - x0, y1 - y0)
            self._note(label, kind, *rect, shown_value(kind, args, result))
            return result
        return drawn

    def _disabling(self, begin_disabled: Callable, end_disabled: Callable) -> tuple[Callable, Callable]:
        def begin(disabled: bool = True) -> None:
            self._disabled.append(bool(disabled))
            begin_disabled(disabled)

        def end() -> None:
            self._disabled.pop()
            end_disabled()
        return begin, end

    @contextmanager
    def recording(self) -> Iterator[None]:
        """Record the widgets drawn inside, then write the map if it changed; nothing without a path."""
        if self.path is None:
            yield
            return
        originals = {name: getattr(imgui, name)
                     for name in (*FRAMED, *LAST_ITEM, "begin_disabled", "end_disabled")}
        wrapped = {name: self._wrap(name, originals[name]) for name in (*FRAMED, *LAST_ITEM)}
        wrapped["begin_disabled"], wrapped["end_disabled"] = self._disabling(
            originals["begin_disabled"], originals["end_disabled"])
        self.widgets, self._disabled = {}, []
        for name, function in wrapped.items():
            setattr(imgui, name, function)
        try:
            yield
        finally:
            for name, function in originals.items():
                setattr(imgui, name, function)
        if self.widgets != self._written:
            write_widget_map(self.path, self.widgets)
            self._written = self.widgets
