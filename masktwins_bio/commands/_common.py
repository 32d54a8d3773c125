"""Argument types shared by the subcommands."""

from __future__ import annotations

import argparse
import math
from typing import Optional

from ..files import DEFAULT_OME_VERSION, OME_VERSIONS

__all__ = ["triple", "int_triple", "number", "add_config_arguments", "add_overwrite", "add_device"]


def _numbers(text: str, cast, what: str):
    parts = [p for p in text.replace("x", ",").split(",") if p.strip()]
    try:
        values = tuple(cast(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} {text!r}: expected three numbers z,y,x, e.g. 50,4.6,4.6") from None
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"{what} {text!r}: expected three numbers z,y,x, got {len(values)}")
    if any(not (v > 0 and math.isfinite(v)) for v in values):
        raise argparse.ArgumentTypeError(f"{what} {text!r}: all values must be positive")
    return values


def triple(text: str):
    """``"50,4.6,4.6"`` -> (50.0, 4.6, 4.6); positive."""
    return _numbers(text, float, "value")


def int_triple(text: str):
    """``"16,128,128"`` -> (16, 128, 128); positive integers."""
    return _numbers(text, int, "value")


def number(cast=float, low: Optional[float] = None, high: Optional[float] = None, *, low_open: bool = False,
           high_open: bool = False):
    """An argparse type for one finite number within ``[low, high]`` (``low_open``/``high_open``: that end excluded).

    Every numeric option goes through one of these, so a value out of range is refused before anything is read or
    written, with argparse's one-line error naming the option.
    """
    if low is not None and high is not None:
        bounds = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    elif low is not None:
        bounds = f"{'>' if low_open else '>='} {low:g}"
    else:
        bounds = f"{'<' if high_open else '<='} {high:g}"

    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            kind = "an integer" if cast is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
        if not math.isfinite(value) or (
                low is not None and (value < low or (low_open and value == low))) or (
                high is not None and (value > high or (high_open and value == high))):
            raise argparse.ArgumentTypeError(f"{text} is out of range: it must be {bounds}")
        return value

    parse.__name__ = "integer" if cast is int else "number"
    parse.bounds = (cast, low, high, low_open, high_open)  # read by the tests that try every option's edges
    return parse


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set train.steps=500 --set method.name=mic (repeatable)")


def add_overwrite(p: argparse.ArgumentParser, what: str = "output") -> None:
    p.add_argument("--overwrite", action="store_true", help=f"replace an existing {what}")


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N")


def add_run_arguments(p: argparse.ArgumentParser, what: str, block_default: str) -> None:
    """--overwrite/--resume, --block-shape, --chunks, --dask, --workers (shared with ``segment``)."""
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--overwrite", action="store_true", help=f"replace an existing {what}")
    mode.add_argument("--resume", action="store_true",
                      help=f"continue an interrupted run: skip finished blocks of an existing {what} (same settings "
                           "required; the result equals an uninterrupted run)")
    p.add_argument("--block-shape", type=int_triple, metavar="Z,Y,X",
                   help=f"voxels per block (the unit of work and of resume); a multiple of the chunks (default: "
                        f"{block_default})")
    p.add_argument("--chunks", type=int_triple, metavar="Z,Y,X", help="output chunk shape (default 32,256,256)")
    p.add_argument("--dask", nargs="?", const="local", metavar="ADDRESS",
                   help="run the blocks on dask.distributed: alone, a local cluster; with a scheduler ADDRESS "
                        "(tcp://host:8786), an existing cluster, e.g. dask-jobqueue's SLURMCluster")
    p.add_argument("--workers", type=number(int, 1), metavar="N",
                   help="workers of the local dask cluster (default: one per GPU, else 2)")
    p.add_argument("--ome-version", choices=OME_VERSIONS, default=DEFAULT_OME_VERSION,
                   help="0.5 = Zarr v3, the current OME-Zarr (default); 0.4 = Zarr v2, for readers without Zarr v3")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def execution_from(args):
    """The :class:`~masktwins_bio.blockwise.Execution` of ``--dask``, ``--workers`` and ``--no-progress``."""
    from ..blockwise import Execution

    return Execution(executor="dask" if args.dask else "serial",
                     address=None if args.dask in (None, "local") else args.dask, num_workers=args.workers,
                     progress=not args.no_progress)
