"""The ``masktwins-bio`` command line.

Each subcommand lives in :mod:`masktwins_bio.commands` as a small module with ``register(subparsers)``; it parses
arguments and calls the library API. This module only assembles the parser and turns user errors into one line on
stderr with exit status 2 (argparse's own usage errors also exit 2).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import logging
import os
import re
import signal
import sys
import threading
from typing import Optional, Sequence

from ._version import __version__
from .errors import UserError

__all__ = ["main", "build_parser", "COMMANDS"]

# order shown in --help
COMMANDS = ("demo", "sample_data", "download", "convert", "info", "train", "compare", "predict", "segment", "measure",
            "proofread", "evaluate", "benchmark", "export_bioimageio")


class _OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line (``prog: error: ...; see --help``), exit status 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="masktwins-bio",
        description="Domain-adaptive 3D segmentation of EM volumes (mitochondria) with MaskTwins.",
        epilog="Run 'masktwins-bio COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"masktwins-bio {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="more log output (and tracebacks on errors)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_OneLineParser)
    for name in COMMANDS:
        module = importlib.import_module(f".commands.{name}", __package__)
        module.register(sub)
    for command in sub.choices.values():  # the same two quietness options on every command
        if "--no-progress" not in command._option_string_actions:
            command.add_argument("--no-progress", action="store_true", help="no progress bars")
        command.add_argument("-q", "--quiet", action="store_true",
                             help="no progress bars and no output but warnings and errors (for scripts and jobs)")
    return parser


def _attach_negative_values(argv: Sequence[str]) -> list[str]:
    """``--voxel-size -1,1,1`` -> ``--voxel-size=-1,1,1``: argparse takes a value starting with '-' for an option
    and answers "expected one argument"; attached, the value reaches its type check, which names what is wrong."""
    out: list[str] = []
    for tok in argv:
        if out and re.match(r"^-\.?\d", tok) and out[-1].startswith("--") and "=" not in out[-1]:
            out[-1] = f"{out[-1]}={tok}"
        else:
            out.append(tok)
    return out


#: what to do about the filesystem errors a user can cause or meet (errno -> hint)
_OS_HINTS = {
    errno.ENOSPC: "the disk is full: free space or choose an output on another disk",
    errno.EDQUOT: "the disk quota is exhausted: free space or choose an output on another disk",
    errno.EROFS: "the file system is read-only: choose a writable output path",
    errno.EACCES: "permission denied: check the folder's permissions or choose another path",
    errno.EPERM: "operation not permitted: check the folder's permissions or choose another path",
    errno.ELOOP: "too many levels of symbolic links: give the real path",
    errno.ENAMETOOLONG: "the path is too long: choose a shorter one",
    errno.EIO: "input/output error: the disk or network file system failed; check it and resume",
}


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so the same cleanup as for Ctrl-C runs (no partial outputs)."""


def _on_sigterm(signum, frame):  # pragma: no cover - exercised through a subprocess
    raise _Terminated()


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_attach_negative_values(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO,
                        format="%(message)s")
    if args.quiet:
        args.no_progress = True
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    else:  # pragma: no cover - main() called from a worker thread: signals cannot be set there
        previous = None
    try:
        with open(os.devnull, "w") as sink, (contextlib.redirect_stdout(sink) if args.quiet
                                              else contextlib.nullcontext()):
            result = args.handler(args)
    except UserError as exc:
        if args.verbose:
            raise
        print(f"masktwins-bio {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if args.verbose or exc.errno not in _OS_HINTS:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        resume = "; once fixed, --resume continues" if args.command in ("predict", "segment", "train") else ""
        print(f"masktwins-bio {args.command}: error: {where}{_OS_HINTS[exc.errno]} ({exc.strerror}){resume}",
              file=sys.stderr)
        return 2
    except _Terminated:
        print(f"masktwins-bio {args.command}: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"masktwins-bio {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
