"""One writer per output: an advisory lock held for the whole run of predict, segment and convert.

The lock is a small file beside the output (``.<name>.lock``) locked with ``flock``: the kernel releases it when
its process ends, however it ends, so a lock left by a killed run is never stale - the file may stay behind, but
the next writer locks it again. A second writer gets a one-line error naming the holder (command, PID, host). The
dask path holds the lock in the client process, which is where these functions run. Without ``fcntl`` (Windows)
outputs are not locked.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import inspect
import json
import os
import socket
from pathlib import Path
from typing import Callable, Iterator

from ..errors import InputError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["output_lock", "holds_output_lock", "lock_path"]


def lock_path(output) -> Path:
    p = Path(output)
    return p.parent / f".{p.name}.lock"


@contextlib.contextmanager
def output_lock(output, command: str) -> Iterator[None]:
    """Hold the writer's lock of ``output`` (a path) for the duration of the block.

    Raises:
        InputError: another process holds it (the message names its command, PID and host).
    """
    lock = lock_path(output)
    if fcntl is None or not lock.parent.is_dir():  # a missing parent: the command's own check names it
        yield
        return
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        try:
            holder = json.loads(os.read(fd, 4096) or b"{}")
        except ValueError:
            holder = {}
        os.close(fd)
        who = (f"masktwins-bio {holder.get('command', '?')} (PID {holder.get('pid', '?')} on "
               f"{holder.get('host', '?')}, since {holder.get('started', '?')})")
        raise InputError(f"{output}: {who} is writing this output; wait until it finishes, stop it, or choose "
                         "another path") from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"command": command, "pid": os.getpid(), "host": socket.gethostname(),
                                 "started": datetime.datetime.now().isoformat(timespec="seconds")}).encode())
        yield
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()  # while still held: a writer that opened it meanwhile fails its own attempt
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def holds_output_lock(command: str, param: str = "output") -> Callable:
    """Decorate a writing function: it runs holding :func:`output_lock` of its ``param`` argument (if a path)."""

    def decorate(fn: Callable) -> Callable:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            out = sig.bind_partial(*args, **kwargs).arguments.get(param)
            if not isinstance(out, (str, os.PathLike)):
                return fn(*args, **kwargs)
            with output_lock(out, command):
                return fn(*args, **kwargs)

        return wrapper

    return decorate
