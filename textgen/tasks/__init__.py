"""The tasks the trainer drives (`base.Task`): a recipe's `task` name → the class that supplies losses and
validation."""

from __future__ import annotations

from pathlib import Path

from textgen.config import Recipe
from textgen.errors import UserError
from textgen.train.distributed import Dist


def build_task(recipe: Recipe, resume: dict | None = None, dist: Dist = Dist(), prepared: Path | None = None):
    """Build the task for a recipe (this rank's shard); with a resume checkpoint, reuse its vocabulary.

    `prepared` is a folder made by `textgen data prepare`; by default the task finds or makes its own."""
    if resume is not None and resume["kind"] != recipe.task:
        raise UserError(f"--resume checkpoint holds a {resume['kind']} model, the recipe trains a {recipe.task} model")
    if recipe.task == "lm":
        from textgen.data.vocab import vocab_from_dict
        from textgen.tasks.lm import LMTask

        return LMTask(recipe, vocab_from_dict(resume["vocab"]) if resume else None, dist, prepared)
    from textgen.tasks.seq2seq import Seq2SeqTask

    return Seq2SeqTask(recipe, resume["vocab"] if resume else None, dist, prepared)
