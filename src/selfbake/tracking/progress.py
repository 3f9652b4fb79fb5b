"""Rich progress bars for anything that takes more than a few seconds."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def _progress() -> Progress:
    """A live display on stderr, so stdout stays clean for results."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    return Progress(*columns, console=Console(stderr=True), transient=False)


@contextmanager
def progress_bar(total: int, description: str, *, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; the bar draws on stderr so stdout stays clean for results."""
    if not enabled:
        yield lambda n=1: None
        return
    with _progress() as progress:
        task = progress.add_task(description, total=total)
        yield lambda n=1: progress.advance(task, n)


class Phases:
    """The bars of one live display, one per phase of a stage; ``bar`` adds one and returns its advance."""

    def __init__(self, progress: Progress | None):
        self._progress = progress

    def bar(self, description: str, total: int) -> Callable[[int], None]:
        if self._progress is None:
            return lambda n=1: None
        progress, task = self._progress, self._progress.add_task(description, total=total)
        return lambda n=1: progress.advance(task, n)


@contextmanager
def phase_bars(*, enabled: bool = True) -> Iterator[Phases]:
    """Several bars shown together (rich allows one live display at a time): e.g. sampling and training.
    Print results after the block, not inside it, so they do not tear the display."""
    if not enabled:
        yield Phases(None)
        return
    with _progress() as progress:
        yield Phases(progress)


def make_console() -> Console:
    """Console for results on stdout: full width in a terminal, 120 columns in a pipe or log."""
    import sys

    return Console(highlight=False, width=None if sys.stdout.isatty() else 120)
