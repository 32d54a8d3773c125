"""Background jobs for the widgets: a library call in a thread, its progress and cancellation, as a generator.

napari runs long work in a ``thread_worker`` whose generator ``yield``\\ s progress to the main thread. Library calls
(:func:`~masktwins_bio.inference.predict`, :func:`~masktwins_bio.postprocess.segment`,
:func:`~masktwins_bio.training.train`) block until done, so :func:`run_job` runs the call in a helper thread and turns
the events it emits into yields. The generator never raises: it returns a :class:`JobResult` (``ok``, ``cancelled``
or ``error``), so the widget handles every outcome on the main thread and a failing job never reaches napari's
exception handler.

Progress and Cancel of library calls: ``predict``, ``segment``, ``evaluate`` (and ``train``) take ``callback=`` and
``should_stop=`` hooks; :func:`library_hooks` makes them from the job's ``emit`` and the panel's cancel event, so a
job reports ``("progress", (desc, done, total))`` events and stops between blocks exactly as the library does for any
caller (:class:`~masktwins_bio.errors.Cancelled`; outputs stay ``complete: false`` and resumable).
"""

from __future__ import annotations

import atexit
import queue
import shutil
import tempfile
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generator, Optional

from ..errors import Cancelled
from ._qt_safety import keep_triton_out

__all__ = ["Cancelled", "JobResult", "run_job", "library_hooks", "Emit", "temporary_folder"]

#: ``emit(kind, payload)``: send an event from the job thread to the widget (yielded on the main thread).
Emit = Callable[[str, Any], None]


_TEMPORARY: list[Path] = []


def temporary_folder(prefix: str) -> Path:
    """A new temporary folder for outputs shown as layers; removed when the Python process (napari) exits."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    _TEMPORARY.append(path)
    return path


@atexit.register
def _remove_temporary() -> None:
    for path in _TEMPORARY:
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class JobResult:
    """Outcome of a job.

    Attributes:
        status: ``ok``, ``cancelled`` or ``error``.
        value: The job's return value (``ok``).
        error: The exception (``error``); ``traceback`` its formatted traceback.
    """

    status: str
    value: Any = None
    error: Optional[BaseException] = None
    traceback: str = ""


_DONE = object()


def run_job(fn: Callable[[Emit], Any], poll_s: float = 0.1) -> Generator[Optional[tuple[str, Any]], None, JobResult]:
    """Run ``fn(emit)`` in a helper thread; yield its ``(kind, payload)`` events; return a :class:`JobResult`.

    Yields ``None`` every ``poll_s`` seconds while nothing happens, so that the napari worker can be aborted at any
    time (its abort is only checked between yields). Use with ``napari.qt.threading.create_worker``.
    """
    keep_triton_out()
    events: queue.Queue = queue.Queue()
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["value"] = fn(lambda kind, payload=None: events.put((kind, payload)))
        except Cancelled:
            outcome["cancelled"] = True
        except BaseException as exc:  # reported to the widget, never raised into napari
            outcome["error"] = exc
            outcome["traceback"] = traceback.format_exc()
        finally:
            events.put(_DONE)

    thread = threading.Thread(target=target, name="masktwins-job", daemon=True)
    thread.start()
    while True:
        try:
            item = events.get(timeout=poll_s)
        except queue.Empty:
            yield None
            continue
        if item is _DONE:
            break
        yield item
    thread.join()
    if outcome.get("cancelled"):
        return JobResult("cancelled")
    if "error" in outcome:
        return JobResult("error", error=outcome["error"], traceback=outcome.get("traceback", ""))
    return JobResult("ok", value=outcome.get("value"))


def library_hooks(emit: Emit, cancel: threading.Event) -> dict:
    """``callback``/``should_stop`` keyword arguments of a blockwise library call, reporting to ``emit``."""

    def callback(desc: str, done: int, total: int) -> None:
        emit("progress", (desc, done, total))

    return {"callback": callback, "should_stop": cancel.is_set}
