"""Camera paths for video: keyframes of orbit camera and latent code → one camera and code per frame.

A path file is JSON:

    {"loop": false,
     "keyframes": [
        {"azimuth": 0,   "elevation": 20, "radius": 3.0, "instance": 0},
        {"azimuth": 120, "elevation": 35, "instance": 0, "blend_to": 7, "t": 0.5},
        {"azimuth": 360, "elevation": 20, "instance": 7}]}

Angles are in degrees of the orbit convention (models/cameras.py) and are taken literally, not
wrapped: 0 → 360 is one full turn, 0 → -90 turns the other way. `radius` defaults to the previous
keyframe's (3.0 for the first), `instance` to the command line's. A keyframe's code is
lerp(instance, blend_to, t). `write_camera_path` writes the same format (the viewer's "Record path"
section saves its keyframes with it), and `read_camera_path` reads it.

The camera follows a Catmull-Rom spline through the keyframes (uniform, so the speed is even for
evenly spaced keyframes and a constant-rate turn stays constant), which has no corners at the
keyframes. The code is interpolated linearly per segment, as a weight per checkpoint instance: a
spline of weights would overshoot, which for latent codes means extrapolating past both cars.
With "loop": true the path closes back onto its first keyframe.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.latents import BlendLatent, InstanceLatent, LatentSelection
from models.cameras import DEFAULT_RADIUS, Orbit

MAX_ABS_ELEVATION = 89.0  # the orbit camera's up vector degenerates at the poles
TURNTABLE = "orbit"  # the built-in path: one turn around the car at the start camera's height


class CameraPathError(ValueError):
    """A path file that cannot be used; the message names the file and the keyframe."""


@dataclass(frozen=True)
class Keyframe:
    orbit: Orbit
    weights: tuple[tuple[int, float], ...]  # (instance, weight) pairs of the code, summing to 1


@dataclass(frozen=True)
class PathFrame:
    orbit: Orbit
    weights: tuple[tuple[int, float], ...]  # the code as a weighted sum of latent table rows


@dataclass(frozen=True)
class CameraPath:
    keyframes: tuple[Keyframe, ...]
    loop: bool = False

    def frames(self, count: int) -> list[PathFrame]:
        """`count` frames evenly spaced along the path; an open path ends on its last keyframe,
        a loop stops one step before it returns to the first."""
        if count < 1:
            raise ValueError(f"a path needs at least one frame, got {count}")
        segments = len(self.keyframes) - (0 if self.loop else 1)
        if segments == 0:
            return [PathFrame(self.keyframes[0].orbit, self.keyframes[0].weights)] * count
        steps = count if self.loop else max(count - 1, 1)
        return [self._at(segments * k / steps) for k in range(count)]

    def _at(self, position: float) -> PathFrame:
        n = len(self.keyframes)
        segment = min(int(position), n - 1 if self.loop else n - 2)
        u = position - segment
        around = range(segment - 1, segment + 3)  # the spline's 4 control points
        points = [self._point(i) for i in around]
        azimuth, elevation, radius = (catmull_rom([p[d] for p in points], u) for d in range(3))
        orbit = Orbit(azimuth, elevation, radius, self.keyframes[0].orbit.target)
        start, end = (self.keyframes[i % n] if self.loop else self.keyframes[min(i, n - 1)]
                      for i in (segment, segment + 1))
        return PathFrame(orbit, blend_weights(start.weights, end.weights, u))

    def _point(self, index: int) -> tuple[float, float, float]:
        """(azimuth, elevation, radius) of keyframe `index`: clamped to the ends on an open path; on a
        loop taken modulo the keyframes, each lap's azimuths shifted by one more turn, so the spline
        runs on across the seam instead of jumping back."""
        n = len(self.keyframes)
        if not self.loop:
            orbit = self.keyframes[min(max(index, 0), n - 1)].orbit
            return orbit.azimuth, orbit.elevation, orbit.radius
        orbit = self.keyframes[index % n].orbit
        return orbit.azimuth + self.turn * (index // n), orbit.elevation, orbit.radius

    @property
    def turn(self) -> float:
        """The azimuth one lap of a loop adds: whole turns in the direction the keyframes travel,
        enough to come back to the first keyframe past the last one (0 if they end where they began)."""
        first, last = self.keyframes[0].orbit.azimuth, self.keyframes[-1].orbit.azimuth
        if last == first:
            return 0.0
        laps = math.floor(abs(last - first) / 360.0) + 1
        return math.copysign(360.0 * laps, last - first)


def catmull_rom(p: Sequence[float], u: float) -> float:
    """The uniform Catmull-Rom spline through p[1] (u = 0) and p[2] (u = 1), tangents from p[0], p[3]."""
    p0, p1, p2, p3 = p
    return 0.5 * (2 * p1 + (p2 - p0) * u + (2 * p0 - 5 * p1 + 4 * p2 - p3) * u * u
                  + (3 * p1 - p0 - 3 * p2 + p3) * u ** 3)


def blend_weights(a: tuple[tuple[int, float], ...], b: tuple[tuple[int, float], ...],
                  u: float) -> tuple[tuple[int, float], ...]:
    """(1 − u)·a + u·b of two codes given as instance weights; zero weights are dropped."""
    total: dict[int, float] = {}
    for weights, scale in ((a, 1.0 - u), (b, u)):
        for instance, weight in weights:
            total[instance] = total.get(instance, 0.0) + scale * weight
    return tuple(sorted((i, w) for i, w in total.items() if w != 0.0))


def instance_blend(instance: int, other: int, t: float) -> tuple[tuple[int, float], ...]:
    """The weights of lerp(instance, other, t)."""
    return blend_weights(((instance, 1.0),), ((other, 1.0),), t)


def turntable(start: Orbit, instance: int) -> CameraPath:
    """One full turn from `start`, at its elevation and radius, showing `instance`."""
    weights = ((instance, 1.0),)
    keys = [Keyframe(Orbit(start.azimuth + 90.0 * k, start.elevation, start.radius, start.target), weights)
            for k in range(4)]
    return CameraPath(tuple(keys), loop=True)


def read_camera_path(path: Path, default_instance: int, num_instances: int) -> CameraPath:
    """The path in the JSON file `path`; CameraPathError names what is wrong and where."""
    try:
        data = json.loads(path.read_text())
    except OSError as error:
        raise CameraPathError(f"{path}: cannot be read ({error.strerror})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CameraPathError(f"{path}: not JSON ({error})") from None
    if not isinstance(data, dict) or not isinstance(data.get("keyframes"), list) or not data["keyframes"]:
        raise CameraPathError(f'{path}: expected an object with a non-empty "keyframes" list')
    if not isinstance(data.get("loop", False), bool):
        raise CameraPathError(f'{path}: "loop" must be true or false')
    keyframes, radius = [], DEFAULT_RADIUS
    for k, entry in enumerate(data["keyframes"]):
        try:
            keyframe = parse_keyframe(entry, radius, default_instance, num_instances)
        except (TypeError, ValueError, KeyError) as error:
            raise CameraPathError(f"{path}: keyframe {k}: {error}") from None
        keyframes.append(keyframe)
        radius = keyframe.orbit.radius
    return CameraPath(tuple(keyframes), loop=data.get("loop", False))


def parse_keyframe(entry: object, radius: float, default_instance: int, num_instances: int) -> Keyframe:
    if not isinstance(entry, dict):
        raise TypeError("expected an object")
    unknown = set(entry) - {"azimuth", "elevation", "radius", "instance", "blend_to", "t"}
    if unknown:
        raise KeyError(f"unknown field(s) {', '.join(sorted(unknown))}")
    azimuth, elevation = number(entry, "azimuth"), number(entry, "elevation")
    radius = number(entry, "radius", radius)
    if not (math.isfinite(azimuth) and abs(elevation) <= MAX_ABS_ELEVATION and 0 < radius < math.inf):
        raise ValueError(f"needs a finite azimuth, |elevation| <= {MAX_ABS_ELEVATION:g} and radius > 0")
    instance = index(entry, "instance", default_instance, num_instances)
    if "blend_to" not in entry:
        if "t" in entry:
            raise ValueError('"t" blends toward "blend_to", which is missing')
        return Keyframe(Orbit(azimuth, elevation, radius), ((instance, 1.0),))
    other, t = index(entry, "blend_to", None, num_instances), number(entry, "t", 0.5)
    if not 0.0 <= t <= 1.0:
        raise ValueError(f'"t" must be within 0..1, got {t:g}')
    return Keyframe(Orbit(azimuth, elevation, radius), instance_blend(instance, other, t))


def number(entry: dict, key: str, default: float | None = None) -> float:
    value = entry.get(key, default)
    if value is None:
        raise KeyError(f'"{key}" is missing')
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f'"{key}" must be a number, got {value!r}')
    return float(value)


def index(entry: dict, key: str, default: int | None, num_instances: int) -> int:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f'"{key}" must be an instance number, got {value!r}')
    if not -num_instances <= value < num_instances:
        raise ValueError(f'"{key}" {value} is out of range (the checkpoint has {num_instances} instances)')
    return value % num_instances


def camera_path(spec: str, start: Orbit, instance: int, num_instances: int) -> CameraPath:
    """`spec` is TURNTABLE ("orbit") or a path file's name."""
    if spec == TURNTABLE:
        return turntable(start, instance)
    return read_camera_path(Path(spec), instance, num_instances)


