"""Command-line flags come from the config dataclasses: one declaration per option."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from stchat.eval.runner import RunOptions, add_run_arguments
from stchat.options import add_options, flag_of, given_options
from stchat.train.config import TrainConfig


def test_every_training_option_is_a_flag_and_only_typed_flags_override() -> None:
    parser = argparse.ArgumentParser()
    add_options(parser, TrainConfig)
    flags = {s for a in parser._actions for s in a.option_strings}
    for f in dataclasses.fields(TrainConfig):
        if f.metadata.get("cli", True):
            assert flag_of(f) in flags, f.name
    assert "--extra" not in flags
    args = parser.parse_args(["--lr", "0.5", "--no-train-packer", "--format", "official", "--bf16"])
    assert given_options(args, TrainConfig) == {
        "learning_rate": 0.5, "train_packer": False, "data_format": "official", "bf16": True}
    assert given_options(parser.parse_args([]), TrainConfig) == {}
    with pytest.raises(SystemExit):
        parser.parse_args(["--mode", "qlora"])  # choices come from the field


def test_eval_run_flags_come_from_run_options() -> None:
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    args = parser.parse_args(["--benchmark", "b.json", "--limit", "3"])
    defaults = {f.name: f.default for f in dataclasses.fields(RunOptions)}
    assert {k: getattr(args, k) for k in defaults} == {**defaults, "benchmark": "b.json", "first": 3}
    with pytest.raises(SystemExit):  # the two ways of picking samples exclude each other
        parser.parse_args(["--benchmark", "b.json", "--first", "3", "--random", "2"])
