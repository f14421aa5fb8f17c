"""Frames per second a browser receives from `main.py --web`, and drag-to-new-frame latency.

    python bench/web_latency.py --ckpt tiny.pt checkpoints/cars.pt --json results/web_cpu.json
    python bench/web_latency.py --driver websocket --device cuda --res 256 512 --ckpt checkpoints/cars.pt

Runs the server as a user does (a subprocess), opens its page, drags the view back and forth, and
reads what the server sent that page from its --stats JSON: the frames' send times, and per new
camera the seconds from the camera message's arrival to its frame leaving the server. Each
checkpoint is measured twice: at a fixed resolution (the panel's "coarse while moving" off: every
frame at --res) and with the default dynamic resolution (coarse while moving).

Two drivers open the page. `chromium` (the default): headless Chromium through Selenium drags
with the mouse. `websocket`: no browser; a websocket client speaks viser's protocol as the page's
script does (its camera at the page's rate, orbiting as the mouse drag does; each frame decoded
from its JPEG), for machines without a browser; it also reports the frames/s it received.
tests/test_web.py drives the page with the same BrowserPage and Browser.
"""

from __future__ import annotations

import abc
import argparse
import io
import itertools
import json
import math
import os
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib.metadata import version
from pathlib import Path

import msgspec
import numpy as np
import zstandard
from PIL import Image
from viser.transforms import SO3
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/web_latency.py` from anywhere

from engine.cli import OneLineParser, run_entry_point, write_json  # noqa: E402
from models.cameras import DEFAULT_FOV_DEG, Orbit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# What the sandbox's closed network needs: no QUIC, no background fetches (refused connections
# otherwise stall the page), no GPU, a fresh profile per run.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1000,700")
STATUS = re.compile(r"(\d+)² in (\d+) ms, (\d+) frames/s, (\d+) frames sent")
# The picture left of the panel, clear of viser's notifications (top left) and axes (bottom left).
VIEW_CROP = (60, 170, 640, 500)
SERVER_START_S = 120.0  # torch import and the first trace on a slow, shared 2-core machine
SETTLE_S = 1.0  # no new frame for this long: the view is at rest
DRIVERS = ("chromium", "websocket")
RESOLUTIONS = (64, 128, 256, 512, 1024)  # the page's resolution menu (square)
# The drag: SWEEP_PX sideways in SWEEP_MOVES moves over SWEEP_S, then back, for the whole drag.
SWEEP_PX, SWEEP_MOVES, SWEEP_S = 120, 10, 0.4
# The canvas headless Chromium gives the page at CHROMIUM_FLAGS' window size; the websocket client
# reports the same, so the server pads and encodes the same JPEGs for both drivers.
CANVAS_W, CANVAS_H = 1000, 557
# viser's orbit controls turn the camera a full turn per canvas height dragged sideways.
SWEEP_DEG = 360.0 * SWEEP_PX / CANVAS_H
CAMERA_PERIOD_S = 0.02  # the page sends its camera at most every 20 ms (viser's throttle)
THUMBNAIL = (8, 8)  # a received frame, reduced: enough to tell views apart


@dataclass(frozen=True)
class PageStatus:
    res: int
    render_ms: int
    frames_sent: int


def labelled(label: str) -> str:
    """XPath of the innermost element whose text is `label`, taken whole: viser breaks a long
    label after each hyphen with a <wbr>, so no single text node holds it."""
    text = f"normalize-space(string(.))='{label}'"
    return f"//*[{text} and not(*[{text}])]"


def chromium_paths() -> tuple[str, str] | None:
    """(chromium, chromedriver) when both are installed, else None."""
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def poll(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.1):
    """The first truthy value of `condition()` within `timeout` seconds, else TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout:.0f} s")
        time.sleep(interval)


class PageView(abc.ABC):
    """The server's page as a driver opened it: its status line, its panel, a drag."""

    @abc.abstractmethod
    def status(self) -> PageStatus | None:
        """The panel's status line, once a frame has arrived."""

    @abc.abstractmethod
    def click_checkbox(self, label: str) -> None: ...

    @abc.abstractmethod
    def sweep(self, seconds: float) -> None:
        """Drag the view SWEEP_PX sideways and back, without a pause, for `seconds`."""

    @abc.abstractmethod
    def quit(self) -> None: ...

    def received(self, since_s: float) -> dict:
        """What the page itself measured of the frames it received since `since_s` (perf_counter);
        nothing where the driver cannot see the page's receive times."""
        return {}

    def wait_settled(self, res: int, after_frames: int = 0, timeout: float = 90.0) -> PageStatus:
        """Wait until more than `after_frames` frames arrived, the last at `res`, and no new one
        came for SETTLE_S; returns that status."""
        last: list[tuple[PageStatus | None, float]] = [(None, time.monotonic())]

        def settled() -> PageStatus | None:
            status = self.status()
            if status != last[0][0]:
                last[0] = (status, time.monotonic())
                return None
            quiet = time.monotonic() - last[0][1] >= SETTLE_S
            ok = status is not None and status.frames_sent > after_frames and status.res == res
            return status if ok and quiet else None

        return poll(settled, timeout, f"frame at {res}² after frame {after_frames}")


class Browser(PageView):
    """Headless Chromium showing the page at `url`, and what a user does there."""

    def __init__(self, url: str):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        paths = chromium_paths()
        if paths is None:
            raise RuntimeError("chromium and chromedriver are not installed")
        options = webdriver.ChromeOptions()
        options.binary_location = paths[0]
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        self.profile = tempfile.TemporaryDirectory()
        options.add_argument(f"--user-data-dir={self.profile.name}")
        self.driver = webdriver.Chrome(service=Service(paths[1]), options=options)
        try:
            self.driver.get(url)
        except BaseException:
            self.quit()
            raise

    def quit(self) -> None:
        self.driver.quit()
        self.profile.cleanup()

    # ---- reading the page ---------------------------------------------------------------------

    def status(self) -> PageStatus | None:
        """The panel's status line, once a frame has arrived."""
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.common.by import By

        try:
            lines = self.driver.find_elements(By.XPATH, "//p[contains(., 'frames sent')]")
            match = STATUS.search(lines[0].text) if lines else None
        except WebDriverException:  # the element was replaced while being read
            return None
        return PageStatus(int(match[1]), int(match[2]), int(match[4])) if match else None

    def view(self) -> np.ndarray:
        """The picture region of a screenshot, (H, W, 3) uint8."""
        shot = Image.open(io.BytesIO(self.driver.get_screenshot_as_png())).convert("RGB")
        return np.asarray(shot.crop(VIEW_CROP))

    # ---- driving the page ---------------------------------------------------------------------

    def dismiss_notifications(self) -> None:
        """Close viser's notices (software WebGL in headless Chromium) that cover the picture."""
        for button in self.notifications():
            button.click()

    def notifications(self) -> list:
        """The close buttons of viser's notices on the page."""
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, ".mantine-Notification-closeButton")

    def drag(self, dx: int, steps: int = 6, step_ms: int = 30, sweeps: int = 1) -> None:
        """Press the left button at the picture's center and move it `dx` pixels sideways in
        `steps` moves of `step_ms`, then back, `sweeps` times in all: viser's orbit controls turn
        the camera about its target."""
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.by import By

        canvas = self.driver.find_element(By.TAG_NAME, "canvas")
        x0, y0, x1, y1 = VIEW_CROP
        chain = ActionChains(self.driver, duration=step_ms)
        chain.move_to_element_with_offset(canvas, (x0 + x1) // 2 - canvas.rect["width"] // 2,
                                          (y0 + y1) // 2 - canvas.rect["height"] // 2)
        chain.click_and_hold()
        for sweep in range(sweeps):
            for _ in range(steps):
                chain.move_by_offset((dx // steps) * (-1) ** sweep, 0)
        chain.release().perform()

    def sweep(self, seconds: float) -> None:
        self.drag(SWEEP_PX, steps=SWEEP_MOVES, step_ms=round(1000 * SWEEP_S / SWEEP_MOVES),
                  sweeps=max(1, round(seconds / SWEEP_S)))

    def number_input(self, index: int):
        """The panel's index-th number field (the instance slider's is the first)."""
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, "input.mantine-NumberInput-input")[index]

    def set_instance(self, instance: int) -> None:
        from selenium.webdriver.common.keys import Keys

        field = self.number_input(0)
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys(str(instance), Keys.ENTER)

    def click_button(self, label: str) -> None:
        from selenium.webdriver.common.by import By

        button = self.driver.find_element(By.XPATH, f"//button[normalize-space(.)='{label}']")
        self.driver.execute_script("arguments[0].click();", button)  # even while scrolled away

    def open_folder(self, label: str) -> None:
        """Expand a folder of the panel that starts collapsed."""
        from selenium.webdriver.common.by import By

        folder = self.driver.find_element(By.XPATH, f"//*[normalize-space(text())='{label}']")
        self.driver.execute_script("arguments[0].click();", folder)  # even below the fold

    def tables(self) -> list[str]:
        """The text of every table on the page (rows on lines, cells separated by spaces)."""
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.common.by import By

        try:
            return [table.text for table in self.driver.find_elements(By.TAG_NAME, "table")]
        except WebDriverException:  # replaced while being read
            return []

    def upload(self, path: Path) -> None:
        """Give `path` to the panel's upload button (its hidden file input)."""
        from selenium.webdriver.common.by import By

        self.driver.find_element(By.CSS_SELECTOR, "input[type='file']").send_keys(str(path))

    def text(self) -> str:
        """The page's visible text."""
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.TAG_NAME, "body").text

    def checkbox(self, label: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(
            By.XPATH, f"{labelled(label)}/following::input[@type='checkbox'][1]")

    def click_checkbox(self, label: str) -> None:
        self.driver.execute_script("arguments[0].click();", self.checkbox(label))

    def set_number(self, label: str, value: float) -> None:
        """Type `value` into the number field labelled `label`."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys

        field = self.driver.find_element(
            By.XPATH, f"{labelled(label)}/following::input[contains(@class, 'NumberInput-input')][1]")
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys(f"{value:g}", Keys.ENTER)

    def save_downloads_to(self, folder: Path) -> None:
        """Files the page offers for download go to `folder` (headless Chromium drops them otherwise)."""
        self.driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                                    {"behavior": "allow", "downloadPath": str(folder)})

    def download(self, name: str) -> None:
        """Click the link that saves the file the page offers as `name` (viser's download notice)."""
        from selenium.webdriver.common.by import By

        link = self.driver.find_element(By.CSS_SELECTOR, f"a[download='{name}']")
        self.driver.execute_script("arguments[0].click();", link)


@dataclass(frozen=True)
class ReceivedFrame:
    received_s: float  # perf_counter when its message arrived
    decode_ms: float  # the JPEG's
    rows: int
    thumbnail: np.ndarray  # THUMBNAIL gray levels, float32: to tell views apart


def window_messages(data: bytes) -> list[dict]:
    """The messages in one websocket message of viser's server: the sizes of the msgpack payload
    decompressed and compressed (little-endian uint64 each), the zstd-compressed msgpack, then the
    binary buffers its placeholders name (numpy arrays: an encoded JPEG is one), each 8-byte
    aligned and not compressed."""
    size = int.from_bytes(data[:8], "little")
    compressed = int.from_bytes(data[8:16], "little")
    payload = zstandard.ZstdDecompressor().decompress(data[16:16 + compressed], max_output_size=size)
    window = msgspec.msgpack.decode(payload)
    buffers, offset = [], 16 + compressed
    for length in window.get("binaryBufferLengths", ()):
        offset += -offset % 8
        buffers.append(data[offset:offset + length])
        offset += length
    return [with_buffers(message, buffers) for message in window["messages"]]


def with_buffers(value, buffers: list[bytes]):
    """`value` with each binary placeholder ({"__binary_index": i, "dtype": …}) replaced by its bytes."""
    if isinstance(value, dict):
        if "__binary_index" in value and "dtype" in value:
            return buffers[value["__binary_index"]]
        return {key: with_buffers(item, buffers) for key, item in value.items()}
    if isinstance(value, list):
        return [with_buffers(item, buffers) for item in value]
    return value


def camera_message(orbit: Orbit) -> dict:
    """The camera message the page sends for a camera at `orbit` (viser's ViewerCameraMessage: an
    OpenCV camera, world z up, on a CANVAS_W x CANVAS_H canvas)."""
    pose = orbit.cam2world().double().numpy()
    return {"type": "ViewerCameraMessage", "wxyz": SO3.from_matrix(pose[:3, :3]).wxyz.tolist(),
            "position": pose[:3, 3].tolist(), "fov": math.radians(DEFAULT_FOV_DEG), "near": 0.01,
            "far": 1000.0, "image_height": CANVAS_H, "image_width": CANVAS_W,
            "look_at": list(orbit.target), "up_direction": [0.0, 0.0, 1.0]}


class SocketPage(PageView):
    """What the page's script does over viser's websocket, without a browser: it sends the page's
    camera and panel edits (plain msgpack), and a thread reads the server's messages, decoding
    each background image (a frame) and keeping the panel's markdown and checkboxes."""

    def __init__(self, url: str):
        # the page names its viser version as the subprotocol; the server refuses any other
        self.connection = connect(url, subprotocols=[f"viser-v{version('viser')}"], compression=None,
                                  max_size=None, open_timeout=SERVER_START_S)
        self.frames: list[ReceivedFrame] = []
        self.markdown: dict[str, str] = {}  # uuid -> content
        self.checkboxes: dict[str, str] = {}  # label -> uuid
        self.values: dict[str, object] = {}  # uuid -> the input's value
        self.failure: Exception | None = None  # what stopped the reader, other than the closing
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()
        self.send(camera_message(Orbit()))  # the server's first view: its sessions start at the first camera

    def quit(self) -> None:
        self.connection.close()
        self.reader.join()

    def send(self, message: dict) -> None:
        self.connection.send(msgspec.msgpack.encode(message))

    # ---- the server's messages (the reader thread) ---------------------------------------------

    def read(self) -> None:
        try:
            for data in self.connection:
                received_s = time.perf_counter()
                for message in window_messages(data):
                    self.handle(message, received_s)
        except ConnectionClosed:
            pass
        except Exception as error:  # status() reports it: waiting for frames ends at once
            self.failure = error

    def handle(self, message: dict, received_s: float) -> None:
        kind = message["type"]
        if kind == "BackgroundImageMessage" and message["rgb_data"] is not None:  # None: no image
            self.frames.append(decode_frame(message["rgb_data"], received_s))
        elif kind == "GuiMarkdownMessage":
            self.markdown[message["uuid"]] = message["props"]["_markdown"]
        elif kind == "GuiCheckboxMessage":
            self.checkboxes[message["props"]["label"]] = message["uuid"]
            self.values[message["uuid"]] = message["value"]
        elif kind == "GuiUpdateMessage":
            uuid, updates = message["uuid"], message["updates"]
            if uuid in self.markdown and "_markdown" in updates:
                self.markdown[uuid] = updates["_markdown"]
            if uuid in self.values and "value" in updates:
                self.values[uuid] = updates["value"]

    # ---- the page -------------------------------------------------------------------------------

    def status(self) -> PageStatus | None:
        if self.failure is not None:
            raise RuntimeError(f"reading the server's messages failed: {self.failure}") from self.failure
        for text in list(self.markdown.values()):
            if match := STATUS.search(text):
                return PageStatus(int(match[1]), int(match[2]), int(match[4]))
        return None

    def click_checkbox(self, label: str) -> None:
        uuid = self.checkboxes[label]
        self.values[uuid] = not self.values[uuid]
        self.send({"type": "GuiUpdateMessage", "uuid": uuid, "updates": {"value": self.values[uuid]}})

    def sweep(self, seconds: float) -> None:
        """The camera a mouse drag makes: SWEEP_DEG of azimuth over SWEEP_S, then back, sent every
        CAMERA_PERIOD_S as the page sends it while the mouse moves."""
        home = Orbit()
        started = time.perf_counter()
        for tick in range(round(seconds / CAMERA_PERIOD_S)):
            phase = (tick * CAMERA_PERIOD_S / SWEEP_S) % 2.0  # 0 to 1 out, 1 to 2 back
            turned = SWEEP_DEG * (phase if phase <= 1.0 else 2.0 - phase)
            self.send(camera_message(replace(home, azimuth=home.azimuth - turned)))
            time.sleep(max(0.0, started + (tick + 1) * CAMERA_PERIOD_S - time.perf_counter()))

    def received(self, since_s: float) -> dict:
        frames = [f for f in self.frames if f.received_s >= since_s]
        gaps = np.diff([f.received_s for f in frames])
        span = frames[-1].received_s - frames[0].received_s if len(frames) > 1 else 0.0
        return {
            "client_frames_during_drag": len(frames),
            "client_received_fps": round((len(frames) - 1) / span, 2) if span > 0 else 0.0,
            "client_median_gap_ms": round(1000 * float(np.median(gaps)), 1) if len(gaps) else None,
            "client_max_gap_ms": round(1000 * float(gaps.max()), 1) if len(gaps) else None,
            "client_median_decode_ms": round(statistics.median(f.decode_ms for f in frames), 2)
            if frames else None,
        }


def decode_frame(jpeg: bytes, received_s: float) -> ReceivedFrame:
    started = time.perf_counter()
    image = Image.open(io.BytesIO(jpeg)).convert("RGB")
    decode_ms = 1000 * (time.perf_counter() - started)
    thumbnail = np.asarray(image.convert("L").resize(THUMBNAIL, Image.Resampling.BOX), np.float32)
    return ReceivedFrame(received_s, decode_ms, image.height, thumbnail)


class BrowserPage:
    """`main.py --web` on a free port, and the pages that open it (browsers or socket clients)."""

    def __init__(self, ckpt: Path, extra_args: tuple[str, ...] = (), stats: Path | None = None,
                 device: str = "cpu"):
        self.port = free_port()
        command = [sys.executable, str(ROOT / "main.py"), "--web", "--port", str(self.port),
                   "--ckpt", str(ckpt), "--device", device, *extra_args]
        if stats is not None:
            command += ["--stats", str(stats)]
        self.server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True)
        self.pages: list[PageView] = []
        ready, _, _ = select.select([self.server.stdout], [], [], SERVER_START_S)
        first = self.server.stdout.readline() if ready else ""
        if "serving the viewer at" not in first:
            _, stderr = self.close()
            raise RuntimeError(f"server said {first!r}, not its address: {stderr.strip()[-500:]}")

    def open_browser(self) -> Browser:
        return self.opened(Browser(f"http://127.0.0.1:{self.port}/"))

    def open_socket(self) -> SocketPage:
        return self.opened(SocketPage(f"ws://127.0.0.1:{self.port}/"))

    def open_page(self, driver: str) -> PageView:
        """The page opened by `driver` (one of DRIVERS), with nothing covering its picture."""
        if driver == "websocket":
            return self.open_socket()
        browser = self.open_browser()
        browser.dismiss_notifications()
        return browser

    def opened(self, page: PageView):
        self.pages.append(page)
        return page

    def close(self) -> tuple[int, str]:
        """Quit the pages, stop the server with SIGTERM; its exit code and stderr."""
        for page in self.pages:
            page.quit()
        self.pages = []
        if self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
        try:
            _, stderr = self.server.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.server.kill()
            _, stderr = self.server.communicate()
        return self.server.returncode, stderr


def measure(ckpt: Path, res: int, seconds: float, dynamic: bool, driver: str, device: str,
            precision: str = "auto") -> dict:
    """One continuous drag of `seconds` through the page `driver` opens; what the server sent
    meanwhile, and what the page measured itself where it can."""
    with tempfile.TemporaryDirectory() as folder:
        stats_path = Path(folder) / "stats.json"
        server = BrowserPage(ckpt, ("--res", str(res), "--precision", precision), stats=stats_path,
                             device=device)
        try:
            page = server.open_page(driver)
            before = page.wait_settled(res, timeout=300)
            if not dynamic:
                page.click_checkbox("coarse while moving")
            drag_started = time.perf_counter()
            page.sweep(seconds)
            time.sleep(SETTLE_S)  # the frames still on their way, which the server's stats count too
            received = page.received(drag_started)
        finally:
            code, stderr = server.close()
        if code != 0:
            raise RuntimeError(f"server exit {code}: {stderr.strip()[-500:]}")
        stats = json.loads(stats_path.read_text())
    return {"checkpoint": ckpt.name, "driver": driver, "device": stats["device"],
            "precision": stats["precision"], "requested_res": res, "dynamic_resolution": dynamic,
            "drag_s": seconds,
            **sent_summary(stats["sessions"][0], before.frames_sent), **received}


def sent_summary(session: dict, start: int) -> dict:
    """The frames a session of the server's --stats sent from frame `start` on: how many, how
    often, at which sizes, their render times and camera-to-frame latencies."""
    sent, sizes = session["sent_s"][start:], session["sent_res"][start:]
    latencies = [s for s in session["camera_latency_s"][start:] if s is not None]
    span = sent[-1] - sent[0] if len(sent) > 1 else float("nan")
    return {
        "frames_during_drag": len(sent),
        "delivered_fps": round((len(sent) - 1) / span, 2) if len(sent) > 1 else 0.0,
        "resolutions_sent": sorted(set(sizes)),
        "median_render_ms": round(statistics.median(session["render_ms"][start:]), 1) if sent else None,
        "median_camera_to_frame_ms": round(1000 * statistics.median(latencies), 1) if latencies else None,
    }


def screenshot(ckpt: Path, res: int, path: Path) -> None:
    """The whole page, once the view rests at `res`, as a PNG."""
    page = BrowserPage(ckpt, ("--res", str(res)))
    try:
        browser = page.open_browser()
        browser.wait_settled(res, timeout=300)
        browser.dismiss_notifications()
        poll(lambda: not browser.notifications(), 10.0, "notices closed")
        browser.driver.save_screenshot(str(path))
    finally:
        page.close()


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", type=Path, nargs="+", required=True,
                        help="checkpoints the `main.py --web` server loads, each measured in turn")
    parser.add_argument("--res", type=int, nargs="+", default=[256], choices=RESOLUTIONS,
                        help="square render resolutions, each measured (default 256)")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each drag")
    parser.add_argument("--driver", choices=DRIVERS, default="chromium",
                        help="what opens the page: headless Chromium, or a websocket client "
                             "speaking viser's protocol (no browser needed)")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="cpu",
                        help="the server's --device")
    parser.add_argument("--precision", nargs="+", default=["auto"], choices=("auto", "fp32", "fp16", "bf16"),
                        help="the server's --precision, each measured in turn (default auto)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--screenshot", type=Path,
                        help="only save a screenshot of the page showing the first --ckpt (Chromium)")
    args = parser.parse_args(argv)
    if args.screenshot is not None:
        return run_entry_point(lambda: screenshot(args.ckpt[0], args.res[0], args.screenshot), args.debug)
    return run_entry_point(lambda: run(args), args.debug)


def run(args: argparse.Namespace) -> None:
    results, load_before = [], os.getloadavg()
    for ckpt in args.ckpt:
        for res, precision in itertools.product(args.res, args.precision):
            for dynamic in (False, True):
                result = measure(ckpt, res, args.seconds, dynamic, args.driver, args.device, precision)
                print(json.dumps(result), flush=True)
                results.append(result)
    if args.json is not None:
        client = ("headless Chromium (software WebGL)" if args.driver == "chromium"
                  else "the websocket client (no browser)")
        write_json(args.json, {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "note": f"server and {client} on the same machine",
            "load_average_1min": {"before": round(load_before[0], 1), "after": round(os.getloadavg()[0], 1)},
            "cpu_count": os.cpu_count(), "results": results})


if __name__ == "__main__":
    sys.exit(main())
