"""Light Field Network viewer: the command line, its exit codes and its one-line errors.

    python main.py [--ckpt PATH]                       open the viewer
    python main.py --headless --out view.png           render without a window
    python main.py --benchmark                         LFN versus the volumetric baseline
    python main.py --fit-image car.png [--pose 30,20] --out car.pt   fit a latent to one photo
    python main.py --web [--port 8080] [--host 127.0.0.1]          the viewer in a browser

Exit codes: 0 success, 2 what argparse rejects before anything loads, 1 every other failure.
On failure stderr holds exactly one line, `error: …`; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from engine.cli import (
    OneLineParser,
    UsageError,
    integer,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    resolution_argument,
    run_entry_point,
)
from engine.config import (
    BenchmarkConfig,
    FitImageConfig,
    HeadlessConfig,
    RenderSettings,
    ViewerConfig,
    VolumetricSource,
    WebConfig,
)
from engine.display_mode import DisplayMode
from models.resolution import Resolution

ROOT = Path(__file__).resolve().parent
DEFAULT_CKPT = ROOT / "checkpoints" / "cars.pt"
DEFAULT_VOLUMETRIC = ROOT / "checkpoints" / "cars_volumetric.pt"
DEFAULT_RES = Resolution.square(256)
BACKEND_NAMES = ("torchscript", "eager", "compile", "triton", "export", "aoti")


def port(text: str) -> int:
    value = integer(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is outside 1..65535")
    return value


def pose(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not AZ,EL or AZ,EL,R in numbers") from None
    if len(values) not in (2, 3) or (len(values) == 3 and values[2] <= 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not AZ,EL or AZ,EL,R with R > 0")
    return values


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="main.py",
        description="Real-time viewer for Light Field Networks: one network evaluation per ray.",
    )
    common = p.add_argument_group("common")
    common.add_argument("--ckpt", type=Path, default=DEFAULT_CKPT,
                        help="LFN checkpoint (.pt, weights only); default: checkpoints/cars.pt")
    common.add_argument("--instance", type=int, default=0,
                        help="which object's latent code to show; negative counts from the end")
    common.add_argument("--res", type=resolution_argument, nargs="+", default=None, metavar="N|WxH",
                        help="render resolution: N for N x N, or WxH such as 1920x1080 (the vertical "
                        "field of view stays, a wider frame sees more to the sides); 16..4096 a side "
                        "(default 256; the benchmark takes several, default 128 256 512 on a GPU, "
                        "64 128 on a CPU)")
    common.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                        help="where the network runs; auto picks CUDA when present")
    common.add_argument("--precision", choices=("auto", "fp32", "fp16", "bf16"), default="auto",
                        help="network precision; auto is fp16 on CUDA, bf16 on a CPU that computes "
                             "it natively (AVX-512 BF16, AMX), fp32 on other CPUs")
    # models/backends' names, written out so that parsing needs no torch (a test keeps them equal)
    common.add_argument("--backend", choices=BACKEND_NAMES,
                        default="torchscript", help="how the per-ray network runs: the traced "
                        "TorchScript function (default), eager torch, torch.compile (CUDA), one "
                        "fused Triton kernel (CUDA), the torch.export program (TorchScript's "
                        "successor), or that program compiled by AOTInductor (needs a C++ compiler)")

    viewer = p.add_argument_group("viewer (the default mode)")
    viewer.add_argument("--stats", type=Path, help="write a JSON of UI and render timings on exit "
                        "(with --web: the frames sent to each browser)")
    viewer.add_argument("--exit-after", type=float, metavar="SECONDS",
                        help="close the window (or stop the --web server) cleanly after this many "
                        "seconds")

    web = p.add_argument_group("the viewer in a browser (for machines without a display)")
    web.add_argument("--web", action="store_true", help="serve the viewer as a web page")
    web.add_argument("--port", type=port, default=8080, help="port of the page (default 8080)")
    web.add_argument("--host", default="127.0.0.1", help="address to listen on (default "
                     "127.0.0.1: this machine only; the page has no authentication)")

    headless = p.add_argument_group("headless rendering")
    headless.add_argument("--headless", action="store_true", help="render to a file, no window")
    headless.add_argument("--out", type=Path, help="output file: .png, .gif or .mp4 (headless), "
                          ".pt (--fit-image)")
    headless.add_argument("--summed-depth", action="store_true",
                          help="depth and normals from the channel-summed equations (faster); in the "
                               "window and --web, that option ticked from the start")
    headless.add_argument("--gradient-depth", action="store_true",
                          help="depth, normals and --ply from gradient depth alone, the live view's "
                               "estimate (much faster; by default it is refined by a wide-baseline "
                               "search in the light field, DEPTH.md)")
    headless.add_argument("--mode", choices=("rgb", "depth", "normals"), default=None,
                          help="what to render: colors (the default), depth or normals (the window "
                               "and --web: what the view shows first)")
    headless.add_argument("--azimuth", type=float, default=None, help="degrees from +x toward +y")
    headless.add_argument("--elevation", type=float, default=None,
                          help="degrees above the ground plane")
    headless.add_argument("--radius", type=float, default=None, help="distance to the target")
    headless.add_argument("--frames", type=positive_int, default=None,
                          help="frames of a .gif or .mp4 (default 36 and 120), or timed benchmark frames")
    headless.add_argument("--path", metavar="orbit|FILE.json", default=None,
                          help="the camera path of a .gif or .mp4: orbit (one turn from the start "
                          "camera, the default) or keyframes in a JSON file (README)")
    headless.add_argument("--fps", type=positive_float, default=None,
                          help="frames per second of a .gif or .mp4 (default 12.5 and 30)")
    headless.add_argument("--ply", type=Path, help="also write a colored point cloud (.ply)")

    bench = p.add_argument_group("benchmark")
    bench.add_argument("--benchmark", action="store_true",
                       help="time LFN and volumetric rendering in one run")
    bench.add_argument("--json", type=Path, help="write the benchmark results as JSON")
    bench.add_argument("--plot", type=Path, help="write a PNG chart of FPS per method")
    bench.add_argument("--volumetric", type=Path, default=None,
                       help="volumetric baseline checkpoint (default checkpoints/cars_volumetric.pt)")
    bench.add_argument("--backends", nargs="+", choices=BACKEND_NAMES, metavar="BACKEND", default=None,
                       help="the LFN backends to time (default: every one available here; --backend's, "
                       "which depth and the viewer frame use, is always timed); fewer builds, a shorter run")

    fit = p.add_argument_group("fit a latent to one image")
    fit.add_argument("--fit-image", type=Path, metavar="FILE.png",
                     help="photo of a car on a white background")
    fit.add_argument("--pose", type=pose, metavar="AZ,EL[,R]",
                     help="camera of the photo in the orbit convention (R defaults to 3.0); "
                     "default: estimated by the checkpoint's encoder (CKPT.encoder.pt)")
    fit.add_argument("--inference", choices=("encoder", "refine", "autodecode"), default=None,
                     help="encoder: one pass of the encoder; refine: the encoder, then --steps "
                     "auto-decoding steps; autodecode: --steps steps from the mean latent "
                     "(default: refine with an encoder, else autodecode)")
    fit.add_argument("--steps", type=positive_int, default=None,
                     help="optimization steps (default for refine 20, 100 on a GPU; 300 for autodecode)")
    fit.add_argument("--mirror-weight", type=non_negative_float, default=None,
                     help="weight of the photo's rays mirrored in the car's plane of symmetry in "
                     "each step (default 0.25; 0 for a car whose sides differ, e.g. a livery "
                     "on one side)")
    fit.add_argument("--modulation-steps", type=non_negative_int, default=None,
                     help="after the latent, refine the car's FiLM modulations from the photo this "
                     "many steps, past what a latent reaches (default 100 after refine and "
                     "autodecode, 0 after encoder)")
    fit.add_argument("--encoder", type=Path, metavar="FILE.pt", default=None,
                     help="the image encoder that estimates a photo's latent and pose, for "
                     "--fit-image and the viewer's photo reconstruction, in the window or --web "
                     "(default: CKPT.encoder.pt beside the checkpoint, when there is one)")
    return p


def requested_modes(args: argparse.Namespace) -> list[str]:
    """The mode flags given: --headless, --benchmark, --fit-image, --web (none: the viewer)."""
    return [flag for flag, given in (("--headless", args.headless), ("--benchmark", args.benchmark),
                                     ("--fit-image", args.fit_image is not None), ("--web", args.web))
            if given]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    modes = requested_modes(args)
    if len(modes) > 1:
        parser.error(f"choose one mode, not {' and '.join(modes)}")
    if args.res is None:
        args.res = [] if args.benchmark else [DEFAULT_RES]
    elif len(args.res) > 1 and not args.benchmark:
        parser.error("argument --res: takes one value outside --benchmark")
    if args.headless and args.out is None:
        parser.error("argument --out: required with --headless")
    video = args.out is not None and args.out.suffix.lower() in (".gif", ".mp4")
    for flag in ("path", "fps"):
        if getattr(args, flag) is not None and not (args.headless and video):
            parser.error(f"argument --{flag}: needs --headless --out FILE.gif or FILE.mp4")
    if args.fit_image and args.out is None:
        parser.error("--fit-image needs --out FILE.pt")
    for flag in ("mirror_weight", "modulation_steps"):
        if getattr(args, flag) is not None and not args.fit_image:
            parser.error(f"argument --{flag.replace('_', '-')}: used by --fit-image only")
    if args.backends is not None and not args.benchmark:
        parser.error("argument --backends: used by --benchmark only")
    if args.encoder is not None and (args.headless or args.benchmark):
        parser.error("argument --encoder: used by the viewer, --web and --fit-image only")
    if args.benchmark or args.fit_image:  # neither shows a view: the view's flags would do nothing
        for flag, given in (("--mode", args.mode is not None), ("--summed-depth", args.summed_depth)):
            if given:
                parser.error(f"argument {flag}: used by --headless, the viewer and --web only")
    if args.gradient_depth and not args.headless:  # the live views refine only when their box is ticked
        parser.error("argument --gradient-depth: used by --headless only")
    args.mode = args.mode or "rgb"
    return args


def resolve_device(choice: str):
    import torch

    if choice == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: CUDA is not available on this machine")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def resolve_precision(choice: str, device) -> str:
    from models.renderer import default_precision

    return default_precision(device) if choice == "auto" else choice


def check_writable(path: Path, flag: str, suffixes: tuple[str, ...]) -> None:
    if path.suffix.lower() not in suffixes:
        raise UsageError(f"{flag} {path}: expected a {' or '.join(suffixes)} file")
    if path.is_dir():
        raise UsageError(f"{flag} {path}: is a folder, not a file")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        problem = "is a file, not a folder" if folder.exists() else "does not exist"
        raise UsageError(f"{flag} {path}: folder {folder} {problem}")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{flag} {path}: not writable")
    try:  # os.access trusts permission bits, which root bypasses (and /proc, /sys refuse anyway)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise UsageError(f"{flag} {path}: not writable ({error.strerror})") from None


def run(args: argparse.Namespace) -> int:
    """Check what the command line names, build the chosen mode's config, run the mode."""
    from models.cameras import Orbit
    from models.checkpoint import load_checkpoint

    device = resolve_device(args.device)
    render = RenderSettings(device, resolve_precision(args.precision, device), args.backend)
    for flag, path, suffixes in (
        ("--out", args.out, (".pt",) if args.fit_image else (".png", ".gif", ".mp4")),
        ("--ply", args.ply, (".ply",)),
        ("--json", args.json, (".json",)),
        ("--plot", args.plot, (".png",)),
        ("--stats", args.stats, (".json",)),
    ):
        if path is not None:
            check_writable(path, flag, suffixes)
    from models.renderer import backend_unavailable

    if (reason := backend_unavailable(render.backend, device, render.precision)) is not None:
        raise UsageError(f"--backend {render.backend}: {reason}")
    ckpt = load_checkpoint(args.ckpt)
    if ckpt.model.kind != "lfn":
        raise UsageError(f"--ckpt {args.ckpt}: is a {ckpt.model.kind} checkpoint, not an LFN")
    try:
        instance = ckpt.resolve_instance(args.instance)
    except IndexError as error:
        raise UsageError(f"--instance {error}") from None
    chosen = {"azimuth": args.azimuth, "elevation": args.elevation, "radius": args.radius}
    home = Orbit(**{name: value for name, value in chosen.items() if value is not None})
    volumetric = VolumetricSource(args.volumetric or DEFAULT_VOLUMETRIC, args.volumetric is not None)

    mode = (requested_modes(args) or ["viewer"])[0]
    if mode == "--headless":
        from engine.camera_path import CameraPathError
        from viewer.headless import run_headless

        try:
            return run_headless(HeadlessConfig(render, instance, args.res[0], home, DisplayMode(args.mode),
                                               args.summed_depth, args.out, args.frames, args.ply,
                                               args.path, args.fps, not args.gradient_depth), ckpt)
        except CameraPathError as error:
            raise UsageError(f"--path {error}") from None
    if mode == "--benchmark":
        from bench.benchmark import run_benchmark

        backends = tuple(args.backends) if args.backends else None
        return run_benchmark(BenchmarkConfig(render, instance, tuple(args.res), args.frames,
                                             volumetric, args.json, args.plot, backends), ckpt)
    if mode == "--fit-image":
        from tools.fit_image import run_fit_image

        pose = Orbit(*args.pose) if args.pose else None
        return run_fit_image(FitImageConfig(render, args.ckpt, args.fit_image, pose, args.inference,
                                            args.steps, args.out, args.encoder, args.mirror_weight,
                                            args.modulation_steps),
                             ckpt)
    if mode == "--web":
        from viewer.web import run_web

        return run_web(WebConfig(render, args.host, args.port, args.res[0], instance, home, args.ckpt,
                                 volumetric, args.exit_after, args.stats, args.encoder,
                                 DisplayMode(args.mode), args.summed_depth), ckpt)
    from viewer.app import run_viewer

    return run_viewer(ViewerConfig(render, args.ckpt, instance, args.res[0], home, volumetric,
                                   args.stats, args.exit_after, args.debug, args.encoder,
                                   DisplayMode(args.mode), args.summed_depth), ckpt)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_entry_point(lambda: run(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
