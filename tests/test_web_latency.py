"""bench/web_latency.py's websocket driver: viser's protocol without a browser (CPU, no Chromium)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from bench.web_latency import BrowserPage
from models.checkpoint import save_checkpoint
from tests.conftest import names
from tests.test_web import vivid_lfn

RES = 64


def test_websocket_driver_receives_frames_that_follow_the_camera(tmp_path: Path):
    ckpt, stats = tmp_path / "vivid.pt", tmp_path / "stats.json"
    save_checkpoint(vivid_lfn(), names(3), {"steps": 0, "dataset": "none", "metrics": {}}, ckpt)
    server = BrowserPage(ckpt, ("--res", str(RES)), stats=stats)
    try:
        page = server.open_page("websocket")
        before = page.wait_settled(RES, timeout=120)  # times out when no frame arrives
        page.click_checkbox("coarse while moving")  # every frame at RES: thumbnails compare
        at_rest = page.frames[-1]
        started = time.perf_counter()
        page.sweep(2.0)
        moving = [f for f in page.frames if f.received_s >= started]
        received = page.received(started)
    finally:
        code, stderr = server.close()
    assert code == 0, stderr
    assert len(moving) >= 5 and received["client_frames_during_drag"] == len(moving)
    assert {f.rows for f in moving} == {RES}
    # the orbit turns the view: frames differ from the one at rest by far more than JPEG noise
    assert max(float(np.abs(f.thumbnail - at_rest.thumbnail).mean()) for f in moving) > 10.0
    session = json.loads(stats.read_text())["sessions"][0]
    latencies = [s for s in session["camera_latency_s"][before.frames_sent:] if s is not None]
    assert len(latencies) >= 5 and all(0.0 < s < 5.0 for s in latencies)
