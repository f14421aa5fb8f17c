"""The one object the panel and the keyboard edit and the frame function reads."""

from __future__ import annotations

from dataclasses import dataclass

from engine.display_mode import DisplayMode
from engine.frame import FrameRequest
from engine.latents import BlendLatent, FittedLatent, InstanceLatent, LatentSelection, RandomLatent
from models.cameras import Orbit
from models.resolution import Resolution

# The kinds of latent the panel offers; `latent_source` holds one, its fields hold the rest.
LatentSource = type[InstanceLatent] | type[BlendLatent] | type[RandomLatent] | type[FittedLatent]


@dataclass
class ViewerState:
    num_instances: int
    instance: int = 0
    latent_source: LatentSource = InstanceLatent
    mix_a: int = 0
    mix_b: int = 0
    mix_t: float = 0.5
    random_seed: int = 0
    fitted_serial: int = 0  # grows with each code a fit publishes (engine/latents.py FittedLatent)
    fitted_label: str = ""
    fit_target: int = 0  # the fitted code blends toward this instance by fit_t
    fit_t: float = 0.0
    mode: DisplayMode = DisplayMode.RGB
    res: Resolution = Resolution.square(256)
    auto_depth_range: bool = True
    summed_depth: bool = False  # the faster depth equations (one reverse pass on triton)
    stereo_depth: bool = False  # refined by the wide-baseline search (slow: not a live view)
    near: float = 2.0
    far: float = 4.0
    epi_open: bool = False  # the EPI section is open: its image renders with the view
    epi_scanline: float = 0.5  # the EPI's row, a fraction of the picture's height (engine/frame.py)
    epi_shift: float = 0.15  # the EPI's camera shifts reach ± this × the orbit radius
    screenshot_requested: bool = False
    switch_requested: tuple[str, str] | None = None  # (backend, precision) the panel asked for
    camera_requested: Orbit | None = None  # where a panel asked the view's camera to go

    def latent_selection(self) -> LatentSelection:
        """The latent the view shows; slider values are rounded so a still slider is one selection."""
        if self.latent_source is BlendLatent:
            return BlendLatent(self.mix_a, self.mix_b, round(self.mix_t, 4))
        if self.latent_source is RandomLatent:
            return RandomLatent(self.random_seed)
        if self.latent_source is FittedLatent:
            return FittedLatent(self.fitted_serial, self.fitted_label, self.fit_target,
                                round(self.fit_t, 4))
        return InstanceLatent(self.instance)

    def frame_request(self, orbit: Orbit, rows: int | None = None) -> FrameRequest:
        """The frame this state shows from `orbit`, `rows` high (default: the chosen resolution).
        At full height it is also the view's key: any change to it is a view change."""
        res = self.res if rows is None else self.res.at_height(rows)
        return FrameRequest(orbit, res, self.mode, self.latent_selection(), self.summed_depth,
                            self.stereo_depth)

    def step_instance(self, step: int) -> None:
        """Next or previous instance (wrapping), and show it."""
        self.instance = (self.instance + step) % self.num_instances
        self.latent_source = InstanceLatent
