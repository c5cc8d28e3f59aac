"""Checkpoints: plain state_dicts + recipe + vocab + training state, written atomically, loaded safely.

A checkpoint is loadable on its own (no corpus needed to sample) and never pickles code:
`torch.load(weights_only=True)` only accepts tensors and plain containers.
"""

from __future__ import annotations

import os
import re
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


def load(path: Path, kind: str | None = None, mmap: bool = False) -> dict[str, Any]:
    """The payload of a textgen checkpoint, checked; `mmap` maps the tensors from the file instead of reading
    them, for callers that need only the recipe or a few tensors: drop the payload before the file can change
    (`save` renames a new file over it, which is safe; writing into it would break the mapped tensors)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint '{path}' does not exist: check the path")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
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


KEPT = re.compile(r"checkpoint-(\d+)\.pt")  # RUN_DIR/checkpoint-STEP.pt


def kept(run_dir: Path) -> list[Path]:
    """The weights `keep` kept in `run_dir`, oldest first."""
    if not Path(run_dir).is_dir():
        return []
    found = [(int(m.group(1)), p) for p in Path(run_dir).iterdir() if (m := KEPT.fullmatch(p.name))]
    return [p for _, p in sorted(found)]


def drop_kept_after(run_dir: Path, step: int) -> None:
    """Delete the kept weights of steps after `step` (a fresh run: 0), left by an earlier run in the same folder
    or by the part of an interrupted run after the step it resumes from: they belong to another trajectory."""
    for path in kept(run_dir):
        if int(KEPT.fullmatch(path.name).group(1)) > step:
            path.unlink(missing_ok=True)


def without_training_state(payload: dict[str, Any]) -> dict[str, Any]:
    """A payload with the model, vocabularies and recipe but no optimizer or training state (nor the format
    version, which `save` writes): a model to decode or average, not to resume."""
    return {k: v for k, v in payload.items() if k not in ("train_state", "format")}


def keep(run_dir: Path, step: int, payload: dict[str, Any], last: int) -> None:
    """Keep the weights of this validation as RUN_DIR/checkpoint-STEP.pt and delete all but the `last` newest:
    a model to decode or average (`textgen average`), not to resume (no optimizer or training state)."""
    weights = without_training_state(payload)
    start = payload.get("train_state", {}).get("start_step", 0)  # a fine-tune's parent updates
    save(Path(run_dir) / f"checkpoint-{step}.pt", weights | {"step": step, "start_step": start})
    for old in kept(run_dir)[:-last]:
        old.unlink(missing_ok=True)


def same(a: Any, b: Any) -> bool:
    """Whether two payload values are equal, tensors inside included (a vocabulary holds its sentencepiece model
    as a tensor, which `==` would compare element by element)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b
