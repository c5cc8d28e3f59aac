"""Checkpoints: plain state_dicts + recipe + vocab + training state, written atomically, loaded safely.

A checkpoint is loadable on its own (no corpus needed to sample) and never pickles code:
`torch.load(weights_only=True)` only accepts tensors and plain containers.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from textgen.errors import UserError
from textgen.paths import as_if_created, output_file

FORMAT_VERSION = 1


def _write_failure(exc: BaseException) -> str | None:
    """Why writing failed, if it did: the OS error, which torch's zip writer may re-raise as a RuntimeError
    (e.g. "PytorchStreamWriter failed writing file", or "unexpected pos" after a short write)."""
    seen = exc
    while seen is not None:
        if isinstance(seen, OSError):
            return seen.strerror or str(seen)
        seen = seen.__cause__ or seen.__context__
    if isinstance(exc, RuntimeError) and any(s in str(exc) for s in ("PytorchStreamWriter", "inline_container")):
        return str(exc).strip().splitlines()[0]
    return None


def save(path: Path, payload: dict[str, Any]) -> None:
    """Write to a temp file in the same folder, fsync, rename: a crash leaves the old or the new file.

    Every checkpoint goes through here; a failed write (disk full, quota, I/O error) is one UserError.
    The file gets the permissions the umask gives (tempfile's are private), for shared run folders.
    """
    path = output_file(path, "checkpoint", "model.pt")
    payload = {"format": FORMAT_VERSION, **payload}
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        as_if_created(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        reason = _write_failure(exc)
        if reason is not None:
            raise UserError(
                f"saving checkpoint '{path}' failed ({reason}); "
                "the previous checkpoint is intact: free space and resume"
            ) from None
        raise


def load(path: Path, kind: str | None = None) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint '{path}' does not exist: check the path")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for torn or foreign files
        raise UserError(
            f"checkpoint '{path}' is truncated, corrupt or not a weights-only file ({type(exc).__name__}): "
            "use an earlier checkpoint or retrain"
        ) from None
    if not isinstance(payload, dict) or "format" not in payload or "kind" not in payload:
        raise UserError(f"'{path}' is not a textgen checkpoint")
    if payload["format"] != FORMAT_VERSION:
        raise UserError(
            f"checkpoint '{path}' has format version {payload['format']}, this textgen reads version {FORMAT_VERSION}: "
            "use the textgen version that wrote it"
        )
    if kind is not None and payload["kind"] != kind:
        raise UserError(f"checkpoint '{path}' holds a {payload['kind']} model, this command needs a {kind} model")
    return payload
