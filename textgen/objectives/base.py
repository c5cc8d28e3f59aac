"""What every objective shares: the Loss it returns, the Context it is built from, and the shape of one.

An objective is a class in its own file, listed by name in OBJECTIVES (objectives/__init__.py), built as
Objective(ctx) and called as objective(model, batch, *, step) -> Loss. It reads its settings from its own
table of the recipe (recipe.objective.mixer: the [objective.mixer] TOML table) and names the Loss.logs keys
it reports in `log_columns`, the columns metrics.csv gets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

if TYPE_CHECKING:
    import torch

    from textgen.config import Recipe


@dataclass
class Loss:
    """What a task returns for one batch: a summed loss and counts; the trainer normalises."""

    loss_sum: torch.Tensor
    ntokens: int
    nsentences: int
    logs: dict | None = None


@dataclass(frozen=True)
class Context:
    recipe: Recipe
    tgt_vocab: object  # decode(ids) -> str and normalize(text) -> str, for rewards
    references: list[str]  # raw training targets, indexed by Batch.index
    steps_per_epoch: int
    mean_target_tokens: float = (
        1.0  # target tokens (with EOS) per training sentence: turns per-sentence terms per-token
    )

    def reference(self, i: int) -> str:
        """Training reference i as the target vocabulary reads it (e.g. lowercased): what outputs are scored against."""
        return self.tgt_vocab.normalize(self.references[i])

    def epoch(self, step: int) -> float:
        return step / self.steps_per_epoch


class Objective(Protocol):
    """An nn.Module (so that a learned baseline trains and is checkpointed with the model). One with
    parameters of its own trains them at its own fixed learning rate, `fixed_lr`."""

    log_columns: ClassVar[tuple[str, ...]]  # the Loss.logs keys it reports, averaged into metrics.csv

    def __call__(self, model, batch, *, step: int) -> Loss: ...
