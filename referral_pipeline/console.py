"""What a long-running command shows while it works: concise progress lines, with a live bar on a terminal
(rich) and plain lines otherwise (logs, CI, pipes). The full log goes to a file; this is only the summary."""

from __future__ import annotations

import sys
from typing import TextIO


class Reporter:
    """Progress of one command. `line` prints a finished step; `advance` moves a counter (e.g. dbt nodes)."""

    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None):
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self._bars: dict[str, tuple[int, int]] = {}
        self._printed_quarter: dict[str, int] = {}
        self._progress = None
        self._tasks: dict[str, object] = {}
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("  {task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(file=self.stream),
                transient=True,
                redirect_stdout=False,  # what the run prints goes to its log file, never above the bar
                redirect_stderr=False,
            )

    def line(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=self.stream, flush=True)

    def advance(self, label: str, done: int, total: int) -> None:
        """Counter `label` is at `done` of `total`. Plain output prints it at each quarter."""
        total = max(total, done, 1)
        if self._progress is not None:
            if label not in self._tasks:
                if not self._tasks:
                    self._progress.start()
                self._tasks[label] = self._progress.add_task(label, total=total)
            self._progress.update(self._tasks[label], completed=done, total=total)
            return
        quarter = done * 4 // total
        if quarter > self._printed_quarter.get(label, 0):
            self._printed_quarter[label] = quarter
            print(f"  {label}: {done}/{total}", file=self.stream, flush=True)

    def finish(self, label: str) -> None:
        """Counter `label` is complete: remove its bar."""
        if self._progress is not None and label in self._tasks:
            self._progress.remove_task(self._tasks.pop(label))
            if not self._tasks:
                self._progress.stop()
        self._printed_quarter.pop(label, None)

    def close(self) -> None:
        for label in list(self._tasks):
            self.finish(label)


class Silent(Reporter):
    """A reporter that shows nothing (library callers, tests)."""

    def __init__(self):
        self.live = False
        self._progress = None
        self._tasks = {}
        self._printed_quarter = {}

    def line(self, text: str) -> None:
        pass

    def advance(self, label: str, done: int, total: int) -> None:
        pass
