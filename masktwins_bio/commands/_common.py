"""Argument types shared by the subcommands."""

from __future__ import annotations

import argparse

__all__ = ["triple", "int_triple", "add_config_arguments", "add_overwrite", "add_device"]


def _numbers(text: str, cast, what: str):
    parts = [p for p in text.replace("x", ",").split(",") if p.strip()]
    try:
        values = tuple(cast(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} {text!r}: expected three numbers z,y,x, e.g. 50,4.6,4.6") from None
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"{what} {text!r}: expected three numbers z,y,x, got {len(values)}")
    if any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"{what} {text!r}: all values must be positive")
    return values


def triple(text: str):
    """``"50,4.6,4.6"`` -> (50.0, 4.6, 4.6); positive."""
    return _numbers(text, float, "value")


def int_triple(text: str):
    """``"16,128,128"`` -> (16, 128, 128); positive integers."""
    return _numbers(text, int, "value")


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set train.steps=500 --set method.name=mic (repeatable)")


def add_overwrite(p: argparse.ArgumentParser, what: str = "output") -> None:
    p.add_argument("--overwrite", action="store_true", help=f"replace an existing {what}")


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N")
