"""The exceptions meant for users, and the one line (and exit status) the CLI prints for each instead of a
traceback."""

import errno


class UserError(Exception):
    """A problem with the user's input, with a message that says what to do about it."""


class RankError(UserError):
    """A problem only this data-parallel rank sees (its GPU): printed by every rank, not just rank 0."""


class Interrupted(Exception):
    """Training stopped by SIGINT/SIGTERM after saving a resumable checkpoint; exit 128 + signal."""

    def __init__(self, signum: int, path):
        super().__init__(f"interrupted; a resumable checkpoint is saved: textgen train --resume {path}")
        self.exit_code = 128 + signum


def out_of_memory(exc: BaseException) -> bool:
    """The GPU allocator raises OutOfMemoryError (a RuntimeError); the CPU allocator a RuntimeError that says so."""
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or (
        isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text)
    )


def one_line(exc: BaseException) -> tuple[str, int, bool] | None:
    """What the CLI prints for an exception instead of a traceback: (line, exit status, whether every
    data-parallel rank prints it rather than rank 0 alone); None for a bug, shown with its traceback."""
    if isinstance(exc, UserError):
        return f"error: {exc}", 2, isinstance(exc, RankError)
    if isinstance(exc, Interrupted):
        return str(exc), exc.exit_code, False
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", 130, True
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):  # a write no other handler covers
        where = f"'{exc.filename}'" if exc.filename else "a file"
        return f"error: writing {where} failed: the disk is full or over quota; free space and run again", 2, True
    if out_of_memory(exc):  # e.g. a model too large to build, before training starts
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return (
            f"error: out of memory ({first_line}): use a smaller model or batch (model.hidden, model.layers, "
            "train.batch_size, train.max_tokens)",
            2,
            True,
        )
    return None
