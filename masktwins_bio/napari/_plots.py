"""Plots inside the widgets, on napari-matplotlib's themed canvas (napari's colours, its toolbar to pan, zoom and
save the figure), updated in place.

* :class:`LossPlot` - the Adapt widget's training loss (left axis) and label-free score (right axis) per step.
* :class:`HistogramPlot` - the Inspect widget's histogram of one measurement column over all instances, with the
  instances the table's filter keeps drawn on top and its bounds as vertical lines.

Both need ``napari-matplotlib`` (in the ``napari`` extra); :func:`make_plot` returns ``None`` without it, and the
widgets then show text only.
"""

from __future__ import annotations

import logging
from typing import Optional, Sequence

import numpy as np

__all__ = ["LossPlot", "HistogramPlot", "make_plot"]

log = logging.getLogger("masktwins_bio.napari")

TRAIN_COLOR, SCORE_COLOR = "tab:blue", "tab:orange"
ALL_COLOR, KEPT_COLOR = "#7f7f7f", "tab:orange"


def make_plot(kind, viewer, **kwargs):
    """``kind(viewer, **kwargs)``, or ``None`` when napari-matplotlib (or a Qt matplotlib backend) is missing."""
    try:
        return kind(viewer, **kwargs)
    except Exception as exc:  # ImportError, or a backend that cannot start: the widget works without its plot
        log.info("masktwins-bio: no %s (%s)", kind.__name__, exc)
        return None


class _ThemedPlot:
    """One napari-matplotlib canvas (``widget``: a QWidget with toolbar and canvas) and its single axes."""

    height = 170

    def __init__(self, viewer):
        from napari_matplotlib.base import BaseNapariMPLWidget

        self.widget = BaseNapariMPLWidget(viewer)
        self.widget.setMinimumHeight(self.height)
        self.widget.setMaximumHeight(self.height + 60)
        # matplotlib's default figure (6.4 x 4.8 in at 100 dpi) would ask the dock for 640 px: the canvas
        # follows the widget's width instead
        self.widget.figure.set_size_inches(3.2, self.height / 100, forward=False)
        self.widget.canvas.setMinimumWidth(0)
        from qtpy.QtWidgets import QSizePolicy

        self.widget.canvas.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.widget.add_single_axes()
        self.ax = self.widget.axes

    def styled(self):
        """napari's matplotlib style sheet (axes colours follow the theme), for clearing and drawing."""
        import matplotlib.style as mplstyle

        return mplstyle.context(self.widget.napari_theme_style_sheet)

    def redraw(self) -> None:
        self.widget.canvas.draw_idle()


def _monotonic_parts(points: list[tuple[int, float]]) -> list[list[tuple[int, float]]]:
    """``(step, value)`` points split where the step does not increase."""
    parts: list[list[tuple[int, float]]] = []
    for p in points:
        if not parts or p[0] <= parts[-1][-1][0]:
            parts.append([])
        parts[-1].append(p)
    return parts


class LossPlot(_ThemedPlot):
    """Training loss and label-free score against the step."""

    def __init__(self, viewer):
        super().__init__(viewer)
        with self.styled():
            self.ax2 = self.ax.twinx()
        self.clear()

    def clear(self) -> None:
        self.train: list[tuple[int, float]] = []
        self.val: list[tuple[int, float]] = []
        self.draw()

    def add(self, kind: str, step: int, value: float) -> None:
        (self.train if kind == "train" else self.val).append((step, value))
        self.draw()

    def draw(self) -> None:
        with self.styled():
            self.ax.clear()
            self.ax2.clear()
            # a run that trains again from an earlier step (method.agreement=auto's second candidate) is drawn
            # as a line of its own, not joined back to the first one's end
            for part in _monotonic_parts(self.train):
                self.ax.plot(*zip(*part), color=TRAIN_COLOR, lw=1)
            for part in _monotonic_parts(self.val):
                self.ax2.plot(*zip(*part), "o-", color=SCORE_COLOR, ms=3, lw=1)
            self.ax.set_xlabel("step", fontsize=7)
            self.ax.set_ylabel("loss", fontsize=7, color=TRAIN_COLOR)
            # clear() puts the twin's axis back on the left, over the loss ticks: move it to the right again
            self.ax2.yaxis.tick_right()
            self.ax2.yaxis.set_label_position("right")
            self.ax2.set_ylabel("label-free score", fontsize=7, color=SCORE_COLOR)
            for ax in (self.ax, self.ax2):
                ax.tick_params(labelsize=6)
        self.redraw()


class HistogramPlot(_ThemedPlot):
    """Histogram of a measurement: all instances, the kept ones on top, the filter's bounds as lines."""

    def __init__(self, viewer, bins: int = 30):
        super().__init__(viewer)
        self.bins = bins
        self.shown: Optional[dict] = None
        self.show(None, np.zeros(0), np.zeros(0, bool))

    def show(self, title: Optional[str], values: np.ndarray, kept: np.ndarray,
             bounds: Sequence[Optional[float]] = (None, None)) -> None:
        """Draw ``values`` (one per instance; NaN left out) with those where ``kept`` is True highlighted."""
        values = np.asarray(values, dtype=float)
        finite = np.isfinite(values)
        kept = np.asarray(kept, dtype=bool) & finite
        self.shown = {"title": title, "n": int(finite.sum()), "kept": int(kept.sum()), "bounds": tuple(bounds)}
        with self.styled():
            self.ax.clear()
            log_x = False
            if finite.any():
                v = values[finite]
                # sizes span decades (specks to long tubes): log-spaced bins then, else linear ones
                log_x = bool(v.min() > 0 and v.max() / v.min() > 100)
                edges = (np.geomspace(v.min(), v.max(), self.bins + 1) if log_x
                         else np.histogram_bin_edges(v, bins=self.bins))
                self.ax.hist(values[finite], bins=edges, color=ALL_COLOR, label="all")
                if kept.any():
                    self.ax.hist(values[kept], bins=edges, color=KEPT_COLOR, label="shown")
                for bound in bounds:
                    if bound is not None:
                        self.ax.axvline(bound, color=KEPT_COLOR, lw=1, ls="--")
                self.ax.legend(fontsize=6, frameon=False)
            self.ax.set_xscale("log" if log_x else "linear")
            self.ax.set_xlabel(title or "measure instances to see their histogram", fontsize=7)
            self.ax.set_ylabel("instances", fontsize=7)
            self.ax.tick_params(labelsize=6)
        self.redraw()
