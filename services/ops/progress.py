"""Progress of long work: a Rich bar on a terminal; elsewhere a plain line now and then.

Output redirected to a file or a pipe (a cron job, a CI log) gets no bar, which would
write nothing until the end: a line at the first batch, then at most one every
``interval_s``, and one at the end. Updates are cheap (a counter and a clock read), since
they come once per batch.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from services.ops.output import counted


class ProgressDisplay:
    """Counts ``unit`` (singular: a batch, a member) up to ``total`` (None: unknown, the bar pulses), with a line
    of detail."""

    def __init__(
        self, console: Console, description: str, total: int | None, unit: str, *, interval_s: float = 10.0
    ) -> None:
        self._console = console
        self._description = description
        self._total = total
        self._unit = unit
        self._interval_s = interval_s
        self._completed = 0
        self._detail = ""
        self._printed_at: float | None = None
        self._printed = ""
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> Self:
        if self._console.is_terminal:
            columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn()]
            if self._total is not None:
                columns.append(MofNCompleteColumn())
            columns += [TextColumn("{task.fields[detail]}"), TimeElapsedColumn()]
            self._bar = Progress(*columns, console=self._console)
            self._bar.start()
            self._task = self._bar.add_task(self._description, total=self._total, detail="")
        return self

    def update(self, completed: int, detail: str = "") -> None:
        self._completed, self._detail = completed, detail
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=completed, detail=detail)
            return
        now = time.monotonic()
        if self._printed_at is None or now - self._printed_at >= self._interval_s:
            self._printed_at = now
            self._line()

    def _line(self) -> None:
        if self._total is None:
            done = counted(self._completed, self._unit)
        else:
            done = f"{self._completed:,}/{counted(self._total, self._unit)}"
        detail = f" ({self._detail})" if self._detail else ""
        line = f"{self._description}: {done}{detail}"
        if line != self._printed:  # the closing line, when nothing moved since the last one
            self._console.print(line, markup=False, soft_wrap=True)
            self._printed = line

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.stop()
        elif self._printed_at is not None:
            self._line()
