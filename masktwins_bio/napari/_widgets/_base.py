"""Shared parts of the widgets: layer pickers, notifications, and a panel that runs one background job at a time.

A :class:`JobPanel` is a magicgui ``Container`` bound to a viewer. It owns a Run and a Cancel/Stop button and a status
line. Subclasses implement :meth:`JobPanel.problem` (why Run is disabled, or ``None``) and start work with
:meth:`JobPanel.start_job`: the job runs in a napari ``thread_worker`` (see :mod:`masktwins_bio.napari._jobs`), its
progress goes to a ``napari.utils.progress`` bar (activity dock), its events to :meth:`on_event` on the main thread,
and its outcome to :meth:`on_result` or to a notification. No exception of a job reaches napari's handler.
"""

from __future__ import annotations

import logging
import threading
import weakref
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

from magicgui.widgets import ComboBox, Container, Label, PushButton
from psygnal import Signal

from ...errors import UserError, one_line
from .._jobs import Emit, JobResult, run_job
from .._qt_safety import keep_triton_out

__all__ = ["JobPanel", "layer_picker", "layer_or_path", "notify_error", "notify_info", "notify_warning", "error_message", "offer_model"]

log = logging.getLogger("masktwins_bio.napari")


def notify_error(message: str) -> None:
    from napari.utils.notifications import show_error

    show_error(f"masktwins-bio: {message}")


def notify_warning(message: str) -> None:
    from napari.utils.notifications import show_warning

    show_warning(f"masktwins-bio: {message}")


def notify_info(message: str) -> None:
    from napari.utils.notifications import show_info

    show_info(f"masktwins-bio: {message}")


def error_message(exc: BaseException) -> str:
    """One line for a notification: a UserError's own message, else the exception type and message."""
    if isinstance(exc, UserError):
        return str(exc)
    text = one_line(str(exc)) or "(no message)"
    return f"unexpected {type(exc).__name__}: {text} (details in the log)"


#: the screen every widget must fit in (issue 14: a 1000 x 800 laptop or remote desktop at the default font)
MAX_WIDGET_SIZE = (460, 700)


def wrapping(label: Label) -> Label:
    """A label that wraps and never widens its widget (a long path or message would push the dock off a small
    screen); the full text stays in its tooltip."""
    from qtpy.QtWidgets import QSizePolicy

    label.native.setWordWrap(True)
    label.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    label.native.setMinimumWidth(0)
    label.changed.connect(lambda value: label.native.setToolTip(str(value)))
    return label


def add_tabs(container: Container, pages: dict) -> Any:
    """Add a tab bar to ``container`` with one page per entry of ``pages`` (title -> widgets, laid out with their
    labels as a magicgui Container); returns the QTabWidget. Keeps tall widgets within :data:`MAX_WIDGET_SIZE`."""
    from qtpy.QtWidgets import QTabWidget

    tabs = QTabWidget()
    tabs.setDocumentMode(True)
    for title, widgets in pages.items():
        page = Container(widgets=[w for w in widgets if w is not None], labels=True)
        page.margins = (4, 4, 4, 4)
        tabs.addTab(page.native, title)
        container._tab_pages = getattr(container, "_tab_pages", []) + [page]  # keep the magicgui objects alive
    container.native.layout().addWidget(tabs)
    return tabs


_MODEL_CHECKS: dict = {}


def model_problem(path: str) -> Optional[str]:
    """:func:`masktwins_bio.models.check_model_file`, remembered per file version (validation runs on every edit)."""
    import os

    from ...models import check_model_file

    try:
        st = os.stat(path)
        key = (str(path), st.st_mtime_ns, st.st_size)
    except OSError:
        key = (str(path), None, None)
    if key not in _MODEL_CHECKS:
        _MODEL_CHECKS[key] = check_model_file(path)
    return _MODEL_CHECKS[key]


