"""The progress bar of ``zhucun replay`` and ``zhucun what-if``, fed as the shared library
feeds it (``done`` of ``total`` records: 0 first, then after each batch)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from zhucun.cli.progress import ProgressBar, progress_bar

pytestmark = pytest.mark.unit


def test_the_bar_draws_the_rate_and_stops_when_done() -> None:
    sink = io.StringIO()
    console = Console(file=sink, force_terminal=True, width=120)
    with progress_bar("as of: audit_time", console=console) as bar:
        assert isinstance(bar, ProgressBar)
        for done in (0, 400, 800, 1000):
            bar(done, 1000)
        bar(1000, 1000)  # after it stopped: ignored
    drawn = sink.getvalue()
    assert "as of: audit_time" in drawn
    assert "events/s" in drawn  # the progress bar was drawn
    assert "100%" in drawn


def test_no_bar_where_stderr_is_not_a_terminal_unless_asked() -> None:
    quiet = Console(file=io.StringIO(), force_terminal=False)
    with progress_bar("rebuild public", console=quiet) as bar:
        assert bar is None
    with progress_bar("rebuild public", always=True) as bar:
        assert isinstance(bar, ProgressBar)


def test_an_empty_build_and_a_bar_closed_early_stop_drawing() -> None:
    sink = io.StringIO()
    console = Console(file=sink, force_terminal=True)
    with progress_bar("rebuild public", console=console) as empty:
        assert empty is not None
        empty(0, 0)
    with progress_bar("rebuild public", console=console) as failed:
        assert failed is not None
        failed(0, 10)
    drawn = sink.getvalue()
    failed(5, 10)  # a report after the bar was closed (a build that failed) draws nothing
    empty(0, 0)
    assert sink.getvalue() == drawn
