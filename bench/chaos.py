"""Chaos run of the real viewer window: random input for minutes, then a check that nothing broke.

    python -m bench.chaos --minutes 10 [--ckpt checkpoints/cars.pt] [--seed 0] [--json PATH]

Starts a private Xvfb and `python main.py` on it, as a user would. First a prelude
(bench/chaos_prelude.py) presses every feature of the panel once, in a fixed order, finding the
widgets by label in the window's widget map: what a feature's first use loads stays for the life
of the process, and is taken before memory is judged. Then it sends random drags, scrolls, keys,
panel clicks and drags, double-clicks, resizes and unmap/map (Xvfb has no window manager, so that
stands in for minimize/restore) through xdotool. Panel clicks land anywhere in the panel, so over
a run they press its buttons (benchmark, reconstruct, stop, backend and precision switches,
modes) and drag its sliders at random. Resident memory is read every second, on a thread of its
own. At the end the window gets SIGTERM, as a desktop closes it, whatever is running then.

The viewer runs on a copy of the checkpoint (and its encoder) in the run's temporary folder, its
working folder too: what it writes beside its checkpoint ("Save checkpoint copy") or into its
folder (screenshots, paths, videos) stays out of the repository.

Verdict (exit 1 when any fails): the viewer exits 0 within EXIT_TIMEOUT_S of SIGTERM, prints no
`error:` line and no traceback, its slowest UI frame stays under HANG_MS, every prelude step did
what it should, and resident memory at rest grows by less than GROWTH_LIMIT after the first minute,
or after the prelude where that ends later (the JSON's judged_from_s).

How memory is judged (since run H; RELIABILITY.md says why). Every REST_EVERY_S of input the
random input rests: the jobs running are stopped first (their stop buttons pressed; the input goes
on until none runs), then RGB is pressed and nothing more is sent until an RGB frame of the
requested size is on screen and the viewer's CPU has been idle for REST_STILL_S, then
REST_TRIM_WAIT_S more, by when the render thread has handed freed memory back (viewer/worker.py
REST_TRIM_S); then one reading. That is the same state at every rest: no input in flight, no
frame rendering, no job, the same mode. A rest also carries the background jobs the panel shows
running, read off the widget map (running_jobs). Growth is the least-squares trend
line, from its first to its last, through the rests after judged_from_s that settled with no job
running; fewer than REST_MIN_READINGS of them over REST_MIN_SPAN_S fail the run as not judged. A
leak lifts every rest; the working memory of frames, events and jobs between rests does not. The
one-second readings of the run (every reading, with its mode, size, jobs and threads) are kept and
reported beside it, not judged: the lines through them, per mode, over readings with no job (the
verdict of runs G and G2) and over all, and each minute's floor.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/chaos.py` from anywhere

from bench import DEFAULT_CKPT  # noqa: E402
from bench.chaos_prelude import STEPS, Prelude, PreludeStep, StepFailed  # noqa: E402
from engine.cli import OneLineParser, UsageError, run_entry_point  # noqa: E402
from engine.display_mode import DisplayMode  # noqa: E402
from engine.widget_map import EXPORTING, FITTING, WIDGET_MAP_ENV, Widget, read_widget_map  # noqa: E402
from models.encoder import encoder_path  # noqa: E402
from models.resolution import Resolution  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HANG_MS = 1000.0
GROWTH_LIMIT = 0.05
EXIT_TIMEOUT_S = 30.0
SETTLE_S = 60.0  # memory is judged after this much of the run: tracing and caches settle first
MODE_MIN_READINGS = 60  # a mode's trend is judged on at least this many one-second readings ...
MODE_MIN_SPAN_S = 240.0  # ... spread over at least this long
WINDOW_TIMEOUT_S = 60.0
# Rests: every REST_EVERY_S the random input stops, RGB is pressed, and nothing more is sent until
# the view is at rest: the title names an RGB frame of the requested size (the combo's) and the
# viewer used at most REST_CPU_SHARE of a core over the last REST_STILL_S (no frame in flight: the
# title cannot tell one of the same size), then REST_TRIM_WAIT_S more, past the render thread's
# trim 0.5 s into a rest (viewer/worker.py REST_TRIM_S); memory is read then. A rest that does not
# settle within REST_MAX_S (a 1024² frame on a CPU) is kept, not judged. Memory at rest is judged on
# at least REST_MIN_READINGS over REST_MIN_SPAN_S.
REST_EVERY_S = 20.0
# A rest due while jobs run presses what stops them, and the random input goes on until none runs
# (checked every REST_RETRY_S): the benchmark ends before its next frame, a volumetric CPU frame
# of seconds to a minute.
REST_RETRY_S = 5.0
REST_STILL_S = 1.0
REST_CPU_SHARE = 0.5  # of one core, at most, over REST_STILL_S: no frame renders (a frame takes both)
REST_POLL_S = 0.2
REST_REPRESS_S = 3.0  # RGB is pressed again if the title still names another mode this long after
REST_TRIM_WAIT_S = 0.5
REST_MAX_S = 15.0
REST_MIN_READINGS = 8
REST_MIN_SPAN_S = 240.0
BATCH = 4  # random events sent by one xdotool command (its commands chain)
CLICK_DELAY_MS = 20  # after each click of a click, scroll or double click
DRAG_STEP_S = 0.01  # between the 4 moves of a drag: it spans a few UI frames
PANEL_SHARE = 1 / 3  # the panel takes at most a third of the window's width (viewer/layout.py)
KEYS = ("bracketleft", "bracketright", "Prior", "Next", "1", "2", "3", "4", "r", "s",
        "Left", "Right", "Up", "Down", "space", "Return", "a", "BackSpace")
# Event kinds and how often each is drawn: mostly what a user does most.
WEIGHTS = {"drag": 20, "pan": 5, "scroll": 10, "key": 20, "panel_click": 25, "panel_drag": 8,
           "double_click": 2, "resize": 4, "minimize": 2}


@dataclass
class ChaosConfig:
    ckpt: Path
    minutes: float
    seed: int = 0
    res: int = 128
    prelude: tuple[str, ...] = tuple(STEPS)  # the prelude's steps to run (bench/chaos_prelude.py)


@dataclass
class Reading:
    seconds: float
    mb: float
    mode: str  # the display mode the window's title named then ("?" if it named none)
    # A benchmark run, a video export or a fit runs on threads of its own (an EGL context brings
    # llvmpipe's, an encoder x264's): the count says when one ran.
    threads: int = 0
    # The shown frame's size, "128" or "WxH" ("?" if the title named none): a large depth frame's
    # working memory is hundreds of MB while it renders.
    res: str = "?"
    # The background jobs the panel showed running at that second (running_jobs): their working
    # memory is in the reading, and the verdict judges the readings without any.
    jobs: tuple[str, ...] = ()
    # The resident set's parts: anonymous memory (heap, tensors, textures) and pages of files
    # (libraries' code, mapped as it first runs).
    anon_mb: float = 0.0
    file_mb: float = 0.0


@dataclass
class RestReading(Reading):
    """A reading at a rest of the random input (REST_EVERY_S): the same state each time, the
    requested frame on screen and the render thread rested, unless `settled` is False."""

    settled: bool = False
    waited_s: float = 0.0  # from the last event to the reading
    # how the jobs running when the rest was due were stopped (Prelude.stop_jobs), each time
    stopped: tuple[str, ...] = ()
    cpu_share: float | None = None  # the viewer's CPU use, cores, over the last REST_STILL_S before it


NO_MAP = "no widget map"  # a reading's jobs before the panel's first frame: unknown, so not judged


def running_jobs(widgets: dict[str, Widget]) -> tuple[str, ...]:
    """The background jobs the panel shows running, from the widget map: Run benchmark is disabled
    while the benchmark runs, the backend combo while a switch builds, and the Record path and
    Reconstruct headers name their export and fit (drawn while their sections are closed, unlike
    the Export video and Stop buttons)."""
    if not widgets:
        return (NO_MAP,)
    signals = {
        "benchmark": "Run benchmark" in widgets and widgets["Run benchmark"].disabled,
        "backend switch": "backend" in widgets and widgets["backend"].disabled,
        "video export": f"Record path ({EXPORTING})" in widgets,
        "fit": f"Reconstruct from a photo ({FITTING})" in widgets,
    }
    return tuple(job for job, running in signals.items() if running)


@dataclass
class MinuteFloor:
    """The lowest reading of one minute of the run, of all readings and of those with no job."""

    minute: int
    mb: int
    no_job_mb: int | None  # None: a job ran at every reading of that minute


def minute_floors(memory: list[Reading]) -> list[MinuteFloor]:
    minutes: dict[int, list[Reading]] = {}
    for reading in memory:
        minutes.setdefault(int(reading.seconds // 60), []).append(reading)
    return [MinuteFloor(minute, round(min(r.mb for r in readings)),
                        min((round(r.mb) for r in readings if not r.jobs), default=None))
            for minute, readings in sorted(minutes.items())]


@dataclass
class ChaosReport:
    date: str
    seconds: float
    events: int
    event_counts: dict[str, int]
    exit_code: int | None
    exit_seconds: float | None
    stderr_lines: list[str]
    ui_frame_ms_max: float | None
    ui_frame_ms_p95: float | None
    rss_mb_peak: float
    ui_frames_slowest: list[dict]  # the viewer's --stats: the slowest UI frames, where their time went
    rss_mb_judged_start: float | None  # the trend line through the judged rests, at its ends
    rss_mb_end: float | None
    prelude: list[PreludeStep]
    judged_from_s: float | None  # memory is judged from here: the first minute's end, or the prelude's
    rss_growth: float | None  # judged: the trend through the rests after judged_from_s, settled, no job
    rests: list[RestReading]  # every rest's reading
    judged_rests: int
    rss_growth_by_mode: dict[str, float]  # not judged (judged until run G2): readings with no job, per mode
    rss_growth_by_mode_all_readings: dict[str, float]  # not judged: every reading, per mode
    rss_growth_all_readings: float | None  # not judged: one line through every reading
    judged_readings: int  # readings after judged_from_s with no background job running ...
    settled_readings: int  # ... of all readings after judged_from_s
    rss_mb_floor_by_minute: list[MinuteFloor]
    rss_mb_every_10s: list[int]
    rss_mb_and_mode_every_5s: list[tuple[int, int, str]]  # (seconds, MB, mode): what the verdict read
    threads_every_5s: list[int]  # the viewer's threads at those readings
    res_every_5s: list[str]  # the shown frame's size at those readings
    readings: list[Reading]  # every one-second reading, with the jobs running then
    failures: list[str] = field(default_factory=list)


def start_xvfb() -> tuple[subprocess.Popen, str]:
    """A private X server (it picks a free display number and tells us through -displayfd)."""
    server = subprocess.Popen(["Xvfb", "-displayfd", "1", "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    number = server.stdout.readline().strip()
    if not number.isdigit():
        server.kill()
        raise RuntimeError("Xvfb did not start")
    return server, f":{number}"


@dataclass
class ProcessMemory:
    mb: float  # resident
    anon_mb: float
    file_mb: float
    threads: int


def process_memory(pid: int) -> ProcessMemory | None:
    """Resident memory, its anonymous and file-backed parts, and the thread count of `pid`, or None
    once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
        mb = {key: int(fields[key].split()[0]) / 1024 for key in ("VmRSS", "RssAnon", "RssFile")}
        return ProcessMemory(mb["VmRSS"], mb["RssAnon"], mb["RssFile"], int(fields["Threads"]))
    except (OSError, KeyError, ValueError):
        return None


