"""Settings dataclasses as command lines (engine/cli.py config_parser): a flag per field, each
with its help, and the training tools' --help explaining every flag."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from engine.cli import config_parser, option, required
from tools.train import TrainConfig
from tools.train_encoder import EncoderTrainConfig


@dataclasses.dataclass
class Settings:
    data: str = required("the data folder")
    rate: float = option(0.5, "a rate in %")
    count: int | None = option(None, "how many; unset: all")
    name: str = option("plain", "a name")
    fast: bool = option(False, "go fast")


def test_flags_parse_into_the_dataclass_with_its_defaults():
    parser = config_parser(Settings, "demo")
    given = vars(parser.parse_args(["--data", "d", "--count", "3", "--fast"]))
    given.pop("debug")
    assert Settings(**given) == Settings(data="d", rate=0.5, count=3, name="plain", fast=True)
    default = vars(parser.parse_args(["--data", "d"]))
    default.pop("debug")
    assert Settings(**default) == Settings(data="d")


def test_help_shows_each_fields_help_and_a_default_when_there_is_one():
    text = config_parser(Settings, "demo").format_help()
    assert "a rate in % (default: 0.5)" in text  # a literal % survives argparse's formatting
    assert "how many; unset: all" in text and "(default: None)" not in text
    assert "a name (default: plain)" in text and "go fast" in text


@pytest.mark.parametrize("argv", [[], ["--data", "d", "--count", "many"], ["--data", "d", "--nope"]])
def test_a_rejected_command_line_is_one_error_line_and_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        config_parser(Settings, "demo").parse_args(argv)
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")


def test_a_field_without_help_is_refused():
    @dataclasses.dataclass
    class Bare:
        steps: int = 3

    with pytest.raises(TypeError, match="Bare.steps has no help"):
        config_parser(Bare, "demo")


@pytest.mark.parametrize("module, config", [("tools.train", TrainConfig),
                                            ("tools.train_encoder", EncoderTrainConfig)])
def test_the_training_tools_explain_every_flag(module, config):
    result = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    text = "".join(result.stdout.split())  # argparse wraps lines, also after hyphens
    for field in dataclasses.fields(config):
        assert "--" + field.name.replace("_", "-") in text
        assert "".join(field.metadata["help"].split()) in text, field.name
