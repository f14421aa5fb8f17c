"""Every flag of every entry point (main.py, tools/, bench/) explains itself in --help: a scan of the
sources for an `add_argument` with an option string but no help, and one real `--help` checked
flag by flag."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 120


def entry_points() -> list[Path]:
    return [ROOT / "main.py", *sorted((ROOT / "tools").glob("*.py")), *sorted((ROOT / "bench").glob("*.py"))]


def flag_calls(source: str) -> list[tuple[int, str, ast.Call]]:
    """(line, first option string, call) of each `….add_argument("-…", …)` in the source; calls
    without a literal option string (a positional, or a browser's options.add_argument(flag))
    are left out."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "add_argument"):
            continue
        options = [arg.value for arg in node.args if isinstance(arg, ast.Constant)
                   and isinstance(arg.value, str) and arg.value.startswith("-")]
        if options:
            found.append((node.lineno, options[0], node))
    return found


def without_help(source: str) -> list[tuple[int, str]]:
    """(line, flag) of each flag whose add_argument has no help keyword."""
    return [(line, flag) for line, flag, call in flag_calls(source)
            if not any(keyword.arg == "help" for keyword in call.keywords)]


def help_prefix(call: ast.Call) -> str:
    """The help's literal start, up to the first formatted part (an f-string's field or %(…)s)."""
    value = next(keyword.value for keyword in call.keywords if keyword.arg == "help")
    if isinstance(value, ast.Constant):
        text = value.value
    elif isinstance(value, ast.JoinedStr) and value.values and isinstance(value.values[0], ast.Constant):
        text = value.values[0].value
    else:
        text = ""
    return text.split("%(")[0]


def test_the_scan_finds_a_flag_without_help():
    source = ('p.add_argument("--kept", type=int, help="explained")\n'
              'p.add_argument("-n", "--bare", type=int, default=3)\n'
              'p.add_argument("names", nargs="*")\n'
              'options.add_argument(flag)\n')
    assert without_help(source) == [(2, "-n")]


def test_every_flag_of_every_entry_point_has_help():
    missing, flags = [], 0
    for path in entry_points():
        source = path.read_text()
        flags += len(flag_calls(source))
        missing += [f"{path.relative_to(ROOT)}:{line}: {flag} has no help"
                    for line, flag in without_help(source)]
    assert flags > 200, f"the scan found only {flags} flags: is it still reading the sources?"
    assert not missing, "\n".join(missing)


def help_entries(text: str) -> dict[str, str]:
    """{option string: its description} from argparse's --help output (every option section)."""
    entries: dict[str, str] = {}
    invocation, description = None, []

    def close():
        if invocation is not None:
            for option in invocation.split(", "):
                entries[option.split()[0]] = " ".join(description)

    for line in text.splitlines():
        if re.match(r"^ {2}-", line):  # an option's first line: its invocation, maybe its help
            close()
            invocation, *rest = re.split(r"\s{2,}", line.strip(), maxsplit=1)
            description = rest
        elif invocation is not None and line.startswith("   ") and line.strip():
            description.append(line.strip())
        else:
            close()
            invocation, description = None, []
    close()
    return entries


def test_store_weights_help_explains_each_flag():
    path = ROOT / "tools" / "store_weights.py"
    calls = flag_calls(path.read_text())
    assert {flag for _, flag, _ in calls} >= {"--ckpt", "--out", "--dtype", "--check-cars", "--check-rays"}
    done = subprocess.run([sys.executable, "-m", "tools.store_weights", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=TIMEOUT_S,
                          env=dict(os.environ, COLUMNS="80"))
    assert done.returncode == 0, done.stderr
    entries = help_entries(done.stdout)

    def squeezed(text: str) -> str:  # argparse wraps lines, and may break them after a hyphen
        return "".join(text.split())

    for _, flag, call in [*calls, (0, "--debug", None)]:
        assert entries.get(flag), f"--help shows no explanation after {flag}:\n{done.stdout}"
        if call is not None:
            words = " ".join(help_prefix(call).split()[:4])
            assert words, f"{flag}'s help starts with no literal text to look for"
            assert squeezed(words) in squeezed(entries[flag]), (
                f"{flag}: {words!r} not in its --help entry {entries[flag]!r}")
