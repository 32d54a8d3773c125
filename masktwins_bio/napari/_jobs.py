"""Background jobs for the widgets: a library call in a thread, its progress and cancellation, as a generator.

napari runs long work in a ``thread_worker`` whose generator ``yield``\\ s progress to the main thread. Library calls
(:func:`~masktwins_bio.inference.predict`, :func:`~masktwins_bio.postprocess.segment`,
:func:`~masktwins_bio.training.train`) block until done, so :func:`run_job` runs the call in a helper thread and turns
the events it emits into yields. The generator never raises: it returns a :class:`JobResult` (``ok``, ``cancelled``
or ``error``), so the widget handles every outcome on the main thread and a failing job never reaches napari's
exception handler.

Progress and Cancel for blockwise library calls: ``predict``, ``segment`` and ``evaluate`` have no progress callback
or cancel hook yet; they drive tqdm bars (``tqdm.tqdm`` in :func:`masktwins_bio.blockwise.run_blockwise`, one
``update`` per finished block; ``tqdm.auto.tqdm`` iterated over blocks in ``evaluate``), created when the call runs.
:func:`blockwise_progress` therefore installs tqdm subclasses that, for bars created by the calling thread only, stay
silent in the terminal, report (description, done, total) and raise :class:`Cancelled` at bar creation or after a
block once the cancel event is set. The run then stops between blocks exactly as after an interrupt: outputs stay
marked ``complete: false`` and can be resumed. Bars of other threads behave as usual. Remove this shim once the
library functions take ``callback=``/``should_stop=`` arguments like :func:`~masktwins_bio.training.train`.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import queue
import shutil
import tempfile
import threading
import traceback
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable, Generator, Iterator, Optional

__all__ = ["Cancelled", "JobResult", "run_job", "blockwise_progress", "Emit", "temporary_folder"]

log = logging.getLogger("masktwins_bio.napari")

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


class Cancelled(Exception):
    """Raised inside a job when the user pressed Cancel."""


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
        err = outcome["error"]
        if isinstance(err, Cancelled):
            return JobResult("cancelled")
        return JobResult("error", error=err, traceback=outcome.get("traceback", ""))
    return JobResult("ok", value=outcome.get("value"))


# -- progress and cancel for blockwise library calls --------------------------------------------------------------

_local = threading.local()
_patch_lock = threading.Lock()
_patch_users = 0
_originals: dict = {}


def _hooked_class(base):
    class HookedTqdm(base):  # type: ignore[misc, valid-type]
        """tqdm that reports to the creating thread's hook (if any) and honours its cancel event."""

        def __init__(self, *args, **kwargs):
            hook = getattr(_local, "hook", None)
            if hook is not None:
                kwargs["disable"] = True  # the widget shows the progress; keep the terminal quiet
            super().__init__(*args, **kwargs)
            self._mtb_hook = hook
            self._mtb_desc = str(kwargs.get("desc") or (args[1] if len(args) > 1 else "") or "")
            self._mtb_total = float(self.total or 0)
            self._mtb_n = float(kwargs.get("initial", 0) or 0)
            if hook is not None:
                hook(self._mtb_desc, self._mtb_n, self._mtb_total)

        def _mtb_advance(self, n) -> None:
            self._mtb_n += float(n or 0)
            self._mtb_hook(self._mtb_desc, self._mtb_n, self._mtb_total)

        def update(self, n=1):
            out = super().update(n)
            if getattr(self, "_mtb_hook", None) is not None:
                self._mtb_advance(n)
            return out

        def __iter__(self):
            if getattr(self, "_mtb_hook", None) is None:
                yield from super().__iter__()
                return
            for item in super().__iter__():  # disabled: plain iteration, counted here
                yield item
                self._mtb_advance(1)

    HookedTqdm.__name__ = HookedTqdm.__qualname__ = base.__name__
    return HookedTqdm


@contextlib.contextmanager
def blockwise_progress(emit: Emit, cancel: Optional[threading.Event] = None) -> Iterator[None]:
    """Report tqdm progress of library calls made by this thread as ``emit("progress", (desc, n, total))``.

    While active, ``cancel.set()`` makes the next bar creation or update raise :class:`Cancelled` (between blocks).
    """
    global _patch_users
    import tqdm as tqdm_module
    import tqdm.auto as tqdm_auto

    def hook(desc: str, n: float, total: float) -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        emit("progress", (desc, n, total))

    with _patch_lock:
        if _patch_users == 0:
            for module in (tqdm_module, tqdm_auto):
                _originals[module] = module.tqdm
                module.tqdm = _hooked_class(module.tqdm)
        _patch_users += 1
    previous = getattr(_local, "hook", None)
    _local.hook = hook
    try:
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        yield
    finally:
        _local.hook = previous
        with _patch_lock:
            _patch_users -= 1
            if _patch_users == 0:
                for module, original in _originals.items():
                    module.tqdm = original
                _originals.clear()