def view_keyframe(orbit: Orbit, selection: LatentSelection, previous: Keyframe | None = None) -> Keyframe:
    """The keyframe of what a viewer shows: its camera and its code, an instance or a blend of two.

    A file names codes by instance, so a random or fitted code cannot be a keyframe; it names no pan
    target either (its paths orbit the origin), so the target is left out. The viewer wraps azimuths
    into 0..360 while a file takes them literally: the azimuth moves by whole turns to within 180° of
    `previous`'s, so the camera goes the short way round (a longer turn takes keyframes on the way).
    """
    match selection:
        case InstanceLatent(index):
            weights = ((index, 1.0),)
        case BlendLatent(a, b, t):
            weights = instance_blend(a, b, t)
        case _:
            raise CameraPathError(f"a {type(selection).__name__.removesuffix('Latent').lower()} code "
                                  "is not in the latent table, which path files name: show an "
                                  "instance or a blend of two")
    azimuth = orbit.azimuth
    if previous is not None:
        last = previous.orbit.azimuth
        azimuth = last + (azimuth - last + 180.0) % 360.0 - 180.0
    return Keyframe(Orbit(azimuth, orbit.elevation, orbit.radius), weights)


def keyframe_entry(keyframe: Keyframe) -> dict:
    """`keyframe` as a path file's entry, which parse_keyframe reads back to the same keyframe."""
    orbit = keyframe.orbit
    entry = {"azimuth": orbit.azimuth, "elevation": orbit.elevation, "radius": orbit.radius}
    match keyframe.weights:
        case ((instance, _),):
            entry["instance"] = instance
        case ((instance, _), (other, t)):
            entry |= {"instance": instance, "blend_to": other, "t": t}
        case weights:
            raise CameraPathError(f"a path file's keyframe blends at most 2 instances, not {len(weights)}")
    return entry


def write_camera_path(path: Path, camera_path: CameraPath) -> None:
    """`camera_path` as a path file at `path`, which appears whole or not at all."""
    entries = [keyframe_entry(keyframe) for keyframe in camera_path.keyframes]
    text = json.dumps({"loop": camera_path.loop, "keyframes": entries}, indent=2) + "\n"
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(text)
        partial.replace(path)
    except OSError as error:
        if partial.is_file():  # unlink(missing_ok=True) still raises where the folder is a file
            partial.unlink()
        raise CameraPathError(f"{path}: cannot be written ({error.strerror or error})") from None
