"""The one exception type meant for users: the CLI prints it as one line, exit code 2."""


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
