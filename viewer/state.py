"""The one object the panel and the keyboard edit and the frame function reads."""

from __future__ import annotations

from dataclasses import dataclass

from engine.latents import LatentKey

DISPLAY_MODES = ("rgb", "depth", "normals", "compare")
MODE_LABELS = {
    "rgb": "RGB",
    "depth": "gradient depth",
    "normals": "normals",
    "compare": "LFN vs volumetric",
}
LATENT_SOURCES = ("instance", "mix", "random", "fitted")


@dataclass
class ViewerState:
    num_instances: int
    instance: int = 0
    latent_source: str = "instance"
    mix_a: int = 0
    mix_b: int = 0
    mix_t: float = 0.5
    random_seed: int = 0
    fitted_serial: int = 0  # grows with each code a fit publishes (viewer/fitted_latents.py)
    fitted_label: str = ""
    fit_target: int = 0  # the fitted code blends toward this instance by fit_t
    fit_t: float = 0.0
    mode: str = "rgb"
    res: int = 256
    auto_depth_range: bool = True
    summed_depth: bool = False  # the faster depth equations (one reverse pass on triton)
    near: float = 2.0
    far: float = 4.0
    screenshot_requested: bool = False
    switch_requested: tuple[str, str] | None = None  # (backend, precision) the panel asked for

    def latent_key(self) -> LatentKey:
        if self.latent_source == "mix":
            return ("mix", self.mix_a, self.mix_b, round(self.mix_t, 4))
        if self.latent_source == "random":
            return ("random", self.random_seed)
        if self.latent_source == "fitted":
            return ("fitted", self.fitted_serial, self.fitted_label, self.fit_target, round(self.fit_t, 4))
        return ("instance", self.instance)

    def step_instance(self, step: int) -> None:
        """Next or previous instance (wrapping), and show it."""
        self.instance = (self.instance + step) % self.num_instances
        self.latent_source = "instance"
