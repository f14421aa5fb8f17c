"""A benchmark result as a stdout table and as a PNG chart of FPS per method and resolution."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.benchmark_methods import PSNR_CAP
from models.resolution import Resolution

# StaticMarcher.kept's names as a reader of the table knows them
MARCHER_NAMES = {"dynamic": "march()", "graph": "the CUDA-graph march", "static": "the static march"}
COLUMNS = ("method", "res", "backend", "ms median", "ms p90", "FPS", "evals/ray", "peak MB", "frames",
           "details")


def row_resolution(label: object) -> Resolution:
    """A row's or speedup's "resolution" ("512", "1920x1080"; an int in runs before non-square
    frames) as a Resolution."""
    return Resolution.parse(str(label))


def details(row: dict) -> str:
    if "chunks_per_frame" in row:
        chunks = f"{row['chunks_per_frame']} chunk(s) of ≤{row['rays_per_chunk']:,} rays"
        if "psnr_vs_dense" in row:  # evals/ray is over rays that hit; over all rays, and the check
            at_least = "≥" if row["psnr_vs_dense"] >= PSNR_CAP else ""
            chunks += (f", {row['evals_per_ray_all_rays']:.1f} evals/ray over all rays, "
                       f"{at_least}{row['psnr_vs_dense']:.1f} dB vs dense")
        if "grid_build_ms" in row:  # runs before the coarse-to-fine grid lack it
            chunks += (f", {row['march_rounds']} rounds, {row['occupancy_res']}³ grid built in "
                       f"{row['grid_build_ms']:.0f} ms once per latent")
        if "march_fallbacks" in row:  # CUDA: the static march replayed from CUDA graphs
            chunks += (f", CUDA-graph march: {row['march_fallbacks']} frame(s) marched again by march(),"
                       f" {row['march_deferred']} deferring work to later rounds")
        if row.get("march_kept"):  # which marcher each ray count's timed trial kept
            kept = " and ".join(MARCHER_NAMES.get(name, name) for name in row["march_kept"])
            chunks += f", kept after timing both: {kept}"
        return chunks
    if "rays_in_bound" in row:  # an LFN row: evals/ray is over the rays that meet the unit sphere
        text = f"{row['rays_in_bound']:.0%} of rays meet the unit sphere"
        if "psnr_vs_every_ray" in row:
            at_least = "≥" if row["psnr_vs_every_ray"] >= PSNR_CAP else ""
            text += f", {at_least}{row['psnr_vs_every_ray']:.1f} dB vs every ray evaluated"
        return text
    if "texture_path" in row:
        paths = (("shared frames", "shared_fallback"), ("interop", "interop_fallback"))
        failed = [what for what, key in paths if key in row]
        return row["texture_path"] + (f" ({' and '.join(failed)} failed)" if failed else "")
    return ""


def format_table(result: dict) -> str:
    """Header, one row per method and resolution, the speedup line and the notes."""
    head = (f"LFN benchmark: {result['device']} ({result['device_name']}), torch {result['torch']}, "
            f"{result['precision']}, instance {result['instance']} ({result['instance_name']})\n"
            f"orbit: elevation {result['orbit']['elevation']:g}°, radius {result['orbit']['radius']:g}, "
            f"{result['orbit']['azimuth_step']:g}° per frame; {result['warmup']} warm-up frames")
    rows = [COLUMNS] + [
        (r["method"], str(r["resolution"]), r["backend"], f"{r['ms_median']:.2f}", f"{r['ms_p90']:.2f}",
         f"{r['fps']:.1f}", str(r["evals_per_ray"]), f"{r['peak_mem_mb']:.2f}", str(r["frames"]), details(r))
        for r in result["results"]
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    left = {0, 2, 9}  # text columns; numbers align right
    lines = ["  ".join(cell.ljust(w) if i in left else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip()
             for row in rows]
    lines.insert(1, "-" * len(max(lines, key=len)))
    # results of older runs have the dense baseline's ratio alone
    by_baseline = result.get("speedup_by_baseline", {"volumetric": result["speedup"]})
    ratios = [(baseline, speedup) for baseline, speedup in by_baseline.items() if speedup]
    if ratios:
        lines.append("")
    for baseline, speedup in ratios:
        lines.append(f"speedup of {result['speedup_reference']} over {baseline} (ms ratio): "
                     + ", ".join(f"{row_resolution(res).label}: {x:.1f}x" for res, x in speedup.items()))
    lines += [f"note: {note}" for note in result["notes"]]
    return head + "\n\n" + "\n".join(lines)


def fps_grid(result: dict) -> tuple[list[str], list[Resolution], np.ndarray]:
    """Methods (table order), resolutions (fewest pixels first) and their FPS (methods ×
    resolutions, NaN where missing): the chart's data, also what the viewer's ImPlot bar chart draws."""
    methods = list(dict.fromkeys(r["method"] for r in result["results"]))
    resolutions = sorted({row_resolution(r["resolution"]) for r in result["results"]})
    fps = np.full((len(methods), len(resolutions)), np.nan)
    for r in result["results"]:
        fps[methods.index(r["method"]), resolutions.index(row_resolution(r["resolution"]))] = r["fps"]
    return methods, resolutions, fps


def ms_table(rows: list[dict], resolutions: list[Resolution | int]) -> str:
    """A variant × resolution table of rows' median milliseconds (rows: variant, res as --res
    writes it or an int side, median_ms)."""
    resolutions = [Resolution.of(res) for res in resolutions]
    lines = [f"{'variant':<26}" + "".join(f"{res.label:>11}" for res in resolutions)]
    for variant in dict.fromkeys(row["variant"] for row in rows):
        cells = {row_resolution(row["res"]): row["median_ms"] for row in rows if row["variant"] == variant}
        lines.append(f"{variant:<26}" + "".join(f"{cells.get(res, float('nan')):>11.3f}"
                                                for res in resolutions))
    return "\n".join(lines)


def fps_label(fps: float) -> str:
    return "" if np.isnan(fps) else f"{fps:.0f}" if fps >= 100 else f"{fps:.3g}"


def plot(result: dict, path: str | Path) -> None:
    """Grouped bars, one group per resolution, one bar per method; log FPS axis, values on the bars."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # Agg on its own: no global backend
    from matplotlib.figure import Figure

    methods, resolutions, fps = fps_grid(result)
    colors = colormaps["tab10" if len(methods) <= 10 else "tab20"]  # a color per method, none repeated
    fig = Figure(figsize=(max(6.0, 2.5 + 0.4 * len(methods) * len(resolutions)), 4.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    width = 0.8 / max(len(methods), 1)
    x = np.arange(len(resolutions))
    for i, method in enumerate(methods):
        bars = ax.bar(x + (i - (len(methods) - 1) / 2) * width, fps[i], width, label=method,
                      color=colors(i))
        ax.bar_label(bars, labels=[fps_label(v) for v in fps[i]], fontsize=7,
                     padding=2)
    ax.set_yscale("log")
    ax.set_xticks(x, [f"{res.width}×{res.height}" for res in resolutions])
    ax.set_xlabel("resolution")
    ax.set_ylabel("frames per second (log scale)")
    ax.set_title(f"FPS per method: {result['device']} ({result['device_name']}), {result['precision']}, "
                 f"torch {result['torch']}", fontsize=9)
    ax.margins(y=0.15)
    ax.grid(axis="y", which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: bars stay clear
    fig.tight_layout()
    fig.savefig(path)
