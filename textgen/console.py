"""The console that training notes and progress bars write to (stderr, so stdout stays clean)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console


def stderr_console(quiet: bool = False) -> Console:
    """A rich console on stderr that wraps lines only on a terminal: in a log file every message stays on
    one line, so logs can be grepped."""
    console = Console(stderr=True, quiet=quiet)
    console.soft_wrap = not console.is_terminal
    return console


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr for `total` items, drawn only when stderr is a terminal (a log or a pipe gets
    nothing) and cleared when done; yields advance(n), which counts n more items done."""
    from rich import progress as rp

    console = stderr_console()
    if not console.is_terminal or total <= 0:
        yield lambda n: None
        return
    columns = (rp.TextColumn(description), rp.BarColumn(), rp.MofNCompleteColumn(), rp.TimeRemainingColumn())
    with rp.Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