def title_mode_and_size(title: str) -> tuple[str, str]:
    """The mode and size in the title, "LFN viewer - <latent> - <mode> - <res>px" (viewer/app.py),
    or "?" for each before the first frame."""
    parts = title.rsplit(" - ", 2)
    return (parts[1], parts[2][:-2]) if len(parts) == 3 and parts[2].endswith("px") else ("?", "?")


def requested_size(widgets: dict[str, Widget]) -> str | None:
    """The size the resolution combo shows ("128 x 128"), as the title names a size ("128"), or
    None without the combo."""
    combo = widgets.get("resolution")
    if combo is None or combo.value is None:
        return None
    width, height = (int(n) for n in combo.value.split(" x "))
    return str(Resolution(width, height))


class Driver:
    """xdotool commands into one window."""

    def __init__(self, env: dict[str, str], window: str, rng: random.Random):
        self.env, self.window, self.rng = env, window, rng
        self.size = (1280, 800)

    def run(self, *words: str) -> None:
        subprocess.run(["xdotool", *words], env=self.env, capture_output=True, timeout=20)

    def title(self) -> str:
        return subprocess.run(["xdotool", "getwindowname", self.window], env=self.env,
                              capture_output=True, text=True, timeout=20).stdout.strip()

    def shown(self) -> tuple[str, str]:
        return title_mode_and_size(self.title())

    def point(self, in_panel: bool) -> tuple[int, int]:
        width, height = self.size
        split = int(width * PANEL_SHARE)
        x = self.rng.randrange(0, split) if in_panel else self.rng.randrange(split, width)
        return x, self.rng.randrange(0, height)

    def drag(self, button: int, in_panel: bool) -> list[str]:
        (x, y), (x2, y2) = self.point(in_panel), self.point(self.rng.random() < 0.5)
        words = ["mousemove", "--window", self.window, str(x), str(y), "mousedown", str(button)]
        for k in range(1, 5):
            words += ["mousemove", "--window", self.window, str(x + (x2 - x) * k // 4),
                      str(y + (y2 - y) * k // 4), "sleep", str(DRAG_STEP_S)]
        return [*words, "mouseup", str(button)]

    def words(self, kind: str) -> list[str]:
        """The xdotool words that send one event of `kind`."""
        if kind == "drag":
            return self.drag(1, in_panel=False)
        if kind == "pan":
            return self.drag(self.rng.choice((2, 3)), in_panel=False)
        if kind == "panel_drag":
            return self.drag(1, in_panel=True)
        if kind in ("panel_click", "double_click", "scroll"):
            x, y = self.point(kind == "panel_click" or self.rng.random() < 0.2)
            button = self.rng.choice(("4", "5")) if kind == "scroll" else "1"
            repeat = {"double_click": 2, "scroll": self.rng.randint(1, 3)}.get(kind, 1)
            # xdotool waits 100 ms after each click unless told (a double click needs < 0.3 s)
            return ["mousemove", "--window", self.window, str(x), str(y), "click", "--repeat", str(repeat),
                    "--delay", str(CLICK_DELAY_MS), button]
        if kind == "key":
            # focused, then typed (XTEST): `key --window` sends synthetic events to the window, which
            # reach it only while it has the focus, and an unmap takes the focus away for good
            return ["windowfocus", self.window, "key", self.rng.choice(KEYS)]
        if kind == "resize":
            self.size = (self.rng.randrange(480, 1500), self.rng.randrange(360, 950))
            return ["windowsize", self.window, str(self.size[0]), str(self.size[1])]
        if kind == "minimize":
            return ["windowunmap", self.window, "sleep", str(round(self.rng.uniform(0.1, 1.0), 2)),
                    "windowmap", "--sync", self.window]
        raise ValueError(f"no event kind {kind!r}")

    def send(self, kinds: list[str]) -> None:
        """One event of each of `kinds`, in order, through one xdotool command (its commands chain)."""
        self.run(*[word for kind in kinds for word in self.words(kind)])


class MemoryReader(threading.Thread):
    """Reads the viewer's resident memory, threads, title's mode and the widget map's running jobs
    every second, until stopped: on a thread of its own, so that a prelude step waiting for a job
    misses no reading."""

    def __init__(self, pid: int, driver: Driver, widget_map: Path, started: float):
        super().__init__(name="chaos-memory", daemon=True)
        self.pid, self.driver, self.widget_map, self.started = pid, driver, widget_map, started
        self.readings: list[Reading] = []
        self.stop = threading.Event()

    def run(self) -> None:
        next_reading = self.started
        while not self.stop.wait(max(0.0, next_reading - time.monotonic())):
            next_reading += 1.0
            if (memory := process_memory(self.pid)) is None:
                return  # the viewer is gone
            seconds = time.monotonic() - self.started
            mode, res = self.driver.shown()
            jobs = running_jobs(read_widget_map(self.widget_map))
            self.readings.append(Reading(seconds, memory.mb, mode, memory.threads, res, jobs,
                                         memory.anon_mb, memory.file_mb))


def cpu_seconds(pid: int) -> float | None:
    """CPU time `pid` has used, user and system, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()  # after the command's name, which may hold spaces
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    except (OSError, IndexError, ValueError):
        return None


def rest(driver: Driver, presser: Prelude, pid: int, widget_map: Path, started: float,
         stopped: tuple[str, ...]) -> RestReading | None:
    """RGB pressed, then no input until the view is at rest (REST_* above), then one reading; None if
    the viewer is gone. `stopped`: how the jobs running when the rest was due were stopped."""
    begun = pressed = time.monotonic()
    rgb = DisplayMode.RGB.label
    with contextlib.suppress(StepFailed):  # not pressed: the rest does not settle, it is kept not judged
        presser.press(rgb)
    cpu: list[tuple[float, float]] = []  # (when, the viewer's CPU seconds), the last REST_STILL_S
    settled, share = False, None
    while not settled and time.monotonic() - begun < REST_MAX_S:
        time.sleep(REST_POLL_S)
        if (used := cpu_seconds(pid)) is None:
            return None
        now = time.monotonic()
        cpu = [*[(t, c) for t, c in cpu if now - t <= REST_STILL_S], (now, used)]
        mode, size = driver.shown()
        if mode not in ("?", rgb) and now - pressed >= REST_REPRESS_S:  # the press missed (a popup open)
            with contextlib.suppress(StepFailed):
                presser.press(rgb)
            pressed = time.monotonic()
        if now - cpu[0][0] < REST_STILL_S - REST_POLL_S:
            continue
        share = (used - cpu[0][1]) / (now - cpu[0][0])
        idle = share <= REST_CPU_SHARE
        requested = requested_size(read_widget_map(widget_map))
        settled = idle and mode == rgb and requested in (None, size)
    time.sleep(REST_TRIM_WAIT_S)
    if (memory := process_memory(pid)) is None:
        return None
    now = time.monotonic()
    mode, size = driver.shown()
    jobs = running_jobs(read_widget_map(widget_map))
    return RestReading(now - started, memory.mb, mode, memory.threads, size, jobs, memory.anon_mb,
                       memory.file_mb, settled, round(now - begun, 1), stopped,
                       None if share is None else round(share, 2))


def checkpoint_copy(ckpt: Path, folder: Path) -> Path:
    """The checkpoint, and its encoder if it has one, copied into the run's folder: what the viewer
    writes beside its checkpoint ("Save checkpoint copy" offers `<stem>_fitted.pt` there) lands in
    the run's folder, not in the repository."""
    copy = folder / ckpt.name
    shutil.copyfile(ckpt, copy)
    if encoder_path(ckpt).exists():
        shutil.copyfile(encoder_path(ckpt), encoder_path(copy))
    return copy


def chaos_run(config: ChaosConfig, progress=print) -> ChaosReport:
    for tool in ("Xvfb", "xdotool"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed (apt-get install xvfb xdotool)")
    rng = random.Random(config.seed)
    folder = Path(tempfile.mkdtemp(prefix="lfn-chaos-"))  # screenshots and saved fits land here
    widget_map = folder / "widgets.json"
    ckpt = checkpoint_copy(config.ckpt, folder)  # a bad --ckpt fails here, before the X server starts
    server, display = start_xvfb()
    env = dict(os.environ, DISPLAY=display, **{WIDGET_MAP_ENV: str(widget_map)})
    stats_path = folder / "stats.json"
    viewer = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "--ckpt", str(ckpt),
         "--res", str(config.res), "--stats", str(stats_path)],
        cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    reader: MemoryReader | None = None
    prelude: list[PreludeStep] = []
    counts: Counter[str] = Counter()
    rests: list[RestReading] = []
    failures: list[str] = []
    exit_code = exit_seconds = None
    try:
        found = subprocess.run(["xdotool", "search", "--sync", "--onlyvisible", "--name", "^LFN viewer"],
                               env=env, capture_output=True, text=True, timeout=WINDOW_TIMEOUT_S)
        driver = Driver(env, found.stdout.split()[0], rng)
        started = time.monotonic()
        reader = MemoryReader(viewer.pid, driver, widget_map, started)
        reader.start()
        presser = Prelude(driver, widget_map, folder, started)
        prelude = presser.run(config.prelude)
        progress(f"prelude: {len(prelude)} steps, {sum(not step.ok for step in prelude)} failed, "
                 f"done at {time.monotonic() - started:.0f} s")
        kinds, weights = list(WEIGHTS), list(WEIGHTS.values())
        next_progress = 30.0
        next_rest = time.monotonic() - started + REST_EVERY_S
        stopped: tuple[str, ...] = ()  # how the jobs running since the last rest were stopped
        while (elapsed := time.monotonic() - started) < config.minutes * 60 and viewer.poll() is None:
            if elapsed >= next_progress and reader.readings:
                progress(f"{elapsed:5.0f} s: {sum(counts.values())} events, {reader.readings[-1].mb:.0f} MB"
                         f", {len(rests)} rests")
                next_progress = (elapsed // 30.0 + 1.0) * 30.0
            if elapsed >= next_rest and (jobs := running_jobs(read_widget_map(widget_map))):
                stopped += presser.stop_jobs(jobs)
                next_rest = time.monotonic() - started + REST_RETRY_S
            elif elapsed >= next_rest:
                if (reading := rest(driver, presser, viewer.pid, widget_map, started, stopped)) is not None:
                    rests.append(reading)
                stopped, next_rest = (), time.monotonic() - started + REST_EVERY_S
                continue
            batch = rng.choices(kinds, weights, k=BATCH)
            driver.send(batch)
            counts.update(batch)
            time.sleep(rng.uniform(0.0, 0.005))  # as fast as xdotool goes, with jitter
        if viewer.poll() is not None:
            failures.append(f"the viewer exited by itself after {elapsed:.0f} s (code {viewer.returncode})")
        reader.stop.set()
        reader.join()
        stop = time.monotonic()
        viewer.send_signal(signal.SIGTERM)
        _, stderr = viewer.communicate(timeout=EXIT_TIMEOUT_S)
        exit_code, exit_seconds = viewer.returncode, time.monotonic() - stop
    except subprocess.TimeoutExpired:
        failures.append(f"hang: no exit within {EXIT_TIMEOUT_S:.0f} s of SIGTERM (or no window)")
        viewer.kill()
        _, stderr = viewer.communicate()
    finally:
        if reader is not None:
            reader.stop.set()
        server.terminate()
        server.wait(timeout=10)
    memory = reader.readings if reader is not None else []
    return judge(counts, memory, stderr, exit_code, exit_seconds, stats_path, failures, prelude, rests)


def trend_ends(readings: list[Reading]) -> tuple[float, float]:
    """The least-squares line through the readings' (seconds, MB), at the first and the last."""
    times = [r.seconds for r in readings]
    slope, intercept = statistics.linear_regression(times, [r.mb for r in readings])
    return intercept + slope * times[0], intercept + slope * times[-1]


def growth_by_mode(settled: list[Reading]) -> dict[str, float]:
    """Trend-line growth within each display mode that was on screen long enough to judge."""
    by_mode: dict[str, list[Reading]] = {}
    for reading in settled:
        by_mode.setdefault(reading.mode, []).append(reading)
    growths = {}
    for mode, readings in sorted(by_mode.items()):
        if len(readings) >= MODE_MIN_READINGS and \
                readings[-1].seconds - readings[0].seconds >= MODE_MIN_SPAN_S:
            start, end = trend_ends(readings)
            growths[mode] = end / start - 1
    return growths


def judged_from(prelude: list[PreludeStep]) -> float:
    """Where memory starts to be judged: after the first minute, or after the prelude's last step
    where that ends later (its first uses are steps, not growth)."""
    return max([SETTLE_S, *(step.ended_s for step in prelude)])


def judge(counts: Counter, memory: list[Reading],
          stderr: str, exit_code: int | None, exit_seconds: float | None, stats_path: Path,
          failures: list[str], prelude: list[PreludeStep] = (), rests: list[RestReading] = ()) -> ChaosReport:
    lines = [line for line in stderr.splitlines() if line.strip()]
    stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    if exit_code not in (0, None):
        failures.append(f"exit code {exit_code}")
    if any(line.startswith("error:") or "Traceback" in line for line in lines):
        failures.append("the viewer printed an error or a traceback")
    if exit_code == 0 and not stats:
        failures.append("no --stats file after exit")
    if (stats.get("ui_frame_ms_max") or 0.0) > HANG_MS:
        failures.append(f"UI frame of {stats['ui_frame_ms_max']:.0f} ms (> {HANG_MS:.0f} ms)")
    failures += [f"prelude step {step.name!r} failed: {step.note}" for step in prelude if not step.ok]
    start_s = judged_from(list(prelude))
    settled = [r for r in memory if r.seconds >= start_s]
    idle = [r for r in settled if not r.jobs]
    at_rest = [r for r in rests if r.seconds >= start_s and r.settled and not r.jobs]
    growth = all_growth = start_mb = end_mb = None
    by_mode: dict[str, float] = {}
    by_mode_all: dict[str, float] = {}
    long_enough = bool(memory) and memory[-1].seconds >= start_s + 60  # a shorter run: not judged
    covered = (len(at_rest) >= REST_MIN_READINGS
               and at_rest[-1].seconds - at_rest[0].seconds >= REST_MIN_SPAN_S)
    if long_enough and covered:
        start_mb, end_mb = trend_ends(at_rest)
        growth = end_mb / start_mb - 1
        if growth >= GROWTH_LIMIT:
            failures.append(f"memory at rest grew {100 * growth:.1f} % after {start_s:.0f} s "
                            f"(trend line through {len(at_rest)} rests, {start_mb:.0f} -> {end_mb:.0f} MB)")
    elif long_enough:
        failures.append(f"too few rests to judge memory: {len(at_rest)} of {len(rests)} after "
                        f"{start_s:.0f} s settled with no background job, fewer than {REST_MIN_READINGS} "
                        f"over {REST_MIN_SPAN_S:.0f} s")
    if long_enough:  # reported, not judged
        first_mb, last_mb = trend_ends(settled)
        all_growth = last_mb / first_mb - 1
        by_mode_all = growth_by_mode(settled)
        by_mode = growth_by_mode(idle)
    return ChaosReport(
        date=datetime.now().astimezone().isoformat(timespec="seconds"),
        seconds=memory[-1].seconds if memory else 0.0, events=sum(counts.values()), event_counts=dict(counts),
        exit_code=exit_code, exit_seconds=exit_seconds, stderr_lines=lines[-20:],
        prelude=list(prelude), judged_from_s=start_s,
        ui_frame_ms_max=stats.get("ui_frame_ms_max"), ui_frame_ms_p95=stats.get("ui_frame_ms_p95"),
        ui_frames_slowest=stats.get("ui_frames_slowest", []),
        rss_mb_peak=max((r.mb for r in [*memory, *rests]), default=0.0),
        rss_mb_judged_start=start_mb, rss_mb_end=end_mb, rss_growth=growth, rests=list(rests),
        judged_rests=len(at_rest), rss_growth_by_mode=by_mode, rss_growth_by_mode_all_readings=by_mode_all,
        rss_growth_all_readings=all_growth, judged_readings=len(idle), settled_readings=len(settled),
        rss_mb_floor_by_minute=minute_floors(memory), readings=memory,
        rss_mb_every_10s=[round(r.mb) for r in memory if int(r.seconds) % 10 == 0],
        rss_mb_and_mode_every_5s=[(int(r.seconds), round(r.mb), r.mode) for r in memory
                                  if int(r.seconds) % 5 == 0],
        threads_every_5s=[r.threads for r in memory if int(r.seconds) % 5 == 0],
        res_every_5s=[r.res for r in memory if int(r.seconds) % 5 == 0],
        failures=failures,
    )


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", type=Path, default=DEFAULT_CKPT,
                        help="the viewer's checkpoint, run from a copy "
                             "(default: the repository's checkpoints/cars.pt)")
    parser.add_argument("--minutes", type=float, default=10.0,
                        help="length of the run from the window's appearance, the prelude included "
                             "(default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the random input (default 0)")
    parser.add_argument("--res", type=int, default=128, help="the viewer's --res (default 128)")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    return run_entry_point(lambda: run(ChaosConfig(args.ckpt, args.minutes, args.seed, args.res), args.json),
                           args.debug)


def run(config: ChaosConfig, json_path: Path | None) -> int:
    """The run, its report on stdout (and in `json_path`), and the verdict: 1 when anything failed."""
    if not config.ckpt.exists():
        raise UsageError(f"--ckpt {config.ckpt}: no such file")
    if not config.ckpt.is_file():
        raise UsageError(f"--ckpt {config.ckpt}: not a checkpoint file")
    report = chaos_run(config)
    text = json.dumps(asdict(report), indent=2)
    print(text)
    if json_path is not None:
        json_path.write_text(text + "\n")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
