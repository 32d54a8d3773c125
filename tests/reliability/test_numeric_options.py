"""Every numeric CLI option is range-checked before anything is read or written (issue 12, item 4).

Walks the real parser, so an option added later without a range fails here instead of reaching the library.
"""

from __future__ import annotations

import argparse

import pytest

from masktwins_bio.cli import build_parser, main


def _numeric_options():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command, p in sub.choices.items():
        for action in p._actions:
            if action.option_strings and action.type in (int, float) and not action.choices:
                yield command, action.option_strings[-1], None
            elif hasattr(action.type, "bounds"):
                yield command, action.option_strings[-1], action.type.bounds


OPTIONS = sorted(_numeric_options())


def test_every_numeric_option_has_a_range():
    unchecked = [f"{c} {o}" for c, o, b in OPTIONS if b is None]
    assert not unchecked, f"numeric options without a range (use _common.number): {unchecked}"
    assert len(OPTIONS) >= 15


def _outside(bounds):
    cast, low, high, low_open, high_open = bounds
    values = ["nan", "inf"] if cast is float else ["1.5"]
    if low is not None:
        values.append(str(low) if low_open else str(low - 1 if cast is int else low - 0.5))
    if high is not None:
        values.append(str(high) if high_open else str(high + 1 if cast is int else high + 0.5))
    return values


CASES = [(c, o, v) for c, o, b in OPTIONS if b is not None for v in _outside(b)]


@pytest.mark.parametrize("command, option, value", CASES)
def test_out_of_range_values_are_one_line_errors(tmp_path, refusal, command, option, value):
    # positional arguments that do not exist: the range check must come first, before any file is looked at
    positional = {"predict": ["m.pt", "in.zarr", "out.zarr"], "segment": ["p.zarr", "l.zarr"],
                  "evaluate": ["p.zarr", "g.zarr"], "convert": ["in.tif", "out.zarr"],
                  "benchmark": [], "demo": []}.get(command, [])
    argv = [command, *positional, f"{option}={value}"]
    with pytest.raises(SystemExit) as exit_:  # argparse's own exit, before main() runs the command
        main(argv)
    assert exit_.value.code == 2
    refusal(option, value)
    assert not any(tmp_path.iterdir())
