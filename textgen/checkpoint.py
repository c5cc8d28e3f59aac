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

FORMAT_VERSION = 1


def check_writable(path: Path) -> None:
    """Fail before training starts, not after the first hour, when a checkpoint cannot be written."""
    directory = Path(path).parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise UserError(f"cannot write in '{directory}' ({exc.strerror}): choose a writable folder") from None


def save(path: Path, payload: dict[str, Any]) -> None:
    """Write to a temp file in the same folder, fsync, rename: a crash leaves the old or the new file."""
    path = Path(path)
    payload = {"format": FORMAT_VERSION, **payload}
    check_writable(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise UserError(
                f"saving checkpoint '{path}' failed ({exc.strerror}); "
                "the previous checkpoint is intact: free space and resume"
            ) from None
        raise


def load(path: Path, kind: str | None = None) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint '{path}' does not exist: check the path")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises many types for torn or foreign files
        raise UserError(f"checkpoint '{path}' is truncated or corrupt: use an earlier checkpoint or retrain") from None
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