def layer_picker(viewer, kinds: Iterable[str], label: str, tooltip: str = "", nullable: bool = True,
                 prefer: Sequence[str] = ()) -> ComboBox:
    """A ComboBox listing the viewer's layers of the given kinds (``image``, ``labels``), refreshed on changes.

    Args:
        prefer: Name fragments (lower case, in order of preference; ``""`` matches any layer): while the picker is
            empty, the first layer whose name holds the earliest fragment is chosen - at once and whenever layers
            are added (Open Sample, a reader, Predict's outputs), where a better-named layer replaces the widget's
            own earlier pick. A layer the user chose is never replaced.
    """
    import napari.layers

    classes = tuple({"image": napari.layers.Image, "labels": napari.layers.Labels}[k] for k in kinds)

    def choices(_widget=None):
        return [(layer.name, layer) for layer in viewer.layers if isinstance(layer, classes)]

    box = ComboBox(label=label, choices=choices, nullable=nullable, tooltip=tooltip)
    try:  # a long layer name must not widen the dock beyond the screen: the box elides it instead
        from qtpy.QtWidgets import QComboBox

        box.native.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        box.native.setMinimumContentsLength(16)
    except Exception:  # another magicgui backend: its default sizing
        pass
    if prefer:
        def rank(layer) -> int:
            name = layer.name.lower()
            return next((i for i, fragment in enumerate(prefer) if fragment in name), len(prefer))

        auto = {"layer": None}  # the widget's own pick: replaced by a better-named layer, never the user's choice

        def preselect(*_args) -> None:
            current = box.value
            if (current is not None and current is not auto["layer"]) or getattr(box, "path_given", lambda: False)():
                return
            box.reset_choices()  # the new layer may not be listed yet (this can run before the panel's refresh)
            layers = [layer for _name, layer in choices() if rank(layer) < len(prefer)]
            if not layers:
                return
            best = min(layers, key=rank)  # the first of the best-ranked, in layer-list order
            if current is None or rank(best) < rank(current):
                box.value = best
                auto["layer"] = best

        viewer.layers.events.inserted.connect(preselect)
        preselect()
    return box


def _count(value: float, unit: str) -> str:
    """A count for a status line: steps as they are, voxels as 1.2 G / 350 M / 12 k."""
    if unit == "step":
        return f"{int(value)}"
    for scale, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if value >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{int(value)}"


def progress_line(desc: str, n: float, total: float, unit: str, elapsed_s: float, n_start: float = 0) -> str:
    """``adapt (masktwins): 12/30 steps (40 %), 2.1 steps/s, 9 s left``: the rate over the ``elapsed_s`` since the
    stage began at ``n_start`` (a resumed run starts past 0); no rate or ETA before the first unit."""
    if not total:
        return f"{desc}…"
    line = f"{desc}: {_count(n, unit)}/{_count(total, unit)} {unit}s ({int(100 * n / total)} %)"
    if n > n_start and elapsed_s > 0:
        rate = (n - n_start) / elapsed_s
        left = (total - n) / rate
        shown = f"{rate:.3g}" if unit == "step" else _count(rate, unit).strip()
        line += f", {shown} {unit}s/s, " + (f"{left:.0f} s left" if left < 120 else f"{left / 60:.0f} min left")
    return line


def layer_or_path(picker: ComboBox, path_field) -> None:
    """Make a layer picker and its "…or path" field exclusive: choosing one clears the other, and the picker is not
    preselected while a path is given (so the input used is always the one the user touched last)."""
    from .._layers import path_text

    picker.path_given = lambda: path_text(path_field.value) is not None

    def path_changed(*_args) -> None:
        if picker.path_given() and picker.value is not None:
            picker.value = None

    def layer_changed(*_args) -> None:
        if picker.value is not None and picker.path_given():
            path_field.value = None

    path_field.changed.connect(path_changed)
    picker.changed.connect(layer_changed)


#: every live panel, so that a model one of them trains can be offered to the others of its viewer
_PANELS: weakref.WeakSet = weakref.WeakSet()
#: viewer -> the last model offered in it (panels opened later start with it)
_LAST_MODEL: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def offer_model(viewer, path) -> list:
    """Offer a freshly trained model to the viewer's other panels that take one (Predict, Inspect), and to those
    opened later; returns the panels that took it. A panel takes it into a model field that is blank or still holds
    the model offered before, never over a model the user chose."""
    try:
        _LAST_MODEL[viewer] = Path(path)
    except TypeError:  # a viewer that cannot be weakly referenced: live panels only
        pass
    return [panel for panel in list(_PANELS) if panel.viewer is viewer and panel.accept_model(Path(path))]


