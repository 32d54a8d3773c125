"""User-facing errors.

Everything a user can get wrong (a path, a key, a value) raises :class:`UserError` with a single-line message that
names the offending file, key or value and says how to fix it. The CLI prints the message and exits with status 2,
the napari widgets show it as a notification; neither prints a traceback for it.
"""

from __future__ import annotations

__all__ = ["UserError", "ConfigError", "InputError", "one_line"]


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
