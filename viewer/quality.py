"""When to render at which resolution: coarse while the view changes, the requested one at rest.

While the camera or latent moves, frames render at `moving_res` rows, which adapts so that one
moving frame takes about `budget_ms` (halving when slower, doubling when much faster, never above
the requested rows): a CPU settles near 64 rows, a GPU at the full resolution. Once nothing has
changed for `rest_delay_s`, one frame renders at the requested resolution and is then reused.
Sizes here are rows (a frame's height); the caller keeps the requested aspect
(models/resolution.py Resolution.at_height).
"""

from __future__ import annotations

from dataclasses import dataclass, field

MOVING_RES = 64
MIN_RES = 16


@dataclass
class QualityPolicy:
    moving_res: int = MOVING_RES
    min_res: int = MIN_RES
    budget_ms: float = 60.0
    rest_delay_s: float = 0.25
    last_change_s: float = float("-inf")
    warmed_up: set[int] = field(default_factory=set)  # sizes rendered at least once

    def changed(self, now_s: float) -> None:
        """The view changed at `now_s` (camera, latent, mode or resolution)."""
        self.last_change_s = now_s

    def moving(self, now_s: float) -> bool:
        return now_s - self.last_change_s < self.rest_delay_s

    def resolution(self, requested: int, now_s: float) -> int:
        return min(self.moving_res, requested) if self.moving(now_s) else requested

    def observe(self, res: int, render_ms: float, requested: int) -> None:
        """Adapt the moving resolution to how long a frame at `res` took."""
        first = res not in self.warmed_up  # the first frame of a size includes one-off tracing
        self.warmed_up.add(res)
        if first or res != min(self.moving_res, requested):
            return  # a frame of another size says little about the moving one
        if render_ms > self.budget_ms and self.moving_res > self.min_res:
            self.moving_res = max(self.min_res, self.moving_res // 2)
        elif render_ms < self.budget_ms / 5 and self.moving_res < requested:
            self.moving_res = min(requested, self.moving_res * 2)
