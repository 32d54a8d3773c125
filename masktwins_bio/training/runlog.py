"""Run logs: a CSV file and TensorBoard event files in the run directory (written by rank 0 only)."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Optional

from ..files import atomic_file

__all__ = ["RunLogger"]


class RunLogger:
    """Append-only CSV (``log.csv``: step, tag, value) plus TensorBoard scalars (``tensorboard/``).

    Args:
        run_dir: Run directory.
        enabled: False on non-zero DDP ranks.
        tensorboard: Also write TensorBoard event files.
        resume_step: The step a resumed run continues from: rows logged after it (by the interrupted run, after
            its last checkpoint) are dropped, since the resumed run logs those steps again.
    """

    HEADER = "step,tag,value"

    def __init__(self, run_dir: Path, enabled: bool = True, tensorboard: bool = True,
                 resume_step: Optional[int] = None):
        self.enabled = enabled
        self._tb = None
        self._file = None
        if not enabled:
            return
        path = Path(run_dir) / "log.csv"
        if path.exists():
            self._repair(path, resume_step)
        new = not path.exists()
        self._file = open(path, "a", newline="")
        self._csv = csv.writer(self._file)
        if new:
            self._csv.writerow(["step", "tag", "value"])
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(log_dir=os.fspath(Path(run_dir) / "tensorboard"))
            except Exception:  # tensorboard missing or broken: the CSV log still works
                self._tb = None

    @classmethod
    def _repair(cls, path: Path, resume_step: Optional[int]) -> None:
        """Make an interrupted run's log appendable: its header (lost when the disk filled up before the first
        flush), no torn last row (``kill -9``, a full disk), no rows after ``resume_step``."""
        with open(path, newline="") as f:
            text = f.read()
        lines = [ln.rstrip("\r") for ln in text.split("\n")[:-1]]  # [:-1]: after the last newline, a torn row
        rows = [ln for ln in lines if ln and ln != cls.HEADER]

        def keep(row: str) -> bool:
            step = row.split(",", 1)[0]
            return step.isdigit() and row.count(",") >= 2 and (resume_step is None or int(step) <= resume_step)

        kept = list(filter(keep, rows))
        if kept == rows and lines[:1] == [cls.HEADER] and text.endswith("\n"):
            return  # nothing to repair
        with atomic_file(path) as tmp, open(tmp, "w", newline="") as f:
            csv.writer(f).writerows([cls.HEADER.split(","), *(r.split(",", 2) for r in kept)])

    def log(self, step: int, values: dict, prefix: str = "") -> None:
        if not self.enabled:
            return
        for tag, value in values.items():
            if value is None:
                continue
            v = float(value)
            self._csv.writerow([step, f"{prefix}{tag}", f"{v:.6g}"])
            if self._tb is not None:
                self._tb.add_scalar(f"{prefix}{tag}", v, step)
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    @staticmethod
    def read(run_dir: str | os.PathLike, tag: Optional[str] = None) -> list[tuple[int, str, float]]:
        """Rows of a run's ``log.csv`` (optionally one tag) - used by notebooks and the napari adapt widget."""
        rows = []
        with open(Path(run_dir) / "log.csv") as f:
            for row in csv.DictReader(f):
                if tag is None or row["tag"] == tag:
                    rows.append((int(row["step"]), row["tag"], float(row["value"])))
        return rows
