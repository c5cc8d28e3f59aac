"""The console that training notes and progress bars write to (stderr, so stdout stays clean), and the lines
the CLI reads from standard input or a prompt."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console

from textgen.errors import UserError


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


def not_utf8(line: int) -> UserError:
    return UserError(f"standard input line {line} is not UTF-8: convert it with iconv -f ENCODING -t utf-8")


def stdin_lines() -> list[str]:
    """Every line of standard input as `read_lines` splits a file (at LF, a CR before it and a BOM dropped: one
    output per line, whatever else a line holds), decoded here so that a byte that is not UTF-8 names its line."""
    raw = getattr(sys.stdin, "buffer", None)
    if raw is None:  # a text stream without bytes underneath (tests): already decoded
        text = sys.stdin.read()
    else:
        data = raw.read()
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise not_utf8(data.count(b"\n", 0, exc.start) + 1) from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def prompt_lines(prompt: str):
    """Lines typed at a prompt (on stderr, so stdout stays clean) until Ctrl-D."""
    for number in itertools.count(1):
        sys.stderr.write(prompt)
        sys.stderr.flush()
        raw = getattr(sys.stdin, "buffer", None)  # bytes, decoded here: the text layer decodes ahead by blocks
        line = sys.stdin.readline() if raw is None else raw.readline()
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError:
                raise not_utf8(number) from None
        if not line:
            sys.stderr.write("\n")
            return
        yield line.removesuffix("\n").removesuffix("\r")


def write_stream(prefix: str, pieces: Iterator[str]) -> None:
    """`prefix`, then each piece as it comes, then a line break, on stdout. The first piece is drawn before
    anything is written, so an error it raises (a bad prime) leaves stdout untouched."""
    first = next(pieces, None)
    sys.stdout.write(prefix)
    if first is not None:
        sys.stdout.write(first)
    for piece in pieces:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")


def write_outputs(outputs: list, nbest: int, first: int = 0) -> None:
    """Decoded outputs on stdout: one line each, or with nbest > 1 every (text, score) pair of output i as
    i<TAB>score<TAB>text (`first`: the index of the first output)."""
    for i, out in enumerate(outputs, first):
        if nbest == 1:
            sys.stdout.write(out + "\n")
        else:
            for text, score in out:
                sys.stdout.write(f"{i}\t{score:.4f}\t{text}\n")
    sys.stdout.flush()
