"""`textgen average`: one model whose weights are the mean of several checkpoints of one run.

Averaging the last few checkpoints (Vaswani et al. 2017 average the last 5 to 20; fairseq's
average_checkpoints) smooths the noise of the final updates at no training cost: the checkpoints lie close
together on one trajectory, so their mean is a point of lower loss, not a blend of different solutions (for
those, decode an ensemble). Runs keep their last N validations' weights with `train.keep_checkpoints = N`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from textgen.errors import UserError
from textgen.paths import output_file
from textgen.train import checkpoint


def checkpoint_files(inputs: list[Path], last: int) -> list[Path]:
    """The files to average: each input a checkpoint, or a run folder standing for the checkpoints it kept
    (oldest first); `last` > 0 keeps the newest `last` of them."""
    files: list[Path] = []
    for path in map(Path, inputs):
        if path.is_dir():
            found = checkpoint.kept(path)
            if not found:
                raise UserError(
                    f"run folder '{path}' kept no checkpoints (checkpoint-STEP.pt): train with "
                    "--set train.keep_checkpoints=5, or give checkpoint files"
                )
            files += found
        else:
            files.append(path)
    files = list({str(p.resolve()): p for p in files}.values())  # a file named twice counts once
    files = files[-last:] if last else files
    if len(files) < 2:
        raise UserError(f"averaging needs at least 2 checkpoints, found {len(files)}: give more, or a larger --last")
    return files


def _check_same_model(first: dict, other: dict, shapes: dict, path: Path, first_path: Path) -> None:
    for what, key in (("kind", "kind"), ("vocabularies", "vocab")):
        if not checkpoint.same(other[key], first[key]):
            raise UserError(f"'{path}' has other {what} than '{first_path}': average checkpoints of one run")
    if shapes != first["shapes"] or not checkpoint.same(other["recipe"].get("model"), first["recipe"].get("model")):
        raise UserError(f"'{path}' holds another model shape than '{first_path}': average checkpoints of one run")


def average(files: list[Path]) -> dict:
    """The newest checkpoint (the last file) with its floating-point weights replaced by their mean over `files`
    (summed in float64, one file's weights in memory at a time beside the sums); integer buffers are the newest
    file's. Not resumable: it has no training state."""
    total: dict[str, torch.Tensor] = {}
    first = newest = None
    for path in files:
        payload = checkpoint.load(path)
        shapes = {k: v.shape for k, v in payload["model"].items()}
        if first is None:
            first = {k: v for k, v in checkpoint.without_training_state(payload).items() if k != "model"}
            first |= {"shapes": shapes}
        _check_same_model(first, payload, shapes, path, files[0])
        for name, value in payload["model"].items():
            if value.is_floating_point():
                total[name] = total[name] + value.double() if name in total else value.double()
        newest = payload
    weights = {
        name: (total[name] / len(files)).to(value.dtype) if value.is_floating_point() else value
        for name, value in newest["model"].items()
    }
    return checkpoint.without_training_state(newest) | {"model": weights, "averaged": [str(p) for p in files]}


def average_files(inputs: list[Path], output: str | Path, last: int = 0) -> list[Path]:
    """Average the checkpoints `inputs` name (see checkpoint_files) into `output`; returns the files averaged."""
    output = output_file(output, "-o", "averaged.pt")
    files = checkpoint_files(inputs, last)
    checkpoint.save(output, average(files))
    return files
