"""Drop files on an X window as a file manager does (the XDND protocol, through libX11 and ctypes),
so that window tests and bench/photo_first_frame.py reach the viewer's GLFW drop callback; xdotool
has no drag and drop.

The source side of XDND 5: own the XdndSelection, announce text/uri-list (XdndEnter), hover at
(X, Y) in root coordinates (XdndPosition), drop once the target answers (XdndStatus), hand over
the file URIs when it asks for the selection, and end at its XdndFinished.
"""

from __future__ import annotations

import ctypes
import select
import time
from pathlib import Path

x11 = ctypes.cdll.LoadLibrary("libX11.so.6")
Display = ctypes.c_void_p
Window = Atom = ctypes.c_ulong


class ClientMessage(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong), ("send_event", ctypes.c_int),
                ("display", Display), ("window", Window), ("message_type", Atom),
                ("format", ctypes.c_int), ("l", ctypes.c_long * 5)]


class SelectionRequest(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong), ("send_event", ctypes.c_int),
                ("display", Display), ("owner", Window), ("requestor", Window),
                ("selection", Atom), ("target", Atom), ("property", Atom), ("time", ctypes.c_ulong)]


class SelectionNotify(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong), ("send_event", ctypes.c_int),
                ("display", Display), ("requestor", Window), ("selection", Atom),
                ("target", Atom), ("property", Atom), ("time", ctypes.c_ulong)]


class XEvent(ctypes.Union):
    _fields_ = [("type", ctypes.c_int), ("client", ClientMessage), ("request", SelectionRequest),
                ("notify", SelectionNotify), ("pad", ctypes.c_long * 24)]


x11.XOpenDisplay.restype = Display
x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
x11.XInternAtom.restype = Atom
x11.XInternAtom.argtypes = [Display, ctypes.c_char_p, ctypes.c_int]
x11.XDefaultRootWindow.restype = Window
x11.XDefaultRootWindow.argtypes = [Display]
x11.XCreateSimpleWindow.restype = Window
x11.XCreateSimpleWindow.argtypes = [Display, Window, ctypes.c_int, ctypes.c_int, ctypes.c_uint,
                                    ctypes.c_uint, ctypes.c_uint, ctypes.c_ulong, ctypes.c_ulong]
x11.XSetSelectionOwner.argtypes = [Display, Atom, Window, ctypes.c_ulong]
x11.XSendEvent.argtypes = [Display, Window, ctypes.c_int, ctypes.c_long, ctypes.POINTER(XEvent)]
x11.XNextEvent.argtypes = [Display, ctypes.POINTER(XEvent)]
x11.XPending.argtypes = [Display]
x11.XConnectionNumber.argtypes = [Display]
x11.XFlush.argtypes = [Display]
x11.XCloseDisplay.argtypes = [Display]
x11.XChangeProperty.argtypes = [Display, Window, Atom, Atom, ctypes.c_int, ctypes.c_int,
                                ctypes.c_char_p, ctypes.c_int]

CLIENT_MESSAGE, SELECTION_NOTIFY, SELECTION_REQUEST = 33, 31, 30  # X.h event types
TIMEOUT_S = 10.0


def drop(display: str, target: int, x: int, y: int, files: list[str]) -> float:
    """Drop `files` on window `target` of X display `display` at root position (x, y); returns
    when the XdndDrop (the release of the button) went out, in time.perf_counter() seconds.
    Raises TimeoutError without an XdndFinished from the target."""
    dpy = x11.XOpenDisplay(display.encode())
    if not dpy:
        raise ConnectionError(f"cannot open X display {display}")
    try:
        return exchange(dpy, target, x, y, files)
    finally:
        x11.XCloseDisplay(dpy)


def exchange(dpy: int, target: int, x: int, y: int, files: list[str]) -> float:
    atom = lambda name: x11.XInternAtom(dpy, name.encode(), 0)  # noqa: E731
    source = x11.XCreateSimpleWindow(dpy, x11.XDefaultRootWindow(dpy), 0, 0, 1, 1, 0, 0, 0)
    selection, uri_list = atom("XdndSelection"), atom("text/uri-list")
    x11.XSetSelectionOwner(dpy, selection, source, 0)

    def send(name: str, *data: int) -> None:
        event = XEvent()
        event.client.type, event.client.window = CLIENT_MESSAGE, target
        event.client.message_type, event.client.format = atom(name), 32
        for i, value in enumerate(data):
            event.client.l[i] = value
        x11.XSendEvent(dpy, target, 0, 0, ctypes.byref(event))
        x11.XFlush(dpy)

    send("XdndEnter", source, 5 << 24, uri_list, 0, 0)
    send("XdndPosition", source, 0, (x << 16) | y, 0, atom("XdndActionCopy"))
    payload = "".join(f"file://{Path(f).resolve()}\r\n" for f in files).encode()
    deadline = time.monotonic() + TIMEOUT_S
    dropped_s = None
    event = XEvent()
    while time.monotonic() < deadline:
        if not x11.XPending(dpy):
            # woken by the target's reply: the time it takes is the target's, not a poll's
            select.select([x11.XConnectionNumber(dpy)], [], [], 0.1)
            continue
        x11.XNextEvent(dpy, ctypes.byref(event))
        if event.type == CLIENT_MESSAGE:
            name = event.client.message_type
            if name == atom("XdndStatus") and dropped_s is None:
                dropped_s = time.perf_counter()
                send("XdndDrop", source, 0, 0)
            elif name == atom("XdndFinished"):
                return dropped_s
        elif event.type == SELECTION_REQUEST:
            request = event.request
            x11.XChangeProperty(dpy, request.requestor, request.property, request.target, 8, 0,
                                payload, len(payload))
            reply = XEvent()
            reply.notify.type, reply.notify.requestor = SELECTION_NOTIFY, request.requestor
            reply.notify.selection, reply.notify.target = request.selection, request.target
            reply.notify.property, reply.notify.time = request.property, request.time
            x11.XSendEvent(dpy, request.requestor, 0, 0, ctypes.byref(reply))
            x11.XFlush(dpy)
    raise TimeoutError(f"window {target:#x} did not finish the drop within {TIMEOUT_S:g} s")