class JobPanel(Container):
    """A viewer-bound panel with Run / Cancel, a status line and one background job at a time.

    Attributes:
        job_finished: Signal emitted with the :class:`~masktwins_bio.napari._jobs.JobResult` of every job (after
            the widget has handled it); tests wait on it.
        worker: The running napari worker, or ``None``.
        last_result: The last job's result.
    """

    job_finished = Signal(object)
    run_text = "Run"
    cancel_text = "Cancel"
    #: what a job's progress counts (the library's blockwise calls count voxels; Adapt counts steps)
    progress_unit = "voxel"
    notify_delay_ms = 600

    def __init__(self, viewer, **kwargs):
        super().__init__(**kwargs)
        keep_triton_out()  # this widget's jobs build optimisers / networks with OpenGL up
        self.viewer = viewer
        _PANELS.add(self)
        self._offered: dict = {}  # model field -> the model path offered into it (offer_model)
        self.worker = None
        self.last_result: Optional[JobResult] = None
        self._cancel = threading.Event()
        self._pbar = None
        self._stage = None
        self._stage_t0, self._stage_n0 = 0.0, 0.0
        self._in_bar, self._latest = False, None  # napari's bar update is not re-entered (_show_progress)
        self._bar_stage = None
        self._notified: Optional[str] = None
        # input errors are notified once they have stood for a moment, so typing a path or a voxel size key by key
        # does not raise a notification per keystroke
        from qtpy.QtCore import QTimer

        self._notify_timer = QTimer(self.native)  # dies with the widget
        self._notify_timer.setSingleShot(True)
        self._notify_timer.setInterval(self.notify_delay_ms)
        self._notify_timer.timeout.connect(self._notify_problem)
        self.run_button = PushButton(text=self.run_text)
        self.cancel_button = PushButton(text=self.cancel_text, enabled=False)
        self.reason = wrapping(Label(value=""))
        self.status = wrapping(Label(value=""))
        for label in (self.reason, self.status):  # long paths and messages wrap instead of widening the dock
            label.native.setWordWrap(True)
        self.run_button.changed.connect(self._on_run_clicked)
        self.cancel_button.changed.connect(self.cancel)
        layers = viewer.layers.events
        for event in (layers.inserted, layers.removed, layers.reordered):
            event.connect(self._on_layers_changed)
        for layer in viewer.layers:
            layer.events.name.connect(self._on_layers_changed)

    def watch(self, *widgets) -> None:
        """Re-validate whenever one of these input widgets changes."""
        for w in widgets:
            w.changed.connect(self.refresh)

    # -- layer lists ------------------------------------------------------------------------------------------
    def reset_choices(self, *args) -> None:
        """Refresh every layer picker, those on tab pages (:func:`add_tabs`) included."""
        super().reset_choices(*args)
        for page in getattr(self, "_tab_pages", []):
            page.reset_choices(*args)

    def _on_layers_changed(self, event=None) -> None:
        layer = getattr(event, "value", None)
        if layer is not None and hasattr(layer, "events") and getattr(event, "type", "") == "inserted":
            layer.events.name.connect(self._on_layers_changed)
        self.reset_choices()
        self.refresh()

    # -- validation -------------------------------------------------------------------------------------------
    def problem(self) -> Optional[str]:
        """Why Run is disabled (one line), or ``None``. Subclasses override."""
        return None

    def is_error(self, problem: str) -> bool:
        """Whether ``problem`` is a user error worth a notification (not just a field still to fill in)."""
        return not problem.startswith("choose ")

    def current_problem(self) -> Optional[str]:
        try:
            return self.problem()
        except UserError as exc:
            return str(exc)

    def refresh(self, *_args) -> None:
        """Re-validate: enable Run or disable it with the reason in its tooltip and the reason line."""
        problem = self.current_problem()
        busy = self.worker is not None
        self.run_button.enabled = problem is None and not busy
        self.run_button.tooltip = problem or f"{self.run_text} ({'busy' if busy else 'ready'})"
        self.reason.value = f"⚠ {problem}" if problem else ""
        self.reason.tooltip = problem or ""
        if problem and problem != self._notified and self.is_error(problem):
            self._notify_timer.start()  # (re)start: notify when the inputs have settled
        elif not problem:
            self._notified = None

    def _notify_problem(self) -> None:
        try:
            problem = self.current_problem()
        except RuntimeError:  # the widget's Qt objects are gone (viewer closed)
            return
        if problem and problem != self._notified and self.is_error(problem):
            self._notified = problem
            notify_warning(problem)

    # -- models from other panels --------------------------------------------------------------------------------
    def accept_model(self, path: Path) -> bool:
        """Take a model another panel trained (:func:`offer_model`); panels with a model field override."""
        return False

    def take_offered_model(self) -> None:
        """Take the last model offered in this viewer, if any (subclasses call it at the end of ``__init__``)."""
        try:
            path = _LAST_MODEL.get(self.viewer)
        except TypeError:
            path = None
        if path is not None and path.exists():
            self.accept_model(path)

    def offer_into(self, field, path: Path) -> bool:
        """Put ``path`` into the FileEdit ``field`` unless the user chose another model there."""
        from .._layers import path_text

        current = path_text(field.value)
        if current is not None and current != self._offered.get(id(field)):
            return False
        field.value = path
        self._offered[id(field)] = path_text(field.value)
        return True

    # -- jobs -------------------------------------------------------------------------------------------------
    def _on_run_clicked(self, *_args) -> None:
        self.run()

    def run(self):
        """Start the panel's job (subclasses); returns the worker or ``None`` when the inputs are invalid."""
        raise NotImplementedError

    def check_ready(self) -> bool:
        """Validate before starting; notify and return False when Run should not have been possible."""
        if self.worker is not None:
            notify_info("a job is already running; wait for it or press " + self.cancel_text)
            return False
        problem = self.current_problem()
        if problem:
            notify_error(problem)
            self.refresh()
            return False
        return True

    def start_job(self, fn: Callable[[Emit], Any], desc: str, total: int = 0):
        """Run ``fn(emit)`` in a napari thread worker with a progress bar; returns the worker."""
        from napari.qt.threading import create_worker
        from napari.utils import progress

        self._stage = None
        self.last_result = None
        self._pbar = progress(total=total, desc=desc, unit=self.progress_unit, unit_scale=self.progress_unit != "step")
        self._bar_stage = (desc, int(total or 0))
        worker = create_worker(run_job, fn, _start_thread=False)
        worker.yielded.connect(self._on_yielded)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_errored)
        worker.aborted.connect(self._on_aborted)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self.cancel_button.enabled = True
        self.status.value = f"{desc}…"
        self.refresh()
        worker.start()
        return worker

    def cancel(self, *_args) -> None:
        """Ask the running job to stop (between blocks or steps)."""
        if self.worker is None:
            return
        self._cancel.set()
        self.cancel_button.enabled = False
        self.status.value = "stopping…"

    @property
    def cancel_requested(self) -> threading.Event:
        """The event the next (or running) job polls; a fresh one is made when a job ends."""
        return self._cancel

    def _on_yielded(self, item) -> None:
        if item is None:
            return
        kind, payload = item
        if kind == "progress":
            self._show_progress(*payload)
        else:
            try:
                self.on_event(kind, payload)
            except Exception:  # a display problem must not kill the job
                log.exception("masktwins-bio: handling %s event failed", kind)

    def _show_progress(self, desc: str, n: float, total: float) -> None:
        """Progress in real units (steps, voxels) with the rate and ETA: on the status line and napari's bar."""
        import time

        if desc != self._stage:
            self._stage, self._stage_t0, self._stage_n0 = desc, time.perf_counter(), n
        # the status line first: updating napari's progress bar processes Qt events, which can run this job's later
        # events (even its result) nested in this call, and they must have the last word
        self.status.value = progress_line(desc, n, total, self.progress_unit, time.perf_counter() - self._stage_t0,
                                          self._stage_n0)
        pbar = self._pbar
        if pbar is None:
            return
        if self._in_bar:  # an update below is processing Qt events, this one among them: it shows the latest
            self._latest = (desc, n, total)
            return
        self._in_bar = True
        try:
            latest = (desc, n, total)
            while latest is not None and self._pbar is pbar:  # (a nested result may have closed the bar)
                self._update_bar(pbar, *latest)
                latest, self._latest = self._latest, None
        finally:
            self._in_bar = False

    def _update_bar(self, pbar, desc: str, n: float, total: float) -> None:
        stage = (desc, int(total or 0))
        if stage != self._bar_stage:  # a new pass (predict, then label, ...): the bar starts again at 0
            self._bar_stage = stage
            pbar.set_description(desc)
            pbar.total = stage[1]
            pbar.n = 0
            pbar.last_print_n = 0
        if total and n > pbar.n:
            pbar.update(int(n) - pbar.n)

    def on_event(self, kind: str, payload) -> None:
        """Handle a job event on the main thread (subclasses)."""

    def on_result(self, value) -> None:
        """Handle a successful job's return value on the main thread (subclasses)."""

    def on_cancelled(self) -> None:
        notify_info("cancelled")

    def _on_returned(self, result) -> None:
        if not isinstance(result, JobResult):  # superqt returns a RuntimeError raised by the generator as a value
            result = JobResult("error", error=result if isinstance(result, BaseException) else RuntimeError(result))
        self.last_result = result
        try:
            if result.status == "ok":
                self.on_result(result.value)
            elif result.status == "cancelled":
                self.status.value = "cancelled"
                self.on_cancelled()
            else:
                self._report(result.error, result.traceback)
        except Exception as exc:  # showing the result failed: report, never crash the viewer
            log.exception("masktwins-bio: showing the result failed")
            self._report(exc, "")

    def _on_aborted(self) -> None:
        # napari's task manager quit the worker: stop the job thread too (it cleans up after itself)
        self._cancel.set()
        self.last_result = JobResult("cancelled")
        self.status.value = "cancelled"

    def _on_errored(self, exc) -> None:
        self.last_result = JobResult("error", error=exc)
        self._report(exc, "")

    def _report(self, exc: Optional[BaseException], tb: str) -> None:
        message = error_message(exc) if exc is not None else "unknown error"
        if tb and not isinstance(exc, UserError):
            log.error("masktwins-bio job failed:\n%s", tb)
        self.status.value = f"✖ {message}"
        notify_error(message)

    def _on_finished(self) -> None:
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self.worker = None
        self._cancel = threading.Event()  # the finished job keeps its own (set) event
        self.cancel_button.enabled = False
        self.refresh()
        self.job_finished.emit(self.last_result)
