"""User-facing errors.

Everything a user can get wrong (a path, a key, a value) raises :class:`UserError` with a single-line message that
names the offending file, key or value and says how to fix it. The CLI prints the message and exits with status 2,
the napari widgets show it as a notification; neither prints a traceback for it.

:class:`Cancelled` is not a user error: a library call raises it when its ``should_stop`` hook asked it to stop.
"""

from __future__ import annotations

__all__ = ["UserError", "ConfigError", "InputError", "TrainingDiverged", "Cancelled", "one_line"]


def one_line(message: str) -> str:
    """Collapse whitespace so a message always fits on one line."""
    return " ".join(str(message).split())


class UserError(Exception):
    """An error caused by the user's input rather than by a bug; its message is one line."""

    def __init__(self, message: str):
        super().__init__(one_line(message))


class ConfigError(UserError, ValueError):
    """A configuration file or override is invalid."""


class InputError(UserError, ValueError):
    """An input volume, path or argument is invalid."""


class TrainingDiverged(UserError, RuntimeError):
    """The training loss became NaN or infinite: a setting or the data, not a bug; the last checkpoint is kept."""


class Cancelled(Exception):
    """A blockwise call stopped between blocks because its ``should_stop()`` returned True.

    Outputs are left exactly as after an interrupt: marked ``complete: false`` and resumable (``resume=True``).
    Only callers that pass ``should_stop`` can get it (the CLI never does).
    """
