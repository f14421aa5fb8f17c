"""The contract every entry point keeps (main.py, tools/, bench/), in one place.

A command line argparse rejects: one `error: …` line on stderr, exit 2. Any other failure: one
`error: …` line, exit 1. Ctrl-C: exit 130. `--debug` (every OneLineParser has it) shows the
traceback and warnings instead. Library code raises errors that name the problem; the entry point
that knows which flag carried the value names the flag.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from models.resolution import Resolution  # plain Python: parsing loads no torch

INTERRUPTED = 130  # the shell's code for a process ended by SIGINT
RESOLUTION_RANGE = (16, 4096)  # pixels per side that --res accepts


class UsageError(Exception):
    """A bad value found after parsing (exit 1); the message names the flag."""


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a rejected command line as one `error: …` line and exit code 2, and
    takes --debug."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_argument("--debug", action="store_true",
                          help="show tracebacks and warnings instead of one error line")

    def error(self, message: str) -> None:
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def option(default: object, help: str) -> object:
    """A settings dataclass field: its default and the --help line config_parser gives its flag."""
    return dataclasses.field(default=default, metadata={"help": help})


def required(help: str) -> object:
    """A settings dataclass field without a default: its flag must be given."""
    return dataclasses.field(metadata={"help": help})


# the flag types of a settings field, by its annotation's first type ("int | None" is an int)
FIELD_TYPES = {"int": int, "float": float, "str": str}


def config_parser(config: type, description: str) -> OneLineParser:
    """A parser with one flag per field of the settings dataclass `config` (`--field-name`), each
    with the help `option` or `required` gave it and its default (a default of None is explained
    by the help itself); a bool field is a switch. Parse, drop `debug`, and the rest are
    `config`'s keyword arguments."""
    parser = OneLineParser(description=description)
    for field in dataclasses.fields(config):
        flag, help_text = "--" + field.name.replace("_", "-"), field.metadata.get("help")
        if help_text is None:
            raise TypeError(f"{config.__name__}.{field.name} has no help: declare it with option()")
        help_text = help_text.replace("%", "%%")  # argparse formats help with %-placeholders
        annotation = str(field.type).split(" |")[0]
        if annotation == "bool":
            parser.add_argument(flag, action="store_true", help=help_text)
        elif field.default is dataclasses.MISSING:
            parser.add_argument(flag, type=FIELD_TYPES[annotation], required=True, help=help_text)
        else:
            shown = "" if field.default is None else f" (default: {field.default})"
            parser.add_argument(flag, type=FIELD_TYPES[annotation], default=field.default,
                                help=help_text + shown)
    return parser


def resolution_argument(text: str) -> Resolution:
    """argparse type of --res: "N" (N × N) or "WxH", each side within RESOLUTION_RANGE."""
    try:
        res = Resolution.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    low, high = RESOLUTION_RANGE
    for side in dict.fromkeys((res.width, res.height)):  # a square's side is named once
        if not low <= side <= high:
            raise argparse.ArgumentTypeError(f"{side} is outside {low}..{high}")
    return res


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def positive_int(text: str) -> int:
    value = integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def non_negative_int(text: str) -> int:
    value = integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be 0 or more")
    return value


def positive_float(text: str) -> float:
    value = number(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{value} must be a positive number")
    return value


def non_negative_float(text: str) -> float:
    value = number(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{value} must be 0 or a positive number")
    return value


def one_line(error: BaseException) -> str:
    """The `error: …` line for an exception: its message on one line, or its type's name."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if text.startswith("error: ") else f"error: {text}"


def run_entry_point(main_function: Callable[[], object], debug: bool) -> int:
    """Run an entry point's body and turn its outcome into an exit code: the int it returns (any
    other result is 0), 1 with one `error: …` line for any exception, 130 for Ctrl-C. With `debug`,
    exceptions propagate with their traceback and warnings are shown."""
    if not debug:
        warnings.simplefilter("ignore")
    try:
        status = main_function()
    except KeyboardInterrupt:
        return INTERRUPTED
    except Exception as error:  # the one place where failures become exit codes
        if debug:
            raise
        print(one_line(error), file=sys.stderr)
        return 1
    return status if isinstance(status, int) else 0


def debug_requested(argv: list[str] | None) -> bool:
    """Whether a command line asks for --debug, for an entry point whose parser hands its result
    to a settings dataclass that has no place for it."""
    probe = argparse.ArgumentParser(add_help=False)
    probe.add_argument("--debug", action="store_true")
    return probe.parse_known_args(argv)[0].debug


def write_json(path: Path, data: object) -> None:
    """A script's result file: its folder made where missing, the JSON indented, a final newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")
