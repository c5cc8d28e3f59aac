"""TASKS: recipe `task` name → the class that supplies losses and validation to the trainer."""

from __future__ import annotations

from pathlib import Path

from textgen.config import Recipe
from textgen.distributed import Dist
from textgen.errors import UserError


def build_task(recipe: Recipe, resume: dict | None = None, dist: Dist = Dist(), prepared: Path | None = None):
    """Build the task for a recipe (this rank's shard); with a resume checkpoint, reuse its vocabulary.

    `prepared` is a folder made by `textgen data prepare`; by default the task finds or makes its own."""
    if resume is not None and resume["kind"] != recipe.task:
        raise UserError(f"--resume checkpoint holds a {resume['kind']} model, the recipe trains a {recipe.task} model")
    if recipe.task == "lm":
        from textgen.data.vocab import vocab_from_dict
        from textgen.lm import LMTask

        return LMTask(recipe, vocab_from_dict(resume["vocab"]) if resume else None, dist, prepared)
    from textgen.seq2seq import Seq2SeqTask

    return Seq2SeqTask(recipe, resume["vocab"] if resume else None, dist, prepared)
