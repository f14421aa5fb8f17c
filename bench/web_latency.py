"""Frames per second a browser receives from `main.py --web`, and drag-to-new-frame latency.

    python bench/web_latency.py --ckpt tiny.pt checkpoints/cars.pt --json results/web_cpu.json

Runs the server as a user does (a subprocess) and headless Chromium through Selenium, drags the
view with the mouse, and reads what the server sent that browser from its --stats JSON: the frames'
send times, and per new camera the seconds from the camera message's arrival to its frame leaving
the server. Each checkpoint is measured twice: at a fixed resolution (the panel's "coarse while
moving" off: every frame at --res) and with the default dynamic resolution (coarse while moving).
tests/test_web.py drives the page with the same BrowserPage and Browser.
"""

from __future__ import annotations

import argparse
import io
import json
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
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

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


@dataclass(frozen=True)
class PageStatus:
    res: int
    render_ms: int
    frames_sent: int


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


class Browser:
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

    def click_checkbox(self, label: str) -> None:
        from selenium.webdriver.common.by import By

        box = self.driver.find_element(
            By.XPATH, f"//*[normalize-space(text())='{label}']/following::input[@type='checkbox'][1]")
        self.driver.execute_script("arguments[0].click();", box)

    def set_number(self, label: str, value: float) -> None:
        """Type `value` into the number field labelled `label`."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys

        field = self.driver.find_element(
            By.XPATH, f"//*[normalize-space(text())='{label}']/following::input[contains(@class, "
            "'NumberInput-input')][1]")
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

class BrowserPage:
    """`main.py --web` on a free port, and the browsers that open its page."""

    def __init__(self, ckpt: Path, extra_args: tuple[str, ...] = (), stats: Path | None = None):
        self.port = free_port()
        command = [sys.executable, str(ROOT / "main.py"), "--web", "--port", str(self.port),
                   "--ckpt", str(ckpt), "--device", "cpu", *extra_args]
        if stats is not None:
            command += ["--stats", str(stats)]
        self.server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True)
        self.browsers: list[Browser] = []
        ready, _, _ = select.select([self.server.stdout], [], [], SERVER_START_S)
        first = self.server.stdout.readline() if ready else ""
        if "serving the viewer at" not in first:
            _, stderr = self.close()
            raise RuntimeError(f"server said {first!r}, not its address: {stderr.strip()[-500:]}")

    def open_browser(self) -> Browser:
        browser = Browser(f"http://127.0.0.1:{self.port}/")
        self.browsers.append(browser)
        return browser

    def close(self) -> tuple[int, str]:
        """Quit the browsers, stop the server with SIGTERM; its exit code and stderr."""
        for browser in self.browsers:
            browser.quit()
        self.browsers = []
        if self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
        try:
            _, stderr = self.server.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.server.kill()
            _, stderr = self.server.communicate()
        return self.server.returncode, stderr


def measure(ckpt: Path, res: int, seconds: float, dynamic: bool) -> dict:
    """One continuous drag of `seconds` through the browser; what the server sent meanwhile."""
    with tempfile.TemporaryDirectory() as folder:
        stats_path = Path(folder) / "stats.json"
        page = BrowserPage(ckpt, ("--res", str(res)), stats=stats_path)
        try:
            browser = page.open_browser()
            browser.dismiss_notifications()
            before = browser.wait_settled(res, timeout=300)
            if not dynamic:
                browser.click_checkbox("coarse while moving")
            # back and forth over 120 px, a move each 40 ms: the camera never rests
            browser.drag(120, steps=10, step_ms=40, sweeps=max(1, round(seconds / 0.4)))
        finally:
            code, stderr = page.close()
        if code != 0:
            raise RuntimeError(f"server exit {code}: {stderr.strip()[-500:]}")
        session = json.loads(stats_path.read_text())["sessions"][0]
    start = before.frames_sent  # frames up to the drag: the first view at rest
    sent, sizes = session["sent_s"][start:], session["sent_res"][start:]
    latencies = [s for s in session["camera_latency_s"][start:] if s is not None]
    span = sent[-1] - sent[0] if len(sent) > 1 else float("nan")
    return {
        "checkpoint": ckpt.name,
        "requested_res": res,
        "dynamic_resolution": dynamic,
        "drag_s": seconds,
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", type=Path, nargs="+", required=True)
    parser.add_argument("--res", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each drag")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--screenshot", type=Path,
                        help="only save a screenshot of the page showing the first --ckpt")
    args = parser.parse_args(argv)
    if args.screenshot is not None:
        screenshot(args.ckpt[0], args.res, args.screenshot)
        return 0
    results, load_before = [], os.getloadavg()
    for ckpt in args.ckpt:
        for dynamic in (False, True):
            result = measure(ckpt, args.res, args.seconds, dynamic)
            print(json.dumps(result), flush=True)
            results.append(result)
    if args.json is not None:
        report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                  "note": "CPU, 2 cores shared with other engineers' jobs; server and headless "
                          "Chromium (software WebGL) on the same machine",
                  "load_average_1min": {"before": round(load_before[0], 1),
                                        "after": round(os.getloadavg()[0], 1)},
                  "cpu_count": os.cpu_count(), "results": results}
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
