"""The progress bar of long builds (``zhucun replay``, ``zhucun what-if``): a rich bar on
stderr with the rate in events per second and the time left, drawn from the plain progress
callback the shared library reports to (:class:`zhucun.shared.replay.Progress`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class _RateColumn(ProgressColumn):
    """Events per second, from rich's own moving estimate."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(
            f"{speed:,.0f} events/s" if speed else "- events/s", style="progress.data.speed"
        )


class ProgressBar:
    """A :class:`zhucun.shared.replay.Progress`: draws ``done`` of ``total`` on ``console``.

    The bar appears with the first report (when the build knows its total) and stops when
    ``done`` reaches ``total`` or the bar is closed, so the lines logged before and after
    the build are not mixed with it.
    """

    def __init__(self, description: str, console: Console) -> None:
        self.description = description
        self.console = console
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._finished = False

    def __call__(self, done: int, total: int) -> None:
        if self._finished:
            return
        if self._bar is None:
            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(bar_width=20),
                TaskProgressColumn(),
                _RateColumn(),
                TimeRemainingColumn(),
                TextColumn("left"),
                console=self.console,
                speed_estimate_period=10.0,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=total)
        assert self._task is not None
        self._bar.update(self._task, completed=done, total=total)
        if done >= total:
            self.close()

    def close(self) -> None:
        self._finished = True
        if self._bar is not None:
            self._bar.stop()


@contextlib.contextmanager
def progress_bar(
    description: str, *, always: bool = False, console: Console | None = None
) -> Iterator[ProgressBar | None]:
    """A progress bar on stderr when it is a terminal (``always``: anyway), else None:
    pass it as ``progress=`` to :func:`zhucun.shared.replay.rebuild` and its kin."""
    if console is None:
        console = Console(stderr=True, force_terminal=True if always else None)
    if not (always or console.is_terminal):
        yield None
        return
    bar = ProgressBar(description, console)
    try:
        yield bar
    finally:
        bar.close()
